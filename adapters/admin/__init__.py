"""The SQL-backed cache admin: REST API under ``/admin/api`` and web pages under ``/admin``.

``mount(app, cache, settings)`` adds both to the proxy's FastAPI app;
``create_admin_app(db_url, tokens)`` serves them on their own. Needs the
``proxy`` extra (FastAPI, Jinja2).
"""

from __future__ import annotations

from semcache.adapters.admin.app import create_admin_app, mount
from semcache.adapters.admin.auth import AdminAuth
from semcache.adapters.admin.pricing import PriceTable
from semcache.adapters.admin.service import AdminService

__all__ = ["AdminAuth", "AdminService", "PriceTable", "create_admin_app", "mount"]
