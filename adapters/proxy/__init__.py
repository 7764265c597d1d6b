"""OpenAI-compatible caching proxy (``pip install 'semcache[proxy]'``).

    from semcache.adapters.proxy import ProxySettings, create_app
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
    import httpx  # noqa: F401
    import prometheus_client  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    from semcache.exceptions import MissingExtraError

    raise MissingExtraError(exc.name or "fastapi", "proxy") from exc

from semcache.adapters.proxy.app import create_app  # noqa: E402
from semcache.adapters.proxy.settings import ProxySettings  # noqa: E402

__all__ = ["ProxySettings", "create_app"]
