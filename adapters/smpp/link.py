"""One connection to one SMSC: socket, PDU bytes (smpplib), and the pure session, window and throttle.

Owns: opening the TCP connection (TCP_NODELAY: stop-and-wait with receipts ran at 180
submit_sm/s without it and ~2,000 with it against the test SMSC), bind_transceiver, reading
whatever PDUs have arrived from one recv (the stream is cut into PDUs here, parsed by
smpplib with allow_unknown_opt_params=True so an unknown TLV does not kill the reader),
queueing PDUs and writing them in one sendall, and closing. Library and socket errors
become LinkError in one place (`_translated`).
Must not: decide anything about messages (adapters/smpp/engine.py does, with
protocols/smpp), or be used from two threads: smpplib writes sockets and numbers PDUs
without locks, so the engine's thread is the one writer of a link once it is open (the
blocking open runs in a helper thread before the engine owns the link).
Never logs or raises the password: the bind PDU is built here and dropped.
"""

from __future__ import annotations

import copy
import errno
import logging
import select
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum

import smpplib.client
import smpplib.command
import smpplib.exceptions
import smpplib.smpp
from pydantic import SecretStr

from adapters.smpp.config import SmscConfig
from protocols.errors import ReasonCode, TransientFailure
from protocols.smpp.codes import COMMAND_IDS, Command, status_name
from protocols.smpp.session import BindRefused, Bound, Session
from protocols.smpp.window import Backoff, CongestionWindow, Sequencer, TokenBucket, Window

log = logging.getLogger("adapters.smpp.link")

#: PDUs longer than this are refused as a broken stream (SMPP 3.4 sets no limit; submit and
#: deliver PDUs stay far below it, and a garbage length must not make us allocate gigabytes).
MAX_PDU = 64 * 1024
READ_CHUNK = 256 * 1024


class LinkError(TransientFailure):
    """The connection to an SMSC failed or broke (reason PARTNER_UNAVAILABLE or PARTNER_TIMEOUT),
    or the SMSC refused the bind (reason SMPP_INVALID_PASSWORD, SMPP_INVALID_SYSTEM_ID,
    SMPP_BIND_FAILED; `refusal` then holds the session's BindRefused)."""

    def __init__(self, detail: str, *, reason: ReasonCode = ReasonCode.PARTNER_UNAVAILABLE,
                 refusal: BindRefused | None = None) -> None:
        super().__init__(detail, reason=reason)
        self.refusal = refusal


class LinkState(Enum):
    DOWN = "down"              # not connected; reconnects when its back-off has passed
    CONNECTING = "connecting"  # a helper thread connects and binds
    BOUND = "bound"            # bound as transceiver; the engine reads and writes it
    REFUSED = "refused"        # the last bind was refused (wrong password, system_id); retried with back-off


@contextmanager
def _translated(what: str, cfg: SmscConfig) -> Iterator[None]:
    """socket and smpplib errors -> LinkError naming the SMSC, never its password."""
    where = f"SMSC {cfg.name} at {cfg.host}:{cfg.port}"
    try:
        yield
    except LinkError:
        raise
    except TimeoutError as exc:
        raise LinkError(f"{where} did not answer in time while trying to {what}.",
                        reason=ReasonCode.PARTNER_TIMEOUT) from exc
    except (OSError, smpplib.exceptions.ConnectionError) as exc:
        err = getattr(exc, "errno", None)
        why = errno.errorcode.get(err, type(exc).__name__) if err else type(exc).__name__
        raise LinkError(f"{where}: cannot {what} ({why}); check that the SMSC runs and the address is right.") \
            from exc
    except (smpplib.exceptions.PDUError, smpplib.exceptions.UnknownCommandError, ValueError, KeyError) as exc:
        raise LinkError(f"{where} sent bytes that are not a valid SMPP PDU while trying to {what} "
                        f"({type(exc).__name__}); the connection is closed and re-opened.",
                        reason=ReasonCode.PARTNER_FAULT) from exc


