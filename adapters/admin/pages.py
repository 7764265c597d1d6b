"""The admin web pages under ``/admin``: server-rendered Jinja2 (autoescaped), plain HTML forms.

Login stores the token in an HttpOnly, SameSite=Strict cookie; a page without
a valid token answers 401 with the login form, a viewer posting a change 403.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from semcache.adapters.admin.auth import COOKIE, Actor, AuthError
from semcache.adapters.admin.charts import day_bars
from semcache.adapters.admin.deps import AdminContext, get_context, identify
from semcache.adapters.admin.entries import EntryFilters

from semcache.lookup.policies import CATEGORIES

HERE = Path(__file__).resolve().parent
PAGE_SIZE = 25
_env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined,
                   trim_blocks=True, lstrip_blocks=True)
_CSS = (HERE / "static" / "admin.css").read_bytes()
# Forms with data-confirm ask before they submit: a script file, as the CSP forbids inline handlers.
_JS = b"""document.addEventListener("submit", function (event) {
  var message = event.target.getAttribute("data-confirm");
  if (message && !window.confirm(message)) { event.preventDefault(); }
});
"""

router = APIRouter(prefix="/admin", include_in_schema=False)
Ctx = Annotated[AdminContext, Depends(get_context)]


def render(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    """Render a template (every value is HTML-escaped unless a template says otherwise)."""
    values.setdefault("actor", None)
    values.setdefault("flash", None)
    return HTMLResponse(_env.get_template(name).render(categories=CATEGORIES, **values), status_code=status)


class PageDenied(Exception):
    """Raised by the page dependencies; turned into the login (401) or a 403 page."""

    def __init__(self, response: Response) -> None:
        self.response = response


def _reader(request: Request, ctx: Ctx) -> Actor:
    try:
        return identify(request, ctx)
    except AuthError as exc:
        page = render("login.html", status=exc.status, error="Please sign in with an admin token."
                      if request.cookies.get(COOKIE) is None else "That token is not valid.")
        raise PageDenied(page) from None


def _writer(actor: Annotated[Actor, Depends(_reader)]) -> Actor:
    if not actor.can_write:
        raise PageDenied(render("message.html", status=403, actor=actor, title="Not allowed",
                                message="Your token has the viewer role: it can look, not change."))
    return actor


Reader = Annotated[Actor, Depends(_reader)]
Writer = Annotated[Actor, Depends(_writer)]


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


@router.get("/static/admin.css")
def stylesheet() -> Response:
    return Response(_CSS, media_type="text/css", headers={"cache-control": "max-age=300"})


@router.get("/static/admin.js")
def script() -> Response:
    return Response(_JS, media_type="text/javascript", headers={"cache-control": "max-age=300"})


@router.get("/login")
def login_page() -> HTMLResponse:
    return render("login.html", error=None)


@router.post("/login")
def login(request: Request, ctx: Ctx, token: Annotated[str, Form()]) -> Response:
    try:
        ctx.auth.identify(token)
    except AuthError:
        return render("login.html", status=401, error="That token is not valid.")
    response = see_other(str(request.url_for("admin_dashboard")))
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=ctx.secure_cookie,
                        path="/admin", max_age=8 * 3600)
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    response = see_other(str(request.url_for("login_page")))
    response.delete_cookie(COOKIE, path="/admin")
    return response


@router.get("", name="admin_dashboard")
def dashboard(ctx: Ctx, actor: Reader, tenant: str = "") -> HTMLResponse:
    stats = ctx.service.stats(tenant or None)
    return render("dashboard.html", actor=actor, stats=stats, tenant=tenant,
                  hit_chart=day_bars(stats["by_day"], "hit_rate"),
                  cost_chart=day_bars(stats["by_day"], "cost_saved"))


def _filters(request: Request) -> EntryFilters:
    q = request.query_params
    ages = {}
    for name in ("older_than_h", "newer_than_h"):
        raw = q.get(name, "").strip()
        if raw:
            try:
                ages[name.replace("_h", "_s")] = float(raw) * 3600.0
            except ValueError:
                raise PageDenied(render("message.html", status=400, title="Bad filter",
                                        message=f"{name} must be a number of hours")) from None
    return EntryFilters.of(text=q.get("text", ""), tenant=q.get("tenant", ""),
                           category=q.get("category", ""), model=q.get("model", ""), **ages)


@router.get("/entries")
def entries(request: Request, ctx: Ctx, actor: Reader, page: int = 1) -> HTMLResponse:
    filters = _filters(request)
    page = max(1, page)
    try:
        rows, total = ctx.service.entries(filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    except (TypeError, ValueError) as exc:
        return render("message.html", status=400, actor=actor, title="Bad filter", message=str(exc))
    query = {k: v for k, v in request.query_params.items() if k != "page"}
    return render("entries.html", actor=actor, rows=rows, total=total, page=page, query=query,
                  pages=max(1, -(-total // PAGE_SIZE)))


@router.get("/entries/{entry_id}")
def entry(entry_id: int, ctx: Ctx, actor: Reader, flash: str = "") -> HTMLResponse:
    found = ctx.service.entry(entry_id)
    if found is None:
        return render("message.html", status=404, actor=actor, title="Not found",
                      message=f"There is no entry {entry_id}.")
    return render("entry.html", actor=actor, e=found, check=None, flash=flash or None)


@router.post("/entries/{entry_id}/check")
def check(entry_id: int, ctx: Ctx, actor: Reader, question: Annotated[str, Form()]) -> HTMLResponse:
    found = ctx.service.entry(entry_id)
    if found is None:
        return render("message.html", status=404, actor=actor, title="Not found",
                      message=f"There is no entry {entry_id}.")
    result = ctx.service.check_question(entry_id, question)
    return render("entry.html", actor=actor, e=found, check={"question": question, **result})


@router.post("/entries/{entry_id}/delete")
def delete(request: Request, entry_id: int, ctx: Ctx, actor: Writer) -> Response:
    ctx.service.delete_entry(entry_id, actor.name)
    return see_other(str(request.url_for("entries")))


@router.post("/entries/{entry_id}/wrong")
def wrong(request: Request, entry_id: int, ctx: Ctx, actor: Writer) -> Response:
    try:
        ctx.service.mark_wrong(entry_id, actor.name)
    except (KeyError, ValueError):
        return render("message.html", status=404, actor=actor, title="Not found",
                      message=f"There is no entry {entry_id}.")
    url = request.url_for("entry", entry_id=entry_id).include_query_params(flash="Reported as a wrong hit.")
    return see_other(str(url))
