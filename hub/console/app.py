"""The console as a FastAPI application: pages, JSON API, /metrics, login and CSRF.

Pages are Jinja2 templates (autoescaped) in Chinese first, English by `?lang=en` or the
language link (a cookie remembers it); static/console.js keeps them live by polling the
JSON API. Every page and API call needs a session; every POST needs the session's CSRF
token (form field `csrf_token` or header `X-CSRF-Token`), the login form included; replay
and discard need the operator or admin role. /openapi.json describes the API, /metrics
serves Prometheus figures, /healthz answers without a session.

Owns: routing, the access checks, turning errors into 401/403/404/409/503 answers.
Must not: hold queries (views.py), touch hub.dlq itself (deadletters.py) or log secrets.
"""


import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from hub.console import audit
from hub.console.access import CAN_ACT, LoginThrottle, Role, Session, Signer, Users, load_secret
from hub.console.deadletters import DeadLetterDesk
from hub.console.i18n import LANGS, pick_lang, text
from hub.console.views import Views
from hub.settings import Settings
from hub.store import Store
from protocols.errors import HubError

log = logging.getLogger("hub.console")
HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "hub_session"
LANG_COOKIE = "hub_lang"
LOGIN_COOKIE = "hub_login"       # pre-login nonce the login CSRF token is bound to
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_DONE = re.compile(r"(replay|discard):\d+:\d+")


@dataclass
class ConsoleConfig:
    users_file: Path
    session_ttl_s: float = 8 * 3600
    secure_cookies: bool = False     # set behind HTTPS


class NotLoggedIn(Exception):
    def __init__(self, expired: bool) -> None:
        self.expired = expired


class Refused(Exception):
    def __init__(self, status: int, key: str) -> None:
        self.status, self.key = status, key


@dataclass
class Caller:
    name: str
    role: Role
    session: Session

    @property
    def can_act(self) -> bool:
        return self.role in CAN_ACT


class ReplayRequest(BaseModel):
    keys: list[str] | None = Field(None, description="dead-letter keys or message ids; omit with all=true")
    all: bool = Field(False, description="replay every dead letter that has an original route")


class DiscardRequest(BaseModel):
    keys: list[str] = Field(min_length=1, description="dead-letter keys or message ids")
    reason: str = Field(min_length=1, max_length=500, description="why; kept in the audit trail")