class _SubmitSM(smpplib.command.SubmitSM):
    """smpplib's SubmitSM, encoding the mandatory parameters only: the adapter sets no optional
    ones, and smpplib's encoder otherwise asks each of thirty TLVs whether it is set, per PDU
    (half the cost of a submit). Same bytes (tests/adapters/smpp/test_smpp_adapter_link.py)."""

    params_order = smpplib.command.SubmitSM.params_order[
        :smpplib.command.SubmitSM.params_order.index("short_message") + 1]


_HEADER = struct.Struct(">IIII")
_SUBMIT_SM_RESP = COMMAND_IDS[Command.submit_sm_resp]
_DELIVER_SM_ID = COMMAND_IDS[Command.deliver_sm].to_bytes(4, "big")
#: Responses whose body is empty or one empty C-string, packed here: building them with smpplib
#: (a command object, forty attributes, a generic encoder) cost as much as a submit_sm.
_FIXED_BODY = {Command.deliver_sm_resp: b"\x00", Command.data_sm_resp: b"\x00", Command.enquire_link_resp: b"",
               Command.unbind_resp: b"", Command.generic_nack: b""}


@dataclass(frozen=True, slots=True)
class SubmitSmResp:
    """A submit_sm_resp read without smpplib: its SMPP 3.4 body is the message_id C-string alone
    (section 4.4.2), so the header and one NUL-terminated string say everything. Anything else
    (TLVs an SMSC added) goes through smpplib."""

    sequence: int
    status: int
    message_id: bytes
    command: str = "submit_sm_resp"


@dataclass(frozen=True)
class Opened:
    """A connected and bound link, handed from the helper thread to the engine."""

    sock: socket.socket
    session: Session


