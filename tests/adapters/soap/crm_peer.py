"""A province CRM played by spyne 2.14 (a published SOAP server), served by waitress on 127.0.0.1.

Owns: the CRM side of protocols/soap/crm.wsdl as another vendor would build it: spyne's own
service definition (not our WSDL), lxml validation of requests, idempotence by MessageId
(a second Deliver of a held message answers `duplicate`), and switches a test flips: answer
the next N calls with a soap:Server fault, hang the next N calls past the hub's operation
timeout, refuse a type, require a WS-Security UsernameToken. Started and stopped by the test,
with bounded waits; it never outlives the test.
Must not: know anything about the hub beyond the WSDL.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from spyne import Application, Fault, ServiceBase, Unicode, rpc
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication
from waitress.server import create_server

TNS = "urn:cs-hub:soap:crm:1"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"


@dataclass
class CrmState:
    held: dict[str, dict] = field(default_factory=dict)     # MessageId -> what was delivered
    calls: list[str] = field(default_factory=list)          # MessageId of every call, in order
    faults_left: int = 0
    hangs_left: int = 0
    hang_s: float = 3.0
    refuse_types: set[str] = field(default_factory=set)
    wsse: tuple[str, str] | None = None                     # required (user, password)
    tokens: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)


def _token(ctx) -> tuple[str, str] | None:
    for h in ctx.in_header_doc or ():
        tok = h.find(f"{{{WSSE}}}UsernameToken") if h.tag == f"{{{WSSE}}}Security" else None
        if tok is not None:
            return tok.findtext(f"{{{WSSE}}}Username"), tok.findtext(f"{{{WSSE}}}Password")
    return None


def make_application(state: CrmState) -> WsgiApplication:
    class CrmDeliveryService(ServiceBase):
        @rpc(Unicode, Unicode, Unicode, Unicode, Unicode, _returns=(Unicode, Unicode, Unicode),
             _out_variable_names=("Status", "ReasonCode", "Reason"))
        def Deliver(ctx, MessageId, Type, CorrelationId, Source, Payload):  # noqa: N802, N803 (the WSDL's names)
            with state.lock:
                state.calls.append(MessageId)
                if state.wsse is not None:
                    tok = _token(ctx)
                    state.tokens.append(tok)
                    if tok != state.wsse:
                        raise Fault("Client.Authentication", "UsernameToken missing or wrong")
                if Type in state.refuse_types:
                    return "refused", "TYPE_NOT_SUPPORTED", f"this CRM does not take {Type}"
                hang = state.hangs_left > 0
                if hang:
                    state.hangs_left -= 1
                elif state.faults_left > 0:
                    state.faults_left -= 1
                    raise Fault("Server", "CRM database unavailable (test)")
            if hang:
                # Past the hub's operation timeout: the hub gives up; the CRM does not store it.
                state.release.wait(state.hang_s)
                raise Fault("Server", "hung call (test)")
            with state.lock:
                if MessageId in state.held:
                    return "duplicate", None, None
                state.held[MessageId] = {"type": Type, "source": Source, "correlation_id": CorrelationId,
                                         "payload": Payload}
            return "accepted", None, None

    app = Application([CrmDeliveryService], tns=TNS, name="CrmDeliveryService",
                      in_protocol=Soap11(validator="lxml"), out_protocol=Soap11())
    return WsgiApplication(app)


class CrmServer:
    """waitress serving the spyne application on 127.0.0.1:<free port> in a thread."""

    def __init__(self, state: CrmState | None = None) -> None:
        self.state = state or CrmState()
        self.server = create_server(make_application(self.state), host="127.0.0.1", port=0, threads=4,
                                    channel_timeout=10, clear_untrusted_proxy_headers=True)
        self.port = self.server.effective_port
        self._stopping = False
        self.thread = threading.Thread(target=self._loop, name="crm-peer", daemon=True)

    def _loop(self) -> None:
        # waitress's own run() lasts while any keep-alive connection is open; this loop ends on stop().
        while not self._stopping:
            self.server.asyncore.loop(timeout=0.05, map=self.server._map, use_poll=True, count=1)

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> CrmServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.state.release.set()
        self._stopping = True
        self.thread.join(10)
        assert not self.thread.is_alive(), "the CRM peer did not stop within 10 s"
        self.server.task_dispatcher.shutdown(timeout=5)
        for channel in list(self.server._map.values()):
            channel.close()
