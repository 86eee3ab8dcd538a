"""The hub's SOAP intake for legacy nodes: authenticate, parse safely, publish as the node, answer.

Owns: the ASGI application (FastAPI) serving intake.wsdl at GET <path>?wsdl and Submit at
POST <path>; the order of the checks (size before reading on, then credentials, then the
envelope, the operation, the type and the payload); one publisher per node that connects to
RabbitMQ as that node's own AMQP user; and the answer: SubmitResponse accepted only after
RabbitMQ confirmed the message on hub.ingress, otherwise a SOAP 1.1 Fault whose detail names
the hub's reason code (protocols/soap/messages.py `refusal`).

Spoofing: the message is published with user_id set to the authenticated node's AMQP user,
on a connection logged in as that user. RabbitMQ refuses a user_id that is not the
connection's user (406), so a node authenticated here can only ever publish as itself; the
hub's pipeline then checks the payload's sender against that user like any AMQP message
(SPOOFED_SENDER). The intake holds only the passwords of its SOAP nodes, never the hub's.
The same checks are run here first so that a node hears about a bad message in its HTTP
answer; the pipeline stays the authority (a later refusal arrives as hub.nack).
Must not: route, or publish anywhere but hub.ingress.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import threading
import time
from dataclasses import dataclass

import pika
import pika.exceptions
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from adapters.soap.config import SoapFile
from hub import envelope as ev
from hub.message_types import Catalogue
from hub.nodes import Directory, Node
from hub.settings import Settings
from protocols import schemas, xmlwire
from protocols.errors import HubError, ReasonCode, RejectedMessage, TransientFailure
from protocols.soap import envelope as soap
from protocols.soap import messages

log = logging.getLogger("adapters.soap.intake")

_DUMMY = b"\x00" * 32


class Unauthenticated(RejectedMessage):
    """No credentials, or wrong ones: answered HTTP 401 with a Fault."""

    reason = ReasonCode.SENDER_UNAUTHENTICATED


@dataclass(frozen=True)
class Account:
    node: Node
    username: str
    password: bytes


class NodePublisher:
    """Publishes to hub.ingress as one node, with publisher confirms; thread-safe (one at a time)."""

    def __init__(self, settings: Settings, node: Node, password: str, confirm_timeout_s: float) -> None:
        self.node = node
        self.user = settings.broker_user(node.amqp_user)
        self.params = pika.URLParameters(settings.amqp_url_for_vhost(self.user, password))
        self.params.connection_attempts = 1
        self.params.socket_timeout = confirm_timeout_s
        self.params.blocked_connection_timeout = confirm_timeout_s
        self.params.client_properties = {"connection_name": f"cs-hub soap-intake {node.code}"}
        self._lock = threading.Lock()
        self._conn: pika.BlockingConnection | None = None
        self._ch = None

    def publish(self, type_name: str, body: bytes, props: pika.BasicProperties) -> None:
        """Returns once RabbitMQ confirmed; TransientFailure otherwise (the node may resend)."""
        with self._lock:
            for attempt in (1, 2):   # a connection found dead is replaced once at once
                try:
                    ch = self._channel()
                    ch.basic_publish(ev.INGRESS_EXCHANGE, type_name, body, props, mandatory=True)
                    return
                except pika.exceptions.UnroutableError:
                    raise TransientFailure("RabbitMQ could not route the message from hub.ingress; the hub's "
                                           "topology is incomplete (run `hub topology apply`).",
                                           reason=ReasonCode.PARTNER_UNAVAILABLE) from None
                except pika.exceptions.NackError:
                    raise TransientFailure("RabbitMQ refused to take the message now (publisher nack); send it "
                                           "again later.", reason=ReasonCode.PARTNER_UNAVAILABLE) from None
                except (pika.exceptions.AMQPError, OSError) as exc:
                    self._drop()
                    if attempt == 2:
                        raise TransientFailure(f"RabbitMQ is not available ({type(exc).__name__}); send the "
                                               "message again later.", reason=ReasonCode.PARTNER_UNAVAILABLE) from None

    def _channel(self):
        if self._conn is None or not self._conn.is_open or self._ch is None or not self._ch.is_open:
            self._drop()
            self._conn = pika.BlockingConnection(self.params)
            self._ch = self._conn.channel()
            self._ch.confirm_delivery()
        return self._ch

    def _drop(self) -> None:
        conn, self._conn, self._ch = self._conn, None, None
        if conn is not None and conn.is_open:
            try:
                conn.close()
            except Exception:
                pass

    def close(self) -> None:
        with self._lock:
            self._drop()


class Intake:
    """Everything a Submit needs, without the HTTP server (tests call `submit` directly too)."""

    def __init__(self, cfg: SoapFile, settings: Settings, directory: Directory, catalogue: Catalogue,
                 broker_passwords: dict[str, str]) -> None:
        self.cfg = cfg
        self.settings = settings
        self.catalogue = catalogue
        self.accounts: dict[str, Account] = {}
        self.publishers: dict[str, NodePublisher] = {}
        for code in cfg.intake_nodes:
            node = directory.by_code[code]
            acct = cfg.nodes[code].intake
            self.accounts[acct.username] = Account(node, acct.username,
                                                   cfg.intake_password(code).get_secret_value().encode())
            user = settings.broker_user(node.amqp_user)
            self.publishers[code] = NodePublisher(settings, node, broker_passwords[user],
                                                  cfg.intake.confirm_timeout_s)
        self.stats = {"accepted": 0, "refused": 0}

    def close(self) -> None:
        for p in self.publishers.values():
            p.close()

    # --- authentication --------------------------------------------------------------------------

    def check_basic(self, authorization: str | None) -> Account | None:
        """The account of an HTTP Basic header; None when there is none; Unauthenticated when wrong."""
        if not authorization:
            return None
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise Unauthenticated(f"Authorization scheme {scheme!r} is not accepted; use Basic or a "
                                  "WS-Security UsernameToken.", field="Authorization")
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthenticated("The Basic credentials are not valid base64 of user:password.",
                                  field="Authorization") from None
        return self._verify(user, password)

    def _verify(self, user: str, password: str) -> Account:
        acct = self.accounts.get(user)
        # Compare against a dummy for unknown users too, so timing does not tell which names exist;
        # digests of equal length, so it does not tell the password's length either.
        ok = hmac.compare_digest(hashlib.sha256(password.encode()).digest(),
                                 hashlib.sha256(acct.password if acct else _DUMMY).digest())
        if acct is None or not ok:
            raise Unauthenticated("The user name or password is wrong.", field="Authorization")
        return acct

    # --- one request ----------------------------------------------------------------------------

    def submit(self, data: bytes, content_type: str | None, authorization: str | None) -> tuple[int, bytes]:
        """Handle one POST; returns (HTTP status, response envelope bytes)."""
        acct: Account | None = None
        req: messages.SubmitRequest | None = None
        started = time.monotonic()
        try:
            acct = self.check_basic(authorization)
            env = soap.parse_envelope(data, content_type, max_bytes=self.cfg.intake.max_request_bytes)
            if acct is None:
                token = soap.username_token(env.header)
                if token is None:
                    raise Unauthenticated("No credentials: send HTTP Basic authentication or a WS-Security "
                                          "UsernameToken in the SOAP header.", field="Authorization")
                acct = self._verify(*token)
            req = messages.parse_submit(env.body)
            body, props = self.prepare(acct.node, req)
            self.publishers[acct.node.code].publish(req.type, body, props)
        except HubError as exc:
            self.stats["refused"] += 1
            log.warning("SOAP submission refused", extra={
                "node": acct.node.code if acct else None, "message_id": req.message_id if req else None,
                "type": req.type if req else None, "reason_code": str(exc.reason), "error": exc.detail})
            status = 401 if isinstance(exc, Unauthenticated) else 500   # SOAP 1.1 section 6.2: faults are 500
            return status, soap.build_fault(exc, messages.refusal(exc, req.message_id if req else None))
        except Exception as exc:  # a bug: the node may try again; say so without details
            log.exception("SOAP submission failed", extra={"node": acct.node.code if acct else None})
            err = HubError(f"Unexpected error in the hub's intake ({type(exc).__name__}); send again later.",
                           reason=ReasonCode.PROCESSING_ERROR)
            return 500, soap.build_fault(err, messages.refusal(err, req.message_id if req else None))
        self.stats["accepted"] += 1
        log.info("SOAP submission accepted", extra={"node": acct.node.code, "message_id": req.message_id,
                                                    "type": req.type,
                                                    "elapsed_ms": int((time.monotonic() - started) * 1000)})
        return 200, soap.build_envelope(messages.submit_response(req.message_id))

    def prepare(self, node: Node, req: messages.SubmitRequest) -> tuple[bytes, pika.BasicProperties]:
        """The checks a node's message gets at the hub's door, then the bytes and properties to publish."""
        mtype = self.catalogue.types.get(req.type)
        if mtype is None or mtype.produced_by_hub:
            raise RejectedMessage(f"Message type {req.type!r} is not accepted from nodes; see the message types "
                                  "in docs/contract.md.", reason=ReasonCode.UNKNOWN_TYPE, field="Type",
                                  value=req.type[:100])
        root = messages.payload_tree(req.payload, max_bytes=node.limits.max_message_bytes)
        expected = self.catalogue.root_tag(req.type)
        if root.tag != expected:
            raise RejectedMessage(f"A {req.type} message must have root element {expected}, not {root.tag}.",
                                  reason=ReasonCode.XSD_INVALID, field="Payload", value=str(root.tag)[:120])
        schemas.validate(mtype.schema_name, root)
        claimed = self.catalogue.sender_of(req.type, root)
        if claimed is not None and claimed != node.code:
            raise RejectedMessage(f"The payload names sender {claimed!r} but you authenticated as node "
                                  f"{node.code}.", reason=ReasonCode.SPOOFED_SENDER, field="CompanyCode",
                                  value=claimed)
        body = xmlwire.serialise(root, node.encoding)
        props = pika.BasicProperties(
            message_id=req.message_id, type=req.type, correlation_id=req.correlation_id,
            user_id=self.settings.broker_user(node.amqp_user), content_type="application/xml",
            content_encoding=node.encoding, delivery_mode=2, timestamp=int(time.time()),
            app_id="cs-hub soap-intake")
        return body, props


def create_app(intake: Intake) -> FastAPI:
    """The ASGI application: GET <path>?wsdl and POST <path>."""
    cfg = intake.cfg.intake
    app = FastAPI(title="cs-hub SOAP intake", docs_url=None, redoc_url=None, openapi_url=None)
    limit = cfg.max_request_bytes

    @app.get(cfg.path)
    async def wsdl(request: Request) -> Response:
        if "wsdl" not in {k.lower() for k in request.query_params}:
            return Response("POST SOAP 1.1 requests here; GET ?wsdl for the description.\n",
                            media_type="text/plain; charset=utf-8")
        address = cfg.public_url or str(request.url.replace(query=""))   # default: the address asked
        return Response(messages.wsdl_text("intake", address), media_type="text/xml; charset=utf-8")

    @app.post(cfg.path)
    async def submit(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return _fault_response(RejectedMessage(f"The request has {declared} bytes; the limit is {limit}.",
                                                   reason=ReasonCode.OVERSIZE, value=int(declared)))
        # Counted as it streams (a chunked body has no Content-Length), within read_timeout_s: uvicorn
        # has no body timeout, and this is before authentication.
        chunks, size = [], 0
        try:
            async with asyncio.timeout(cfg.read_timeout_s):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        return _fault_response(RejectedMessage(
                            f"The request is larger than the limit of {limit} bytes.", reason=ReasonCode.OVERSIZE))
                    chunks.append(chunk)
        except TimeoutError:
            return _fault_response(RejectedMessage(
                f"The request body did not arrive within {cfg.read_timeout_s:g} s ({size} bytes came); send the "
                "whole request at once.", reason=ReasonCode.XML_MALFORMED, value=size))
        except ClientDisconnect:
            log.info("SOAP client closed the connection after %d bytes of the body", size)
            return Response(status_code=400)
        status, body = await run_in_threadpool(intake.submit, b"".join(chunks),
                                               request.headers.get("content-type"),
                                               request.headers.get("authorization"))
        headers = {"WWW-Authenticate": 'Basic realm="cs-hub"'} if status == 401 else None
        return Response(body, status_code=status, media_type=soap.CONTENT_TYPE, headers=headers)

    return app


def _fault_response(exc: HubError) -> Response:
    """A refusal before the whole body was read: the connection is closed after it."""
    log.warning("SOAP submission refused", extra={"reason_code": str(exc.reason), "error": exc.detail})
    return Response(soap.build_fault(exc, messages.refusal(exc)), status_code=500, media_type=soap.CONTENT_TYPE,
                    headers={"Connection": "close"})


class IntakeServer:
    """uvicorn serving create_app(intake) in a thread; `port` is known once started."""

    def __init__(self, intake: Intake) -> None:
        import uvicorn

        cfg = intake.cfg.intake
        self.intake = intake
        self.server = uvicorn.Server(uvicorn.Config(create_app(intake), host=cfg.host, port=cfg.port,
                                                    log_level="warning", lifespan="off", access_log=False))
        self.server.install_signal_handlers = lambda: None  # the caller owns signals
        self.thread = threading.Thread(target=self.server.run, name="soap-intake", daemon=True)

    def start(self, timeout: float = 10.0) -> IntakeServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the SOAP intake did not start listening within {timeout:g} s")
            time.sleep(0.02)
        return self

    @property
    def port(self) -> int:
        return self.server.servers[0].sockets[0].getsockname()[1]

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.intake.close()