class Link:
    """The engine's handle on one SMSC; `open` in a helper thread, everything else in the engine's."""

    def __init__(self, cfg: SmscConfig) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.state = LinkState.DOWN
        self.sequencer = Sequencer()
        # smpplib's Client only numbers PDUs here (our Sequencer); we own the socket.
        self.client = smpplib.client.Client(cfg.host, cfg.port, timeout=cfg.connect_timeout_s,
                                            sequence_generator=self.sequencer, allow_unknown_opt_params=True)
        self.window = Window(cfg.window, cfg.response_timeout_s)
        self.bucket = TokenBucket(cfg.tps, cfg.effective_burst)
        self.throttle = Backoff(cfg.throttle_backoff_initial_s, cfg.throttle_backoff_max_s)
        self.congestion = CongestionWindow(cfg.window)
        self.held_until = 0.0                   # a throttling pause is in force until then
        self.reconnect = Backoff(cfg.reconnect_initial_s, cfg.reconnect_max_s)
        self.next_attempt = 0.0
        self.sock: socket.socket | None = None
        self.session: Session | None = None
        self.closing = False                    # unbind sent or answered: close after the flush
        self._rbuf = bytearray()
        self._out: list[bytes] = []
        self._submit = None
        self._blank_deliver_sm = smpplib.smpp.make_pdu("deliver_sm", client=self.client, sequence=0,
                                                       allow_unknown_opt_params=True)
        self.last_error: LinkError | None = None
        self.refusal: BindRefused | None = None
        self.stats = {"submits": 0, "accepted": 0, "throttled": 0, "refused": 0, "receipts": 0, "mo": 0,
                      "binds": 0, "disconnects": 0}

    # -- opening (helper thread) ------------------------------------------------------

    def open(self, password: SecretStr, now: float) -> Opened:
        """Connect, set TCP_NODELAY, bind_transceiver; LinkError when any of it fails."""
        cfg = self.cfg
        session = Session(now, enquire_link_interval=cfg.enquire_link_interval_s,
                          response_timeout=cfg.response_timeout_s, system_id=cfg.system_id)
        with _translated("connect", cfg):
            sock = socket.create_connection((cfg.host, cfg.port), timeout=cfg.connect_timeout_s)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with _translated("bind", cfg):
                bind = smpplib.smpp.make_pdu(
                    "bind_transceiver", client=self.client, system_id=cfg.system_id,
                    password=password.get_secret_value(), system_type=cfg.system_type, interface_version=0x34,
                    addr_ton=0, addr_npi=0, address_range="")
                session.send(Command.bind_transceiver, bind.sequence, now)
                sock.sendall(bind.generate())
                del bind
                resp = self._read_one_blocking(sock)
            events = session.receive(resp.command, resp.sequence, now, resp.status)
            for ev in events:
                if isinstance(ev, BindRefused):
                    raise LinkError(ev.detail, reason=ev.reason, refusal=ev)
                if isinstance(ev, Bound):
                    sock.settimeout(cfg.response_timeout_s)
                    return Opened(sock, session)
            raise LinkError(f"SMSC {cfg.name} answered bind_transceiver with {resp.command} "
                            f"({status_name(resp.status)}).", reason=ReasonCode.SMPP_BIND_FAILED)
        except BaseException:
            sock.close()
            raise

    def _read_one_blocking(self, sock: socket.socket):
        header = self._recv_exact(sock, 4)
        length = int.from_bytes(header, "big")
        if not 16 <= length <= MAX_PDU:
            raise smpplib.exceptions.PDUError(f"PDU length {length}")
        return smpplib.smpp.parse_pdu(header + self._recv_exact(sock, length - 4), client=self.client,
                                      allow_unknown_opt_params=True)

    @staticmethod
    def _recv_exact(sock: socket.socket, n: int) -> bytes:
        chunks, got = [], 0
        while got < n:
            chunk = sock.recv(n - got)
            if not chunk:
                raise smpplib.exceptions.ConnectionError()
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    # -- the engine's side ----------------------------------------------------------------

    def attach(self, opened: Opened) -> None:
        self.sock, self.session = opened.sock, opened.session
        self.state = LinkState.BOUND
        self.closing = False
        self.refusal = None
        self.last_error = None
        self.reconnect.reset()
        self._rbuf.clear()
        self._out.clear()
        self.stats["binds"] += 1

    def can_send(self) -> bool:
        return self.window.can_send() and len(self.window) < self.congestion.size

    def throttled(self, now: float) -> None:
        """ESME_RTHROTTLED / ESME_RMSGQFUL: one episode per pause, however many submits of the
        burst are refused: the back-off grows per episode, and the window is halved."""
        self.stats["throttled"] += 1
        if now < self.held_until:
            return
        self.held_until = now + self.throttle.next()
        self.bucket.hold(self.held_until)
        self.congestion.on_throttled()

    def accepted(self) -> None:
        self.stats["accepted"] += 1
        self.congestion.on_accepted()
        if self.held_until:
            self.throttle.reset()
            self.held_until = 0.0

    @property
    def bound(self) -> bool:
        return self.state is LinkState.BOUND and not self.closing

    def fileno(self) -> int:
        return self.sock.fileno() if self.sock is not None else -1

    def read(self) -> list:
        """What has arrived (one recv), PDU by PDU: a `SubmitSmResp`, or the raw bytes of any other
        PDU for `parse`. LinkError when the SMSC closed or broke the stream."""
        with _translated("read", self.cfg):
            data = self.sock.recv(READ_CHUNK)
            if not data:
                raise LinkError(f"SMSC {self.name} closed the connection.")
            buf = self._rbuf
            buf += data
            pdus = []
            pos, end = 0, len(buf)
            while end - pos >= 4:
                length = int.from_bytes(buf[pos:pos + 4], "big")
                if not 16 <= length <= MAX_PDU:
                    raise smpplib.exceptions.PDUError(f"PDU length {length}")
                if end - pos < length:
                    break
                _len, command_id, status, sequence = _HEADER.unpack_from(buf, pos)
                if command_id == _SUBMIT_SM_RESP and (length == 16 or buf.find(b"\x00", pos + 16) == pos + length - 1):
                    pdus.append(SubmitSmResp(sequence, status, bytes(buf[pos + 16:pos + length - 1])))
                else:
                    pdus.append(bytes(buf[pos:pos + length]))   # parsed by `parse` when its turn comes
                pos += length
            if pos:
                del buf[:pos]
            return pdus

    def parse(self, raw: bytes):
        """An smpplib PDU from the bytes `read` returned; LinkError when they are not SMPP.

        A deliver_sm (one per receipt) is parsed by smpplib into a copy of a blank DeliverSM
        made once: smpplib's parse_pdu builds a new command object first, setting forty
        attributes one by one, which cost more than the parsing itself (and took a sequence
        number from our Sequencer each time).
        """
        with _translated("read", self.cfg):
            if raw[4:8] == _DELIVER_SM_ID:
                pdu = copy.copy(self._blank_deliver_sm)
                pdu.parse(raw)
                return pdu
            return smpplib.smpp.parse_pdu(raw, client=self.client, allow_unknown_opt_params=True)

    def readable(self, timeout: float = 0.0) -> bool:
        return bool(self.sock is not None and select.select([self.sock], [], [], timeout)[0])

    def queue(self, pdu, now: float) -> None:
        """Record a PDU with the session (ProtocolViolation if the state forbids it) and queue its bytes."""
        self.session.send(pdu.command, pdu.sequence, now)
        self._out.append(pdu.generate())

    def queue_response(self, command: str, sequence: int, now: float, status: int = 0) -> None:
        """Queue a response with an empty body (deliver_sm_resp, enquire_link_resp, unbind_resp,
        generic_nack), after the session allowed it."""
        cmd = Command(command)
        self.session.send(cmd, sequence, now)
        body = _FIXED_BODY[cmd]
        self._out.append(_HEADER.pack(16 + len(body), COMMAND_IDS[cmd], status, sequence) + body)

    def make(self, command: str, **params):
        """A new request PDU with the next sequence number."""
        return smpplib.smpp.make_pdu(command, client=self.client, **params)

    def submit_sm(self, destination: str, short_message: bytes, esm_class: int, data_coding: int):
        """A submit_sm with the next sequence number, for `queue` right away.

        One smpplib SubmitSM per link is filled anew for each submit: building a fresh one
        (forty attributes set one by one) cost more than encoding it.
        """
        pdu = self._submit
        if pdu is None:
            cfg = self.cfg
            pdu = self._submit = _SubmitSM(
                "submit_sm", client=self.client, service_type="", source_addr_ton=cfg.source_addr_ton,
                source_addr_npi=cfg.source_addr_npi, source_addr=cfg.source_addr, dest_addr_ton=cfg.dest_addr_ton,
                dest_addr_npi=cfg.dest_addr_npi, registered_delivery=1 if cfg.registered_delivery else 0,
                destination_addr=destination, short_message=short_message, esm_class=esm_class,
                data_coding=data_coding)
        else:
            pdu.sequence = self.sequencer.next_sequence()
            pdu.destination_addr = destination
            pdu.short_message = short_message
            pdu.esm_class = esm_class
            pdu.data_coding = data_coding
        return pdu

    def flush(self) -> None:
        if not self._out or self.sock is None:
            return
        data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
        self._out.clear()
        with _translated("write", self.cfg):
            self.sock.sendall(data)

    def close(self) -> list[tuple[int, object]]:
        """Close the socket; returns the submits that got no response (their fate is unknown)."""
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        if self.session is not None:
            self.session.connection_lost()
        self.sock, self.session = None, None
        self.closing = False
        self._out.clear()
        self._rbuf.clear()
        if self.state is LinkState.BOUND:
            self.stats["disconnects"] += 1
        self.state = LinkState.DOWN
        return self.window.on_connection_lost()

    def health(self) -> dict:
        return {
            "name": self.name, "state": self.state.value, "bound": self.state is LinkState.BOUND,
            "priority": self.cfg.priority, "host": f"{self.cfg.host}:{self.cfg.port}",
            "system_id": self.cfg.system_id, "in_flight": len(self.window), "window": self.cfg.window,
            "congestion_window": self.congestion.size,
            "tps": self.cfg.tps,
            "reason": str(self.last_error.reason) if self.last_error else None,
            "error": self.last_error.detail if self.last_error else None,
            **self.stats,
        }
