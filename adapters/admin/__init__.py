"""The SQL-backed cache admin: REST API under ``/admin/api`` and web pages under ``/admin``.

``mount(app, cache, settings)`` adds both to the proxy's FastAPI app;
``create_admin_app(db_url, tokens)`` serves them on their own. Needs the
``proxy`` extra (FastAPI, Jinja2).
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
    import jinja2  # noqa: F401
    import python_multipart  # noqa: F401  (HTML form posts)
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    from semcache.exceptions import MissingExtraError

    raise MissingExtraError(exc.name or "fastapi", "admin") from exc

from semcache.adapters.admin.app import create_admin_app, mount  # noqa: E402
from semcache.adapters.admin.auth import AdminAuth  # noqa: E402
from semcache.adapters.admin.pricing import PriceTable  # noqa: E402
from semcache.adapters.admin.service import AdminService  # noqa: E402

__all__ = ["AdminAuth", "AdminService", "PriceTable", "create_admin_app", "mount"]
