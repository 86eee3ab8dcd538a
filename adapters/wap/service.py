"""The WAP endpoint: XML over HTTP in, request/reply on the bus, the province's answer out.

Owns: the FastAPI application (POST /wap, GET /wap/health), HTTP Basic authentication of the
configured clients, their token buckets, reading the body safely (size limit, then
protocols.xmlwire.parse: declared encodings only, no DTD/entities), turning a QueryRequest
into a wap.query and a TransactionRequest into a wap.transaction published as node WAP
(through hub.in, with x-hub-origin-user, so the hop authenticates, checks and routes it like
any node's message), waiting for the answer, receipt or negative acknowledgement by
correlation_id on node.WAP within the configured time, and mapping reason codes to HTTP
statuses. Uvicorn runs in a thread of its own; the bus (hub.adapter_bus.Bus: one
SelectConnection thread with publisher confirms) in another.
Must not: decide where a query goes (routes/wap.yaml and the segment table do) or log secrets.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from adapters.wap.config import WapConfig
from adapters.wap.ratelimit import TokenBucket
from hub import envelope as ev
from hub.adapter_bus import Bus
from hub.envelope import Incoming, Outgoing, Props
from hub.settings import Settings
from protocols import xmlwire
from protocols.errors import HubError, ReasonCode, RejectedMessage
from protocols.wap import wire

log = logging.getLogger("adapters.wap")

NODE = "WAP"
QUEUE = f"node.{NODE}"
HUB_NS = "urn:cs-hub:hub:1"

STATUS = {
    ReasonCode.CLIENT_UNAUTHORIZED: 401,
    ReasonCode.CLIENT_RATE_LIMITED: 429,
    ReasonCode.OVERSIZE: 413,
    ReasonCode.UNKNOWN_SEGMENT: 404,
    ReasonCode.PARTNER_TIMEOUT: 504,
    ReasonCode.PARTNER_UNAVAILABLE: 503,
}
CLIENT_FAULTS = {ReasonCode.XML_MALFORMED, ReasonCode.XML_FORBIDDEN, ReasonCode.XSD_INVALID,
                 ReasonCode.FIELD_INVALID, ReasonCode.ENCODING_INVALID, ReasonCode.ENCODING_MISMATCH,
                 ReasonCode.MISSING_PROPERTY}


def http_status(reason: ReasonCode) -> int:
    if reason in STATUS:
        return STATUS[reason]
    return 400 if reason in CLIENT_FAULTS else 502


@dataclass
class _Waiting:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    confirmed: threading.Event = field(default_factory=threading.Event)


class WapEndpoint:
    """One WAP endpoint process: `start()`, `url`, `health()`, `stop()`."""

    def __init__(self, settings: Settings, config: WapConfig, *, clock=time.monotonic) -> None:
        self.settings = settings
        self.config = config
        self.clock = clock
        self.origin_user = settings.broker_user(f"node-{NODE}")
        self.clients = {c.name: c for c in config.clients}
        self.buckets = {c.name: TokenBucket(c.rate_per_s, c.burst) for c in config.clients}
        self.pending: dict[str, _Waiting] = {}
        self.receipts: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.stats = {"requests": 0, "answered": 0, "timeouts": 0, "refused": 0, "late": 0}
        self.bus = Bus(settings, queue=QUEUE, prefetch=500, on_delivery=self._on_delivery,
                       on_confirmed=self._on_confirmed, name="cs-hub wap")
        self.app = self._build_app()
        self._server: uvicorn.Server | None = None
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> WapEndpoint:
        bus = threading.Thread(target=self.bus.run, name="wap-bus", daemon=True)
        bus.start()
        if not self.bus.wait_ready(timeout):
            raise HubError(f"the WAP endpoint could not consume {QUEUE} within {timeout} s; is the topology "
                           "applied (hub topology apply)?", reason=ReasonCode.PARTNER_UNAVAILABLE)
        cfg = uvicorn.Config(self.app, host=self.config.host, port=self.config.port, log_level="warning",
                             lifespan="off", access_log=False)
        self._server = uvicorn.Server(cfg)
        http = threading.Thread(target=self._server.run, name="wap-http", daemon=True)
        http.start()
        self._threads = [bus, http]
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not http.is_alive():
                raise HubError(f"the WAP endpoint did not listen on {self.config.host}:{self.config.port}",
                               reason=ReasonCode.PARTNER_UNAVAILABLE)
            time.sleep(0.01)
        log.info("WAP endpoint listening on %s", self.url)
        return self

    @property
    def port(self) -> int:
        return self._server.servers[0].sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}/wap"

    def health(self) -> dict:
        return {"adapter": "wap", "broker": dict(self.bus.health), "pending": len(self.pending), **self.stats}

    def stop(self, timeout: float = 15.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self.bus.stop()
        for t in self._threads:
            t.join(timeout)

    # -- the bus side (bus thread) ------------------------------------------------------------------

    def _on_delivery(self, msg: Incoming, tag) -> None:
        self.bus.ack([tag])
        corr = msg.props.correlation_id or ""
        waiting = self.pending.get(corr)
        if msg.props.type == wire.RECEIPT_TYPE:
            self._keep_receipt(corr, msg)
        if msg.props.type not in (wire.ANSWER_TYPE, wire.RECEIPT_TYPE, "hub.nack"):
            log.info("ignored a %s on %s", msg.props.type, QUEUE, extra={"message_id": msg.props.message_id})
            return
        if waiting is None:
            self.stats["late"] += 1
            log.warning("a %s arrived for no waiting request (late or unknown)", msg.props.type,
                        extra={"message_id": msg.props.message_id, "correlation_id": corr})
            return
        waiting.loop.call_soon_threadsafe(_resolve, waiting.future, msg)

    def _on_confirmed(self, keys: list[str]) -> None:
        for key in keys:
            waiting = self.pending.get(key)
            if waiting is not None:
                waiting.confirmed.set()

    def _keep_receipt(self, message_id: str, msg: Incoming) -> None:
        now = self.clock()
        self.receipts[message_id] = (now, _utf8(msg))
        while self.receipts:
            first, (at, _) = next(iter(self.receipts.items()))
            if now - at <= self.config.receipts_keep_s and len(self.receipts) <= 100_000:
                break
            self.receipts.pop(first)

    # -- HTTP (event loop thread) ---------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI(title="cs-hub WAP endpoint", docs_url=None, redoc_url=None, openapi_url=None)

        @app.get("/wap/health")
        async def health() -> JSONResponse:
            return JSONResponse(self.health(), status_code=200 if self.bus.health.get("consuming") else 503)

        @app.post("/wap")
        async def handle(request: Request) -> Response:
            self.stats["requests"] += 1
            request_id, body = None, None
            try:
                client = self._authenticate(request)
                self._rate_limit(client)
                body = await _read_body(request, self.config.max_body_bytes, self.config.read_timeout_s)
                root, _ = xmlwire.parse(body, _charset(request.headers.get("content-type")),
                                        max_bytes=self.config.max_body_bytes)
                req = wire.parse_request(root)
                request_id = req.request_id
                if isinstance(req, wire.QueryRequest):
                    wire.check_query(req.kind, req.month, datetime.now(UTC))
                    return await self._query(client, req)
                return await self._transaction(client, req)
            except HubError as exc:
                response = self._refuse(exc, request_id)
                if body is None:   # refused before the whole body was read: do not wait for the rest
                    response.headers["Connection"] = "close"
                return response

        return app

    def _authenticate(self, request: Request) -> str:
        refused = RejectedMessage("The request has no valid credentials; send HTTP Basic authentication with "
                                  "the client name and secret configured in config/wap.yaml.",
                                  reason=ReasonCode.CLIENT_UNAUTHORIZED)
        header = request.headers.get("authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic" or not token:
            raise refused
        try:
            name, _, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise refused from None
        client = self.clients.get(name)
        if client is None or not client.enabled or not client.password_ok(password):
            log.warning("WAP client refused", extra={"client": name[:32]})
            raise refused
        return name

    def _rate_limit(self, client: str) -> None:
        ok, wait = self.buckets[client].take(self.clock())
        if not ok:
            exc = RejectedMessage(f"Client {client} sent more than {self.clients[client].rate_per_s:g} requests "
                                  f"per second; retry after {wait:.2f} s.", reason=ReasonCode.CLIENT_RATE_LIMITED)
            exc.retry_after = wait  # type: ignore[attr-defined]
            raise exc

    def _outgoing(self, message_id: str, type_name: str, tree, reply_to: str) -> Outgoing:
        props = Props(message_id=message_id, type=type_name, content_type="application/xml",
                      content_encoding="utf-8", app_id="cs-hub wap", timestamp=int(time.time()), delivery_mode=2,
                      reply_to=reply_to, headers={ev.H_ORIGIN_USER: self.origin_user})
        # hub.deliver -> hub.in: the hop takes it as node WAP's message (x-hub-origin-user), like a
        # retry; it authenticates, checks (SPOOFED_SENDER: CompanyCode WAP) and routes it.
        return Outgoing(ev.DELIVER_EXCHANGE, ev.HUB_QUEUE, props, xmlwire.serialise(tree, "utf-8"))

    async def _exchange(self, message_id: str, type_name: str, tree, wait_s: float) -> tuple[Incoming | None, bool]:
        """Publish and wait for the reply: (reply or None on timeout, whether the broker confirmed)."""
        if len(self.pending) >= self.config.max_pending and message_id not in self.pending:
            raise HubError(f"{len(self.pending)} requests are already waiting for answers; retry shortly.",
                           reason=ReasonCode.PARTNER_UNAVAILABLE)
        loop = asyncio.get_running_loop()
        waiting = self.pending.get(message_id)
        owner = waiting is None
        if owner:
            waiting = _Waiting(loop, loop.create_future())
            self.pending[message_id] = waiting
            self.bus.publish([(message_id, self._outgoing(message_id, type_name, tree, QUEUE))], [])
        try:
            reply = await asyncio.wait_for(asyncio.shield(waiting.future), wait_s)
            return reply, True
        except TimeoutError:
            return None, waiting.confirmed.is_set()
        finally:
            if owner:
                self.pending.pop(message_id, None)

    async def _query(self, client: str, req: wire.QueryRequest) -> Response:
        message_id = f"wap.q.{uuid.uuid4().hex}"
        timeout = self.config.answer_timeout_s
        tree = wire.query_tree(req, NODE, datetime.now(UTC), int(round(timeout)) or 1)
        log.info("WAP query", extra={"message_id": message_id, "client": client, "kind": req.kind})
        reply, _ = await self._exchange(message_id, wire.QUERY_TYPE, tree, timeout)
        if reply is None:
            self.stats["timeouts"] += 1
            exc = HubError(f"The customer's home province did not answer query {req.request_id} within "
                           f"{timeout:g} s; try again later.", reason=ReasonCode.PARTNER_TIMEOUT)
            return self._refuse(exc, req.request_id, zh=f"用户归属省未在 {timeout:g} 秒内应答查询,请稍后重试。")
        return self._reply(reply, req.request_id)

    async def _transaction(self, client: str, req: wire.TransactionRequest) -> Response:
        message_id = f"wap.tx.{client}.{req.request_id}"
        kept = self.receipts.get(message_id)
        if kept is not None:
            return _xml(kept[1], 200)
        tree = wire.transaction_tree(req, NODE, datetime.now(UTC))
        log.info("WAP transaction", extra={"message_id": message_id, "client": client, "service": req.service})
        reply, confirmed = await self._exchange(message_id, wire.TRANSACTION_TYPE, tree, self.config.receipt_wait_s)
        if reply is not None:
            return self._reply(reply, req.request_id)
        if not confirmed:
            exc = HubError(f"The hub could not forward transaction {req.request_id} (the broker did not confirm "
                           "it); send it again.", reason=ReasonCode.PARTNER_UNAVAILABLE)
            return self._refuse(exc, req.request_id)
        return _xml(xmlwire.serialise(wire.accepted_tree(req.request_id, message_id), "utf-8"), 202)

    def _reply(self, msg: Incoming, request_id: str) -> Response:
        if msg.props.type == "hub.nack":
            return self._refuse(_nack_error(msg), request_id)
        if msg.props.type not in (wire.ANSWER_TYPE, wire.RECEIPT_TYPE):
            return self._refuse(HubError(f"Unexpected reply type {msg.props.type!r}.",
                                         reason=ReasonCode.PARTNER_FAULT), request_id)
        self.stats["answered"] += 1
        return _xml(_utf8(msg), 200)

    def _refuse(self, exc: HubError, request_id: str | None, zh: str | None = None) -> Response:
        self.stats["refused"] += 1
        status = http_status(exc.reason)
        headers = {}
        if status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="cs-hub WAP", charset="UTF-8"'
        if status == 429:
            headers["Retry-After"] = str(max(1, int(getattr(exc, "retry_after", 1) + 0.999)))
        body = xmlwire.serialise(wire.error_tree(exc, request_id, zh), "utf-8")
        return _xml(body, status, headers)


def _resolve(future: asyncio.Future, msg: Incoming) -> None:
    if not future.done():
        future.set_result(msg)


def _utf8(msg: Incoming) -> bytes:
    """The reply re-encoded as UTF-8 (a GBK province's answer reaches the WAP system in UTF-8)."""
    try:
        root, enc = xmlwire.parse(msg.body, msg.props.content_encoding)
    except HubError:
        return msg.body
    return msg.body if enc == "utf-8" else xmlwire.serialise(root, "utf-8")


def _nack_error(msg: Incoming) -> HubError:
    """The hub's negative acknowledgement of our query as an error with its reason code."""
    try:
        root, _ = xmlwire.parse(msg.body, msg.props.content_encoding)
    except HubError:
        return HubError("The hub refused the request.", reason=ReasonCode.PARTNER_FAULT)
    ns = {"h": HUB_NS}
    code = root.findtext("h:ReasonCode", namespaces=ns) or ""
    detail = root.findtext("h:Reason[@lang='en']", namespaces=ns) or "The hub refused the request."
    try:
        reason = ReasonCode(code)
    except ValueError:
        reason = ReasonCode.PARTNER_FAULT
    return HubError(detail.split(": ", 1)[-1], reason=reason, field=root.findtext("h:Field", namespaces=ns))


def _charset(content_type: str | None) -> str | None:
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset":
            return value.strip().strip('"') or None
    return None


async def _read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The body, counted as it streams in (a chunked body has no Content-Length to trust), within
    `timeout_s`: uvicorn has no body timeout of its own, and a slow sender would hold its connection."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RejectedMessage(f"The request has {declared} bytes; the limit is {limit}.",
                              reason=ReasonCode.OVERSIZE, value=int(declared))
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise RejectedMessage(f"The request is larger than {limit} bytes.", reason=ReasonCode.OVERSIZE)
                chunks.append(chunk)
    except TimeoutError:
        raise RejectedMessage(f"The request body did not arrive within {timeout_s:g} s ({size} bytes came); send "
                              "the whole request at once.", reason=ReasonCode.XML_MALFORMED, value=size) from None
    except ClientDisconnect:
        raise RejectedMessage(f"The client closed the connection after {size} bytes of the request body.",
                              reason=ReasonCode.XML_MALFORMED, value=size) from None
    return b"".join(chunks)


def _xml(body: bytes, status: int, headers: dict | None = None) -> Response:
    # Answers carry customer data: no cache (a proxy, the WAP hall's own) may keep them.
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", **(headers or {})}
    return Response(body, status_code=status, media_type="application/xml; charset=utf-8", headers=headers)