class _Metrics:
    """Figures computed at scrape time from the broker and the journal, plus the console's own counters."""

    def __init__(self, views: Views) -> None:
        self.views = views
        self.registry = CollectorRegistry()
        self.registry.register(self)
        self.actions = Counter("hub_console_actions_total", "Dead-letter actions done from the console",
                               ["action", "outcome"], registry=self.registry)
        self.latency = Histogram("hub_console_request_seconds", "Console request latency", ["route"],
                                 registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

    def describe(self):
        return []

    def collect(self):
        q = self.views.queues()
        depth = GaugeMetricFamily("hub_queue_messages", "Messages ready in the queue", labels=["queue", "kind"])
        unacked = GaugeMetricFamily("hub_queue_unacked", "Messages delivered and not yet acknowledged",
                                    labels=["queue", "kind"])
        consumers = GaugeMetricFamily("hub_queue_consumers", "Consumers of the queue", labels=["queue", "kind"])
        for r in q["queues"]:
            depth.add_metric([r["name"], r["kind"]], r["messages"])
            unacked.add_metric([r["name"], r["kind"]], r["unacked"])
            consumers.add_metric([r["name"], r["kind"]], r["consumers"])
        yield depth
        yield unacked
        yield consumers
        yield GaugeMetricFamily("hub_broker_up", "1 when the management API answered", value=1 if q["ok"] else 0)
        if q["ok"]:
            yield GaugeMetricFamily("hub_dead_letters", "Messages parked in hub.dlq", value=q["dead_letters"])
            yield GaugeMetricFamily("hub_retry_messages", "Messages waiting in the retry tiers", value=q["retrying"])
        journal = GaugeMetricFamily("hub_journal_messages", "Journaled messages by status", labels=["status"])
        for status, n in self.views.journal_counts().items():
            journal.add_metric([status], n)
        yield journal
        db = self.views.database()
        yield GaugeMetricFamily("hub_store_up", "1 when the state store answered", value=1 if db["ok"] else 0)


def create_app(settings: Settings, store: Store, directory, config: ConsoleConfig, *, zone=None,
               desk: DeadLetterDesk | None = None) -> FastAPI:
    # No /docs or /redoc: their pages load scripts from a CDN, which the console's CSP (rightly)
    # blocks, and an operator network has no internet; /openapi.json is the description.
    app = FastAPI(title="cs-hub console", version="1", docs_url=None, redoc_url=None,
                  description="Queue console of the customer-service hub: overview, queues, dead letters, search, "
                              "orders, knowledge sync. Log in at /login; POSTs need the X-CSRF-Token header.")
    users = Users(config.users_file)
    signer = Signer(load_secret(settings.data_dir))
    throttle = LoginThrottle()
    audit.ensure_tables(store)
    if zone is None:
        from hub.flows.order_settings import load_order_settings
        zone = load_order_settings(settings.config_dir).zone
    views = Views(settings, store, directory, zone=zone)
    desk = desk or DeadLetterDesk(settings, store)
    metrics = _Metrics(views)
    templates = Jinja2Templates(directory=str(HERE / "templates"))  # .html: autoescaped
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.state.views, app.state.desk, app.state.users = views, desk, users

    # ------------------------------------------------------------------ plumbing
    @app.middleware("http")
    async def timing(request: Request, call_next):
        t0 = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:   # a bug: answer 500 without details, with the headers below like any answer
            log.exception("console request failed", extra={"path": request.url.path})
            response = JSONResponse({"error": "internal", "message": text(lang_of(request), "err.unavailable")},
                                    status_code=500)
        route = request.scope.get("route")
        metrics.latency.labels(getattr(route, "path", "other")).observe(time.perf_counter() - t0)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
        return response

    def is_api(request: Request) -> bool:
        return request.url.path.startswith("/api/") or request.url.path == "/metrics"

    @app.exception_handler(NotLoggedIn)
    async def _not_logged_in(request: Request, exc: NotLoggedIn):
        if is_api(request):
            return JSONResponse({"error": "login required", "expired": exc.expired}, status_code=401)
        target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""), safe="")
        return RedirectResponse(f"/login?next={target}" + ("&expired=1" if exc.expired else ""), status_code=303)

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused):
        lang = lang_of(request)
        return JSONResponse({"error": exc.key, "message": text(lang, exc.key)}, status_code=exc.status)

    @app.exception_handler(HubError)
    async def _hub_error(request: Request, exc: HubError):
        log.warning("console request failed: %s", exc)
        return JSONResponse({"error": "unavailable", "message": str(exc)}, status_code=503)

    def lang_of(request: Request) -> str:
        return pick_lang(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))

    def caller(request: Request) -> Caller:
        cookie = request.cookies.get(SESSION_COOKIE)
        session = signer.session(cookie)
        if session is None:
            raise NotLoggedIn(expired=bool(cookie))
        user = users.get(session.user)
        if user is None:
            raise NotLoggedIn(expired=True)
        return Caller(user.name, user.role, session)

    async def csrf_token_of(request: Request) -> str | None:
        token = request.headers.get("x-csrf-token")
        if token is None and request.headers.get("content-type", "").startswith(
                ("application/x-www-form-urlencoded", "multipart/form-data")):
            token = (await request.form()).get("csrf_token")
        return token

    Viewer = Annotated[Caller, Depends(caller)]

    async def actor(who: Viewer, request: Request) -> Caller:
        """A caller allowed to change something: right CSRF token, operator or admin."""
        if not signer.check_csrf(who.session, await csrf_token_of(request)):
            log.warning("POST refused: bad or missing CSRF token", extra={"user": who.name, "path": request.url.path})
            raise Refused(403, "err.csrf")
        if not who.can_act:
            log.warning("POST refused: role may not act", extra={"user": who.name, "role": str(who.role)})
            raise Refused(403, "err.forbidden")
        return who

    async def poster(who: Viewer, request: Request) -> Caller:
        """Any logged-in caller with the right CSRF token (logout)."""
        if not signer.check_csrf(who.session, await csrf_token_of(request)):
            raise Refused(403, "err.csrf")
        return who

    Actor = Annotated[Caller, Depends(actor)]
    Poster = Annotated[Caller, Depends(poster)]

    def login_nonce(request: Request) -> str:
        nonce = request.cookies.get(LOGIN_COOKIE) or ""
        return nonce if _NONCE.fullmatch(nonce) else secrets.token_urlsafe(16)

    def keep_login_nonce(response: Response, nonce: str) -> None:
        response.set_cookie(LOGIN_COOKIE, nonce, max_age=3600, httponly=True, samesite="strict",
                            secure=config.secure_cookies)

    def page(request: Request, name: str, who: Caller | None, **ctx: Any) -> HTMLResponse:
        lang = lang_of(request)
        nonce = login_nonce(request) if who is None else ""
        response = templates.TemplateResponse(request, name, {
            "lang": lang, "other_lang": [x for x in LANGS if x != lang][0], "t": lambda k: text(lang, k),
            "me": who, "csrf": signer.csrf_for(who.session if who else None, nonce), "path": request.url.path,
            **ctx})
        if who is None:
            keep_login_nonce(response, nonce)
        if request.query_params.get("lang") in LANGS:
            response.set_cookie(LANG_COOKIE, lang, samesite="strict", max_age=365 * 86400)
        return response

    # ------------------------------------------------------------------ login
    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page(request: Request, next: str = "/", expired: int = 0, failed: int = 0):
        return page(request, "login.html", None, next=next if next.startswith("/") else "/",
                    expired=bool(expired), failed=bool(failed))

    @app.post("/login", include_in_schema=False)
    def login(request: Request, user: str = Form(...), password: str = Form(...), csrf_token: str = Form(""),
              next: str = Form("/")):
        if not signer.check_csrf(None, csrf_token, request.cookies.get(LOGIN_COOKIE)):
            raise Refused(403, "err.csrf")
        address = request.client.host if request.client else "-"
        wait = throttle.wait_s(address, user[:64])
        if wait > 0:
            log.warning("console login throttled", extra={"user": user[:64], "address": address})
            audit.record(store, [audit.AuditRow(datetime.now(UTC), user[:64], "-", "login", None, None,
                                                "throttled", address)])
            return JSONResponse({"error": "err.throttled", "message": text(lang_of(request), "err.throttled")},
                                status_code=429, headers={"Retry-After": str(int(wait) + 1)})
        found = users.authenticate(user, password)
        target = next if next.startswith("/") and not next.startswith("//") else "/"
        if found is None:
            throttle.failed(address, user[:64])
            log.warning("console login failed", extra={"user": user[:64], "address": address})
            audit.record(store, [audit.AuditRow(datetime.now(UTC), user[:64], "-", "login", None, None,
                                                "failed", None)])
            return RedirectResponse(f"/login?failed=1&next={quote(target, safe='')}", status_code=303)
        throttle.succeeded(address, user[:64])
        cookie, _ = signer.new_session(found.name, config.session_ttl_s)
        log.info("console login", extra={"user": found.name, "role": str(found.role)})
        audit.record(store, [audit.AuditRow(datetime.now(UTC), found.name, str(found.role), "login", None, None,
                                            "ok", None)])
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(SESSION_COOKIE, cookie, max_age=int(config.session_ttl_s), httponly=True,
                            samesite="strict", secure=config.secure_cookies)
        response.delete_cookie(LOGIN_COOKIE)
        return response

    @app.post("/logout", include_in_schema=False)
    def logout(who: Poster):
        signer.revoke(who.session)   # the cookie, wherever a copy of it is, stops working now
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.get("/healthz", include_in_schema=False)
    def healthz():
        return {"ok": True}

    # ------------------------------------------------------------------ JSON API
    @app.get("/api/csrf", tags=["access"], summary="The CSRF token for the next POST (login token before login)")
    def api_csrf(request: Request):
        session = signer.session(request.cookies.get(SESSION_COOKIE))
        nonce = login_nonce(request) if session is None else ""
        response = JSONResponse({"csrf_token": signer.csrf_for(session, nonce), "logged_in": session is not None})
        if session is None:
            keep_login_nonce(response, nonce)
        return response

    @app.get("/api/me", tags=["access"])
    def api_me(who: Viewer):
        return {"user": who.name, "role": str(who.role), "can_act": who.can_act,
                "expires_at": datetime.fromtimestamp(who.session.expires, UTC).isoformat()}

    @app.get("/api/overview", tags=["watch"], summary="Broker nodes, alarms, blocked connections, nodes, rates, DB")
    def api_overview(who: Viewer):
        return views.overview()

    @app.get("/api/queues", tags=["watch"], summary="Depth, rates, consumers, unacked per queue; retries; DLQ")
    def api_queues(who: Viewer):
        return views.queues()

    @app.get("/api/dlq", tags=["dead letters"], summary="Browse hub.dlq (nothing is consumed)")
    def api_dlq(who: Viewer, limit: int = 200):
        items = desk.browse(max(1, min(limit, 2000)))
        return {"count": desk.depth(), "items": [d.summary() for d in items]}

    @app.get("/api/dlq/{key}", tags=["dead letters"], summary="One dead letter: headers, reason, payload decoded")
    def api_dlq_one(who: Viewer, key: str):
        found = desk.find(key)
        if found is None:
            raise Refused(404, "dlq.not_found")
        return found.as_dict()

    @app.post("/api/dlq/replay", tags=["dead letters"], summary="Replay to the original route (operator, admin)")
    async def api_replay(who: Actor, body: ReplayRequest):
        if not body.all and not body.keys:
            return JSONResponse({"error": "nothing selected: give keys or all=true"}, status_code=422)
        result = await run_in_threadpool(desk.replay, None if body.all else body.keys, who=who.name,
                                         role=str(who.role))
        metrics.actions.labels("replay", "replayed").inc(len(result.done))
        for d in result.skipped:
            metrics.actions.labels("replay", d.get("why", "skipped")).inc()
        return result.as_dict()

    @app.post("/api/dlq/discard", tags=["dead letters"], summary="Discard with a reason (operator, admin)")
    async def api_discard(who: Actor, body: DiscardRequest):
        result = await run_in_threadpool(desk.discard, body.keys, body.reason, who=who.name, role=str(who.role))
        metrics.actions.labels("discard", "discarded").inc(len(result.done))
        return result.as_dict()

    @app.get("/api/search", tags=["search"], summary="By message id, serial number, correlation id, customer number")
    def api_search(who: Viewer, q: str, limit: int = 50):
        return views.search(q, max(1, min(limit, 200)))

    @app.get("/api/orders", tags=["orders"], summary="Today's statistics by province, in flight, overdue")
    def api_orders(who: Viewer):
        return views.orders()

    @app.get("/api/knowledge", tags=["knowledge"], summary="Knowledge sync matrix: item x recipient")
    def api_knowledge(who: Viewer):
        return views.knowledge()

    @app.get("/api/audit", tags=["access"], summary="The latest console actions: who, when, what")
    def api_audit(who: Viewer, limit: int = 200, message_id: str | None = None):
        return {"items": [r.as_dict() for r in audit.latest(store, max(1, min(limit, 1000)), message_id)]}

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # ------------------------------------------------------------------ pages
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def overview_page(who: Viewer, request: Request):
        return page(request, "overview.html", who, data=views.overview())

    @app.get("/queues", response_class=HTMLResponse, include_in_schema=False)
    def queues_page(who: Viewer, request: Request):
        return page(request, "queues.html", who, data=views.queues())

    @app.get("/dlq", response_class=HTMLResponse, include_in_schema=False)
    def dlq_page(who: Viewer, request: Request, done: str = ""):
        items = desk.browse(500)
        return page(request, "dlq.html", who, items=[d.summary() for d in items], count=desk.depth(),
                    done=done if _DONE.fullmatch(done) else "")   # only our own redirect's figures, no free text

    @app.get("/dlq/{key}", response_class=HTMLResponse, include_in_schema=False)
    def dlq_one_page(who: Viewer, key: str, request: Request):
        found = desk.find(key)
        history = audit.latest(store, 50, found.message_id) if found and found.message_id else []
        return page(request, "dlq_one.html", who, item=found.as_dict() if found else None, key=key,
                    history=[h.as_dict() for h in history])

    @app.post("/dlq/replay", include_in_schema=False)
    async def dlq_replay_form(who: Actor, request: Request):
        form = await request.form()
        keys = None if form.get("all") == "1" else [str(k) for k in form.getlist("keys")]
        if keys == []:
            return RedirectResponse("/dlq", status_code=303)
        result = await run_in_threadpool(desk.replay, keys, who=who.name, role=str(who.role))
        metrics.actions.labels("replay", "replayed").inc(len(result.done))
        return RedirectResponse(f"/dlq?done=replay:{len(result.done)}:{len(result.skipped)}", status_code=303)

    @app.post("/dlq/discard", include_in_schema=False)
    async def dlq_discard_form(who: Actor, request: Request):
        form = await request.form()
        keys = [str(k) for k in form.getlist("keys")]
        reason = str(form.get("reason") or "").strip()
        if not keys or not reason:
            return RedirectResponse("/dlq", status_code=303)
        result = await run_in_threadpool(desk.discard, keys, reason, who=who.name, role=str(who.role))
        metrics.actions.labels("discard", "discarded").inc(len(result.done))
        return RedirectResponse(f"/dlq?done=discard:{len(result.done)}:0", status_code=303)

    @app.get("/search", response_class=HTMLResponse, include_in_schema=False)
    def search_page(who: Viewer, request: Request, q: str = ""):
        return page(request, "search.html", who, q=q, data=views.search(q) if q.strip() else None)

    @app.get("/orders", response_class=HTMLResponse, include_in_schema=False)
    def orders_page(who: Viewer, request: Request):
        return page(request, "orders.html", who, data=views.orders())

    @app.get("/knowledge", response_class=HTMLResponse, include_in_schema=False)
    def knowledge_page(who: Viewer, request: Request):
        return page(request, "knowledge.html", who, data=views.knowledge())

    @app.get("/audit", response_class=HTMLResponse, include_in_schema=False)
    def audit_page(who: Viewer, request: Request):
        return page(request, "audit.html", who, items=[r.as_dict() for r in audit.latest(store, 300)])

    return app


def build(settings: Settings, config: ConsoleConfig) -> tuple[FastAPI, Store]:
    """The app for `hub console`: configuration, store and order settings loaded from the settings."""
    from hub.configuration import load_config
    from hub.flows.order_tracker import ensure_tables
    from hub.store import open_store

    cfg = load_config(settings.config_dir, settings.routes_dir)
    store = open_store(settings.store_url)
    ensure_tables(store)
    return create_app(settings, store, cfg.directory, config), store


def serve(settings: Settings, config: ConsoleConfig, host: str = "127.0.0.1", port: int = 8640) -> int:
    import uvicorn

    app, store = build(settings, config)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        store.close()
    return 0
