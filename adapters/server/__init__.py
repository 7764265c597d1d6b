"""What the proxy and the admin share: tenants and API keys (``keys``, ``tenant_tables``),
the audit log (``audit``, ``audit_tables``), cross-replica single-flight leases
(``leases``) and errors in OpenAI's format (``errors``). It imports neither adapter."""
