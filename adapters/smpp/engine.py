"""The SMPP adapter's loop: sms.send in, submit_sm out, receipts and MO back as sms.status / sms.mo.

Owns: one thread that owns every SMSC link (the one writer smpplib needs), the jobs (one
per sms.send being submitted), the dispatch of parts to the bound links of the best
priority (failover), the correlators and reassemblers per SMSC, and the order of effects
in each round of the loop:

    read what arrived -> decide (protocols/smpp) -> commit the round to the ledger ->
    then answer deliver_sm, ack sms.send, publish sms.status / sms.mo / retries

so nothing is acknowledged, to the SMSC or to the broker, before it is durable.
What is acked when: an sms.send is acked when every part has a submit_sm_resp ESME_ROK
recorded in the ledger; or when it has been re-published to a retry tier (retryable SMSC
error), or dead-lettered with the SMSC's reason (permanent error, or attempts used up),
the broker having confirmed that publication. A part that was accepted is never sent
again, also after a restart or a retry (the ledger says so). Throttling answers
(ESME_RTHROTTLED, ESME_RMSGQFUL) pause the link and re-send the part: the business never
sees them. A link that breaks or whose responses stop hands its unanswered parts back; they
are re-sent (same business id, same concatenation reference and part number) on the next
bound link: docs/sms.md section 4 is the policy.
Must not: parse or build PDUs (link.py), hold business rules (protocols/, mappings/), or
block on the broker (bus.py runs in its own thread; they talk through thread-safe calls).
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from adapters.smpp.config import SmppConfig
from adapters.smpp.ledger import Changes, Ledger
from adapters.smpp.link import Link, LinkError, LinkState, Opened, SubmitSmResp
from hub import envelope as ev
from hub import failures
from hub.envelope import Incoming, Outgoing, Props
from hub.hop_journal import HopJournal
from hub.nodes import Directory
from hub.store import Hop
from mappings.sms import mo as mo_routing
from mappings.sms.sending import SURVEY, purpose_of, text_of
from protocols import xmlwire
from protocols.errors import HubError, ProtocolViolation, ReasonCode, RejectedMessage
from protocols.smpp.codes import Command, CommandStatus, status_name
from protocols.smpp.receipts import (
    Matched,
    MessageState,
    Receipt,
    ReceiptCorrelator,
    StatusEvent,
    normalise_message_id,
    receipt_from_deliver_sm,
)
from protocols.smpp.session import EnquireLinkDue, LinkDead, SendEnquireLinkResp, SendUnbindResp
from protocols.smpp.text import Part, Reassembled, Reassembler, split
from protocols.smpp.window import Outcome
from protocols.sms import wire

log = logging.getLogger("adapters.smpp")

ADAPTER = "smpp"
QUEUE = "adapter.smpp"
#: Header naming the SMSC on what the adapter publishes.
H_SMSC = "x-hub-smsc"


class BusPort(Protocol):
    """What the engine asks of the broker side (hub/adapter_bus.py); every call is thread-safe."""

    def publish(self, items: list[tuple[str | None, Outgoing]], ack_after: list) -> None: ...

    def submit(self, acks: list, items: list[tuple[str | None, Outgoing]],
               groups: list[tuple[list[tuple[str | None, Outgoing]], list]]) -> None: ...


def concat_reference(business_ref: str) -> int:
    """The 16-bit concatenation reference of a business message: derived from its id, so a part
    re-sent after a restart or a retry carries the same reference without any write before the
    first send (two long messages to one handset share one with probability 1/65536)."""
    return zlib.crc32(business_ref.encode("utf-8")) & 0xFFFF


@dataclass
class Job:
    """One sms.send being submitted."""

    business_ref: str
    node: str
    destination: str
    purpose: str
    reference: str | None
    parts: list[Part]
    incoming: Incoming
    tags: list = field(default_factory=list)
    accepted: dict[int, str] = field(default_factory=dict)     # part index -> SMSC message id
    in_flight: int = 0
    smsc: str | None = None
    failure: tuple[Outcome, HubError] | None = None
    closed: bool = False
    recorded: bool = False                                     # its smpp_messages row is written

    @property
    def total(self) -> int:
        return len(self.parts)

    @property
    def attempt(self) -> int:
        try:
            return int((self.incoming.props.headers or {}).get(ev.H_ATTEMPT, 1))
        except (TypeError, ValueError):
            return 1


@dataclass
class Info:
    """What sms.status needs of a business message once its job is gone."""

    node: str
    destination: str
    reference: str | None
    smsc: str


class Engine:
    """The adapter's core; `run()` in one thread, the other methods from any thread."""

    def __init__(self, config: SmppConfig, ledger: Ledger, directory: Directory, bus: BusPort, *,
                 passwords: dict[str, object], retry_tiers: list[str],
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] | None = None, hop_journal: HopJournal | None = None) -> None:
        self.config = config
        # The sms.send's journey in the hub journal (`hub trace ID`): handed over after each commit.
        self.hop_journal = hop_journal
        self._hops: list[tuple[str, Hop]] = []
        self.ledger = ledger
        self.directory = directory
        self.bus = bus
        self.passwords = passwords
        self.tiers = retry_tiers
        self.clock = clock
        self._wall = wall or (lambda: datetime.now(UTC))
        self.links = [Link(s) for s in sorted(config.smscs, key=lambda s: s.priority) if s.enabled]
        self.correlators = {link.name: ReceiptCorrelator() for link in self.links}
        self.reassemblers = {link.name: Reassembler(max_pending=config.mo_max_pending, max_age=config.mo_max_age_s)
                             for link in self.links}
        self.mo_rules = config.mo_rules()
        self.jobs: dict[str, Job] = {}
        self.info: dict[str, Info] = {}
        self.pending: deque[tuple[Job, int]] = deque()
        self.changes = Changes()
        self._after_commit: list[Callable[[], None]] = []
        self._acks: list = []
        self._groups: list[tuple[list[tuple[str | None, Outgoing]], list]] = []
        self._publish: list[tuple[str | None, Outgoing]] = []
        self._inbox: deque = deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._woken = False
        self._stopping = False
        self._stopped = threading.Event()
        self._waiting_rows: dict[tuple[str, Receipt], list[str]] = {}
        self._forget: deque[tuple[float, str, str]] = deque()
        self._next_settle = 0.0
        self._bucket_ready_at: float | None = None
        self._last_mo_destination: dict[tuple[str, str], str] = {}
        self._unconfirmed_finals: dict[str, tuple] = {}
        self._round_wall: datetime | None = None
        self._ts_cache: tuple = (None, None)
        self.stats = {"received": 0, "accepted_messages": 0, "statuses": 0, "mo": 0, "retried": 0,
                      "dead_lettered": 0, "unknown_receipts": 0, "resent_parts": 0, "rounds": 0, "commits": 0}
        self.ready = threading.Event()

    def wall(self) -> datetime:
        """The time of day for what the adapter writes, read once per round of the loop."""
        if self._round_wall is None:
            self._round_wall = self._wall()
        return self._round_wall

    # -- thread-safe inputs ---------------------------------------------------------------

    def deliver(self, incoming: Incoming, tag) -> None:
        """An sms.send from adapter.smpp (bus thread)."""
        self._inbox.append(("send", incoming, tag))
        self._wake()

    def confirmed(self, outbox_ids: list[str]) -> None:
        """The broker confirmed these outbox messages (bus thread)."""
        self._inbox.append(("confirmed", outbox_ids, None))
        self._wake()

    def stop(self) -> None:
        self._stopping = True
        self._wake()

    def wait_stopped(self, timeout: float) -> bool:
        return self._stopped.wait(timeout)

    def _wake(self) -> None:
        if not self._woken:
            self._woken = True
            try:
                self._wake_w.send(b"x")
            except OSError:
                pass

    # -- health ---------------------------------------------------------------------------

    def health(self) -> dict:
        links = [link.health() for link in self.links]
        return {"adapter": ADAPTER, "bound": any(h["bound"] for h in links), "smscs": links,
                "jobs": len(self.jobs), "queued_parts": len(self.pending), **self.stats,
                "pending_receipts": sum(len(c.pending()) for c in self.correlators.values()),
                "unknown_receipts_now": sum(len(c.unknown()) for c in self.correlators.values())}

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._restore()
            self.ready.set()
            stop_deadline: float | None = None
            while True:
                self.stats["rounds"] += 1
                self._round_wall = None
                now = self.clock()
                self._drain_inbox(now)
                if self._stopping and stop_deadline is None:
                    stop_deadline = now + min(5.0, max(link.cfg.response_timeout_s for link in self.links))
                if stop_deadline is not None and (now >= stop_deadline or not any(
                        len(link.window) for link in self.links if link.bound)):
                    break
                self._maintain(now)
                if not self._stopping:
                    self._dispatch(now)
                self._flush_links()
                self._wait(now)
                now = self.clock()
                # Reads, refills the windows (the SMSC works on the next submits while this round
                # is decided and written to the ledger: no idle bubble on either side), decides.
                self._read_links(now)
                if now >= self._next_settle:
                    self._settle(now)
                    self._next_settle = now + 1.0
                self._commit()
                self._flush_links()
            self._commit()
            for link in self.links:
                if link.bound:
                    self._unbind(link)
        except Exception:
            log.exception("the SMPP engine failed")
            raise
        finally:
            for link in self.links:
                link.close()
            log.info("SMPP engine stopped", extra=self.stats)
            self._stopped.set()

    def _wait(self, now: float) -> None:
        socks = [self._wake_r] + [link.sock for link in self.links if link.state is LinkState.BOUND]
        timeout = self._next_deadline(now)
        try:
            ready, _, _ = select.select(socks, [], [], timeout)
        except (OSError, ValueError):
            ready = []
        if self._wake_r in ready:
            self._woken = False          # first: an input arriving while we drain wakes us again
            try:
                while self._wake_r.recv(4096):
                    pass
            except BlockingIOError:
                pass

    def _next_deadline(self, now: float) -> float:
        if self._inbox:
            return 0.0
        deadlines = [now + 1.0, self._next_settle]
        for link in self.links:
            if link.state is LinkState.DOWN:
                deadlines.append(link.next_attempt)
            if link.state is not LinkState.BOUND:
                continue
            for d in (link.window.next_deadline(), link.session.next_deadline() if link.session else None):
                if d is not None:
                    deadlines.append(d)
        if self.pending and self._bucket_ready_at is not None:
            deadlines.append(self._bucket_ready_at)
        return max(0.0, min(deadlines) - now)

    # -- inputs from the bus ------------------------------------------------------------------

    def _drain_inbox(self, now: float) -> None:
        sends: list[tuple[Incoming, object]] = []
        while self._inbox:
            kind, a, b = self._inbox.popleft()
            if kind == "send":
                sends.append((a, b))
            elif kind == "confirmed":
                for key in a:
                    final = self._unconfirmed_finals.pop(key, None)
                    if final is not None:
                        self.changes.finals.append(final)
                    else:
                        self.changes.outbox_done.append(key)
            elif kind == "opened":
                self._on_opened(a, b, now)
            elif kind == "open_failed":
                self._on_open_failed(a, b, now)
        if sends:
            self._accept(sends, now)

    def _accept(self, sends: list[tuple[Incoming, object]], now: float) -> None:
        fresh: list[tuple[Incoming, object]] = []
        for incoming, tag in sends:
            self.stats["received"] += 1
            ref = incoming.props.message_id or ""
            job = self.jobs.get(ref)
            if job is not None:         # redelivered while in progress (the bus reconnected)
                job.tags.append(tag)
                continue
            fresh.append((incoming, tag))
        if not fresh:
            return
        # Only a message the broker delivers again (a crash, a lost connection) or a retry can have
        # parts the SMSC already took; a first delivery cannot (the hub delivers a message id once).
        recorded = self.ledger.messages_by_ref(
            i.props.message_id or "" for i, _ in fresh
            if i.redelivered or (i.props.headers or {}).get(ev.H_ATTEMPT) is not None)
        for incoming, tag in fresh:
            ref = incoming.props.message_id or ""
            if ref in self.jobs:        # the same id twice in this batch
                self.jobs[ref].tags.append(tag)
                continue
            try:
                job = self._job(incoming, tag)
            except HubError as exc:
                self._refuse(incoming, tag, exc)
                continue
            known = recorded.get(ref)
            if known is not None:
                if known.status is not None or len(known.parts) >= known.total_parts:
                    self._acks.append(tag)          # already submitted in full: never again
                    continue
                job.accepted = {i: p[1] for i, p in known.parts.items()}
                job.recorded = True
                job.smsc = known.smsc
            self.jobs[ref] = job
            self.info.setdefault(ref, Info(job.node, job.destination, job.reference, job.smsc or ""))
            for part in job.parts:
                if part.index not in job.accepted:
                    self.pending.append((job, part.index))

    def _job(self, incoming: Incoming, tag) -> Job:
        props = incoming.props
        ref = props.message_id
        if not ref:
            raise RejectedMessage("The sms.send has no message_id, so its status could not be reported.",
                                  reason=ReasonCode.MISSING_PROPERTY, field="message_id")
        node = str((props.headers or {}).get(ev.H_SOURCE) or "")
        if node not in self.directory.by_code:
            raise RejectedMessage(f"The sms.send {ref} names no known sending node (x-hub-source {node!r}); "
                                  "only the hub delivers to adapter.smpp.", reason=ReasonCode.UNKNOWN_NODE,
                                  field=ev.H_SOURCE, value=node)
        root, _enc = xmlwire.parse(incoming.body, props.content_encoding)
        msg = wire.read_send(root)
        text = text_of(msg)
        parts = split(text, concat_reference(ref))
        return Job(business_ref=ref, node=node, destination=msg.to, purpose=purpose_of(msg),
                   reference=msg.reference, parts=parts, incoming=incoming, tags=[tag])

    def _refuse(self, incoming: Incoming, tag, exc: HubError) -> None:
        """An sms.send the adapter cannot use at all: dead letter, then ack."""
        log.error("sms.send refused: %s", exc, extra={"message_id": incoming.props.message_id,
                                                      "reason_code": str(exc.reason)})
        self.stats["dead_lettered"] += 1
        out = failures.dead_letter(incoming, exc, self.wall(), message_id=incoming.props.message_id or "",
                                   attempts=1, stage=f"adapter.{ADAPTER}",
                                   source=(incoming.props.headers or {}).get(ev.H_SOURCE))
        self._groups.append(([(None, out)], [tag]))

    # -- links: open, keep alive, close ---------------------------------------------------

    def _maintain(self, now: float) -> None:
        for link in self.links:
            if link.state in (LinkState.DOWN, LinkState.REFUSED) and not self._stopping and now >= link.next_attempt:
                link.state = LinkState.CONNECTING
                threading.Thread(target=self._open, args=(link, now), name=f"smpp-open-{link.name}",
                                 daemon=True).start()
                continue
            if link.state is not LinkState.BOUND:
                continue
            timed_out = link.window.on_timeout(now)
            if timed_out:
                # A missing response is a dead link (docs/sms.md section 4): close, reconnect, re-send.
                self._link_lost(link, LinkError(
                    f"SMSC {link.name} did not answer {len(timed_out)} submit_sm within "
                    f"{link.cfg.response_timeout_s:g} s; closing the link and re-sending them after reconnecting.",
                    reason=ReasonCode.PARTNER_TIMEOUT), now, [(e.seq, e.item) for e in timed_out])
                continue
            try:
                for event in link.session.poll(now):
                    if isinstance(event, EnquireLinkDue):
                        link.queue(link.make("enquire_link"), now)
                    elif isinstance(event, LinkDead):
                        raise LinkError(f"SMSC {link.name}: {event.detail}", reason=event.reason)
            except LinkError as exc:
                self._link_lost(link, exc, now)

    def _open(self, link: Link, now: float) -> None:
        """Helper thread: the blocking connect and bind; the result goes back through the inbox."""
        try:
            opened = link.open(self.passwords[link.name], now)
        except LinkError as exc:
            self._inbox.append(("open_failed", link, exc))
        except Exception as exc:  # never leave a link stuck in CONNECTING
            self._inbox.append(("open_failed", link, LinkError(f"SMSC {link.name}: {type(exc).__name__}: {exc}")))
        else:
            self._inbox.append(("opened", link, opened))
        self._wake()

    def _on_opened(self, link: Link, opened: Opened, now: float) -> None:
        if self._stopping:
            opened.sock.close()
            link.state = LinkState.DOWN
            return
        link.attach(opened)
        log.info("bound to SMSC %s (%s:%s) as %s", link.name, link.cfg.host, link.cfg.port, link.cfg.system_id,
                 extra={"smsc": link.name, "priority": link.cfg.priority})

    def _on_open_failed(self, link: Link, exc: LinkError, now: float) -> None:
        link.last_error = exc
        delay = link.reconnect.next()
        link.next_attempt = now + delay
        if exc.refusal is not None:
            link.state = LinkState.REFUSED
            link.refusal = exc.refusal
            link.stats["refused"] += 1
            log.error("SMSC %s refused the bind: %s (reason %s); retrying in %.1f s", link.name, exc.detail,
                      exc.reason, delay, extra={"smsc": link.name, "reason_code": str(exc.reason)})
        else:
            link.state = LinkState.DOWN
            log.warning("cannot reach SMSC %s: %s; retrying in %.1f s", link.name, exc.detail, delay,
                        extra={"smsc": link.name, "reason_code": str(exc.reason)})

    def _link_lost(self, link: Link, exc: LinkError, now: float, extra: list | None = None) -> None:
        lost = (extra or []) + link.close()
        link.last_error = exc
        link.next_attempt = now + link.reconnect.next()
        log.warning("link to SMSC %s lost: %s; %d submit(s) without response will be re-sent", link.name,
                    exc.detail, len(lost), extra={"smsc": link.name, "reason_code": str(exc.reason)})
        # Their fate is unknown: the SMSC may have taken them (docs/sms.md section 4). Re-send
        # them first, on whichever link is bound next, with the same business id and UDH.
        for _seq, (job, index) in reversed(lost):
            job.in_flight -= 1
            self.stats["resent_parts"] += 1
            if not job.closed and index not in job.accepted:
                self.pending.appendleft((job, index))
            elif job.closed:
                self._maybe_finish_failed(job)

    def _unbind(self, link: Link) -> None:
        try:
            link.queue(link.make("unbind"), self.clock())
            link.flush()
        except (HubError, ProtocolViolation):
            pass

    # -- sending ----------------------------------------------------------------------------

    def _sending_links(self) -> list[Link]:
        """The bound links of the best priority that has one bound (failover to the next)."""
        bound = [link for link in self.links if link.bound]
        if not bound:
            return []
        best = min(link.cfg.priority for link in bound)
        return [link for link in bound if link.cfg.priority == best]

    def _dispatch(self, now: float) -> None:
        self._bucket_ready_at = None
        if not self.pending:
            return
        for link in self._sending_links():
            try:
                while self.pending and link.can_send():
                    wait = link.bucket.take(now)
                    if wait > 0:
                        # TPS or a throttling pause: wake up when the next token is there.
                        ready = now + wait
                        if self._bucket_ready_at is None or ready < self._bucket_ready_at:
                            self._bucket_ready_at = ready
                        break
                    job, index = self.pending.popleft()
                    while (job.closed or index in job.accepted) and self.pending:
                        job, index = self.pending.popleft()
                    if job.closed or index in job.accepted:
                        break
                    part = job.parts[index - 1]
                    pdu = link.submit_sm(job.destination.lstrip("+"), part.short_message, part.esm_class,
                                         int(part.data_coding))
                    link.queue(pdu, now)
                    link.window.on_sent(pdu.sequence, (job, index), now)
                    link.stats["submits"] += 1
                    job.in_flight += 1
                    job.smsc = link.name
            except LinkError as exc:
                self._link_lost(link, exc, now)

    def _flush_links(self) -> None:
        now = self.clock()
        for link in self.links:
            if link.state is not LinkState.BOUND:
                continue
            try:
                link.flush()
            except LinkError as exc:
                self._link_lost(link, exc, now)
                continue
            if link.closing:
                self._link_lost(link, LinkError(f"SMSC {link.name} unbound the session."), now)

    # -- reading ----------------------------------------------------------------------------

    def _read_links(self, now: float) -> None:
        """Handle what arrived: the submit_sm_resps first, then refill the windows and write
        the next submits, then the rest (receipts and MO cost ten times more to read): with
        latency, the window's round trip should not wait for our receipt processing."""
        later: list[tuple[Link, bytes]] = []
        for link in self.links:
            if link.state is not LinkState.BOUND:
                continue
            try:
                if not link.readable():
                    continue
                for item in link.read():
                    if isinstance(item, SubmitSmResp):
                        self._on_pdu(link, item, now)
                    else:
                        later.append((link, item))
            except LinkError as exc:
                self._link_lost(link, exc, now)
        if not self._stopping:
            self._drain_inbox(now)
            self._dispatch(now)
            self._flush_links()
        for link, raw in later:
            if link.state is not LinkState.BOUND:
                continue
            try:
                self._on_pdu(link, link.parse(raw), now)
            except LinkError as exc:
                self._link_lost(link, exc, now)

    def _on_pdu(self, link: Link, pdu, now: float) -> None:
        command = pdu.command
        try:
            events = link.session.receive(command, pdu.sequence, now, pdu.status)
        except ProtocolViolation as exc:
            log.warning("%s", exc.detail, extra={"smsc": link.name})
            if Command(command) not in (Command.generic_nack,) and not command.endswith("_resp"):
                link.queue_response("generic_nack", pdu.sequence, now, CommandStatus.ESME_RINVBNDSTS)
            return
        except ValueError:
            log.warning("SMSC %s sent %s, which the hub does not handle; answered generic_nack",
                        link.name, command, extra={"smsc": link.name})
            link.queue_response("generic_nack", pdu.sequence, now, CommandStatus.ESME_RINVCMDID)
            return
        for event in events:
            if isinstance(event, SendEnquireLinkResp):
                link.queue_response("enquire_link_resp", event.sequence, now)
            elif isinstance(event, SendUnbindResp):
                link.queue_response("unbind_resp", event.sequence, now)
                link.closing = True
        if command == "submit_sm_resp" or (command == "generic_nack" and pdu.sequence in
                                           dict(link.window.in_flight())):
            self._on_submit_resp(link, pdu, now)
        elif command == "deliver_sm":
            self._on_deliver_sm(link, pdu, now)
        elif command == "unbind_resp":
            link.closing = True

    def _on_submit_resp(self, link: Link, pdu, now: float) -> None:
        try:
            event = link.window.on_resp(pdu.sequence, pdu.status)
        except ProtocolViolation as exc:
            log.warning("%s", exc.detail, extra={"smsc": link.name})
            return
        if event.outcome is Outcome.LATE:
            log.warning("late submit_sm_resp from SMSC %s: %s", link.name, event.detail, extra={"smsc": link.name})
            return
        job, index = event.item
        job.in_flight -= 1
        if event.outcome is Outcome.SUBMITTED:
            link.accepted()
            raw_id = pdu.message_id.decode("latin-1") if isinstance(pdu.message_id, bytes) else str(pdu.message_id)
            self._accepted(link, job, index, raw_id.strip("\x00 "), pdu.sequence, now)
            return
        if event.outcome is Outcome.RETRY_LATER:
            # ESME_RTHROTTLED / ESME_RMSGQFUL: pause this link, re-send first; never the business's problem.
            link.throttled(now)
            if not job.closed:
                self.pending.appendleft((job, index))
            else:
                self._maybe_finish_failed(job)
            return
        if len(job.accepted) == job.total:   # a duplicate re-send refused: the message is in
            if job.in_flight <= 0 and not job.closed:
                self._finish(job)
            return
        detail = (f"SMSC {link.name} answered submit_sm of part {index}/{job.total} for {job.destination} with "
                  f"{status_name(pdu.status)}.")
        exc = HubError(detail, reason=event.reason or ReasonCode.SMPP_UNKNOWN_STATUS, value=pdu.status)
        if job.failure is None or (event.outcome is Outcome.PERMANENT and job.failure[0] is not Outcome.PERMANENT):
            job.failure = (event.outcome, exc)
        job.closed = True
        self._maybe_finish_failed(job)

    def _accepted(self, link: Link, job: Job, index: int, message_id: str, seq: int, now: float) -> None:
        if index in job.accepted:          # a late copy after a re-send: both went out (docs/sms.md 4)
            log.warning("part %d of %s was accepted twice by SMSC %s (%s after %s)", index, job.business_ref,
                        link.name, message_id, job.accepted[index], extra={"smsc": link.name})
        job.accepted[index] = message_id
        wall = self.wall()
        ts = self._ledger_ts(wall)
        if not job.recorded:
            job.recorded = True
            self.changes.messages.append((job.business_ref, job.node, job.destination, job.purpose, job.reference,
                                          job.total, link.name, ts))
        self.changes.parts.append((job.business_ref, index, link.name, message_id[:65],
                                   normalise_message_id(message_id)[:65], ts))
        info = self.info.get(job.business_ref)
        if info is not None:
            info.smsc = link.name
        for matched in self.correlators[link.name].on_submit_resp(seq, message_id, job.business_ref, index,
                                                                  job.total):
            self._drop_waiting_row(link.name, matched.receipt)
            self._matched(link.name, matched)
        if len(job.accepted) == job.total and job.in_flight <= 0:
            self._finish(job)
        elif job.closed:
            self._maybe_finish_failed(job)

    def _ledger_ts(self, wall: datetime):
        """wall as the ledger stores it, converted once per distinct value (a round has one)."""
        if wall is not self._ts_cache[0]:
            self._ts_cache = (wall, self.ledger.ts(wall))
        return self._ts_cache[1]

    def _finish(self, job: Job) -> None:
        """Every part accepted and recorded: the sms.send is acked after this round's commit."""
        self.jobs.pop(job.business_ref, None)
        job.closed = True
        self.stats["accepted_messages"] += 1
        self._acks.extend(job.tags)
        self._hop_submitted(job)
        if job.purpose == SURVEY:
            self.changes.surveys.append({"destination": job.destination, "node": job.node,
                                         "message_id": job.business_ref, "reference": job.reference,
                                         "sent_at": self.wall()})

    def _hop(self, business_ref: str, smsc: str | None, status: str, detail: str) -> None:
        """A step of the sms.send's journey, appended to the hub journal after this round's commit."""
        if self.hop_journal is not None:
            self._hops.append((business_ref, Hop(f"smsc.{smsc or '-'}", status, self.wall(), detail[:500])))

    def _hop_submitted(self, job: Job) -> None:
        ids = ", ".join(job.accepted[i] for i in sorted(job.accepted))
        self._hop(job.business_ref, job.smsc, "submitted",
                  f"SMSC {job.smsc} accepted {len(job.accepted)}/{job.total} part(s): {ids}")

    def _maybe_finish_failed(self, job: Job) -> None:
        """A job that failed: once nothing of it is in flight, retry it or dead-letter it."""
        if job.in_flight > 0 or job.business_ref not in self.jobs:
            return
        self.jobs.pop(job.business_ref, None)
        if job.failure is None:       # closed without an error: everything was accepted
            self._acks.extend(job.tags)
            self._hop_submitted(job)
            return
        outcome, exc = job.failure
        attempt = job.attempt
        if outcome is Outcome.RETRYABLE and attempt < self.config.max_attempts:
            tier = failures.tier_for(attempt, self.tiers)
            self.stats["retried"] += 1
            self._hop(job.business_ref, job.smsc, "retrying",
                      f"attempt {attempt}, next in {tier}: {exc.reason}: {exc.detail}")
            log.warning("sms.send %s: %s; retry %d in tier %s", job.business_ref, exc.detail, attempt + 1, tier,
                        extra={"message_id": job.business_ref, "reason_code": str(exc.reason)})
            self._publish_after_commit([(None, failures.retry(job.incoming, attempt, tier, exc, back_to=QUEUE))],
                                       job.tags)
            return
        if outcome is Outcome.RETRYABLE:
            exc = HubError(f"Gave up after {attempt} attempts; last error: {exc.detail}",
                           reason=ReasonCode.RETRY_EXHAUSTED, value=exc.value)
        self.stats["dead_lettered"] += 1
        self._hop(job.business_ref, job.smsc, "dead_lettered", f"attempt {attempt}: {exc.reason}: {exc.detail}")
        log.error("sms.send %s is undeliverable: %s", job.business_ref, exc.detail,
                  extra={"message_id": job.business_ref, "reason_code": str(exc.reason)})
        dead = failures.dead_letter(job.incoming, exc, self.wall(), message_id=job.business_ref, attempts=attempt,
                                    stage=f"adapter.{ADAPTER}", route=None, source=job.node)
        status = wire.SmsStatusMessage(
            message_id=job.business_ref, to=job.destination, status="undeliverable", at=self.wall(),
            total_parts=job.total, parts_delivered=0, reason=str(exc.reason), detail=exc.detail,
            smsc_message_ids=tuple(job.accepted[i] for i in sorted(job.accepted)), reference=job.reference,
            smsc=job.smsc)
        final = self._final_status(status, job.node, job.recorded)
        if job.accepted:
            # Its accepted parts' receipts must not make a second status.
            for corr in self.correlators.values():
                corr.forget(job.business_ref)
        self._publish_after_commit([(None, dead), final], job.tags)

    # -- receipts and MO ------------------------------------------------------------------------

    def _on_deliver_sm(self, link: Link, pdu, now: float) -> None:
        status = CommandStatus.ESME_ROK
        tlvs = {"receipted_message_id": getattr(pdu, "receipted_message_id", None),
                "message_state": getattr(pdu, "message_state", None),
                "network_error_code": getattr(pdu, "network_error_code", None)}
        short_message = pdu.short_message or b""
        esm_class = pdu.esm_class or 0
        try:
            receipt = receipt_from_deliver_sm(esm_class, short_message, tlvs)
            if receipt is not None:
                link.stats["receipts"] += 1
                self._on_receipt(link.name, receipt, now)
            else:
                link.stats["mo"] += 1
                self._on_mo(link, pdu, short_message, esm_class, now)
        except RejectedMessage as exc:
            # A deliver_sm we cannot read (binary data coding, a broken UDH, a receipt without id):
            # refused so that the SMSC keeps it; nothing is dropped silently.
            log.error("deliver_sm from SMSC %s refused: %s", link.name, exc.detail,
                      extra={"smsc": link.name, "reason_code": str(exc.reason)})
            status = CommandStatus.ESME_RX_P_APPN
        seq = pdu.sequence
        # Answered after this round is committed: a receipt or MO is durable before the SMSC forgets it.
        self._after_commit.append(lambda: self._respond(link, "deliver_sm_resp", seq, status))

    def _respond(self, link: Link, command: str, seq: int, status: int) -> None:
        if link.state is LinkState.BOUND:
            try:
                link.queue_response(command, seq, self.clock(), status)
            except ProtocolViolation:
                pass

    def _on_receipt(self, smsc: str, receipt: Receipt, now: float) -> None:
        result = self.correlators[smsc].on_receipt(receipt, now)
        if isinstance(result, Matched):
            self._matched(smsc, result)
            return
        row_id = uuid.uuid4().hex
        self._waiting_rows.setdefault((smsc, receipt), []).append(row_id)
        self.changes.receipts.append({
            "id": row_id, "smsc": smsc, "message_id": receipt.message_id, "state": int(receipt.state),
            "stat": receipt.stat[:32], "error": (receipt.error or "")[:64] or None,
            "other_ids": list(receipt.other_ids), "text": receipt.text, "status": "pending",
            "ambiguous": list(result.ambiguous), "received_at": self.wall()})

    def _drop_waiting_row(self, smsc: str, receipt: Receipt) -> None:
        rows = self._waiting_rows.get((smsc, receipt))
        if rows:
            self.changes.receipts_gone.append(rows.pop(0))
            if not rows:
                del self._waiting_rows[(smsc, receipt)]

    def _matched(self, smsc: str, matched: Matched) -> None:
        r = matched.receipt
        self.changes.part_states.append((int(r.state), (r.error or "")[:64] or None, matched.business_ref,
                                         matched.part_index))
        if matched.event is not None:
            self._event(smsc, matched.event)

    def _event(self, smsc: str, event: StatusEvent) -> None:
        info = self.info.get(event.business_ref)
        if info is None:
            log.error("receipt for %s matched but the message's node is unknown", event.business_ref)
            return
        status = wire.SmsStatusMessage(
            message_id=event.business_ref, to=info.destination, status=str(event.status), at=self.wall(),
            total_parts=event.total_parts, parts_delivered=event.parts_delivered, smsc_state=event.state.name,
            smsc_error=event.error, smsc_message_ids=event.message_ids, reference=info.reference, smsc=smsc)
        self._publish.append(self._final_status(status, info.node, True))
        self._hop(event.business_ref, smsc, str(event.status),
                  f"stat:{event.state.name} err:{event.error or '-'}, {event.parts_delivered}/{event.total_parts} "
                  f"parts delivered, SMSC ids {','.join(event.message_ids)}")
        self._forget.append((self.clock() + self.config.keep_final_s, smsc, event.business_ref))

    def _final_status(self, status: wire.SmsStatusMessage, node_code: str, recorded: bool) -> tuple[str, Outgoing]:
        """sms.status for the node that asked. The ledger's final mark is written when the broker
        has confirmed it (`confirmed`); until then the message stays open, so after a crash the
        restore finds its receipts again and publishes the same sms.status (same message id)."""
        self.stats["statuses"] += 1
        key = f"sms.status.{status.message_id}"
        if recorded:
            self._unconfirmed_finals[key] = (status.status, self._ledger_ts(status.at), status.message_id)
        else:
            self.info.pop(status.message_id, None)
        node = self.directory.by_code[node_code]
        props = Props(message_id=key, type=wire.STATUS_TYPE, correlation_id=status.message_id,
                      content_type="application/xml", content_encoding=node.encoding, app_id="cs-hub",
                      timestamp=int(status.at.timestamp()), delivery_mode=2,
                      headers={ev.H_SOURCE: "hub", ev.H_ROUTE: f"adapter.{ADAPTER}",
                               **({H_SMSC: status.smsc} if status.smsc else {})})
        return key, Outgoing(ev.DELIVER_EXCHANGE, node.queue, props, wire.status_xml(status, node.encoding))

    def _outbox(self, message_id: str, type_name: str, node_code: str, tree, *, correlation_id: str | None,
                smsc: str | None) -> None:
        node = self.directory.by_code[node_code]
        enc = node.encoding
        props = Props(message_id=message_id, type=type_name, correlation_id=correlation_id,
                      content_type="application/xml", content_encoding=enc, app_id="cs-hub",
                      timestamp=int(self.wall().timestamp()), delivery_mode=2,
                      headers={ev.H_SOURCE: "hub", ev.H_ROUTE: f"adapter.{ADAPTER}", **({H_SMSC: smsc} if smsc else {})})
        out = Outgoing(ev.DELIVER_EXCHANGE, node.queue, props, xmlwire.serialise(tree, enc))
        self.changes.outbox.append({"id": message_id, "exchange": out.exchange, "routing_key": out.routing_key,
                                    "props": asdict(props), "body": out.body, "created_at": self.wall()})
        self._publish.append((message_id, out))

    def _on_mo(self, link: Link, pdu, short_message: bytes, esm_class: int, now: float) -> None:
        source = _text(pdu.source_addr)
        destination = _text(pdu.destination_addr)
        done = self.reassemblers[link.name].add(source, short_message, pdu.data_coding or 0, esm_class, now)
        if done is not None:
            self._last_mo_destination.pop((link.name, source), None)
            self._mo(link.name, done, destination)
        else:   # a part of a long message: remembered for the message given up incomplete
            self._last_mo_destination[(link.name, source)] = destination

    def _mo(self, smsc: str, msg: Reassembled, destination: str) -> None:
        wall = self.wall()
        survey_row = self.ledger.survey_for(msg.source) if any(r.survey_reply for r in self.mo_rules) else None
        survey = None
        if survey_row is not None:
            survey = mo_routing.SurveySent(node=survey_row["node"], message_id=survey_row["message_id"],
                                           sent_at=survey_row["sent_at"], reference=survey_row["reference"])
        decision = mo_routing.route_mo(msg.text, destination, self.mo_rules, self.config.mo_default_node, wall,
                                       survey, timedelta(hours=self.config.survey_window_h))
        if decision.node not in self.directory.by_code:
            log.error("MO from %s routed to unknown node %s; sent to %s instead", msg.source, decision.node,
                      self.config.mo_default_node)
            decision = mo_routing.MoDecision(self.config.mo_default_node, None)
        self.stats["mo"] += 1
        mo = wire.SmsMoMessage(source=msg.source, destination=destination, text=msg.text, received_at=wall,
                               complete=msg.complete, total_parts=msg.total, parts_received=len(msg.received),
                               in_reply_to=decision.in_reply_to, survey_option=decision.option,
                               survey_reference=decision.reference, smsc=smsc)
        self._outbox(f"sms.mo.{uuid.uuid4().hex}", wire.MO_TYPE, decision.node, wire.mo_tree(mo),
                     correlation_id=decision.in_reply_to, smsc=smsc)

    # -- periodic -------------------------------------------------------------------------------

    def _settle(self, now: float) -> None:
        for smsc, corr in self.correlators.items():
            for waiting in corr.settle(now, self.config.receipt_grace_s):
                rows = self._waiting_rows.get((smsc, waiting.receipt), [])
                self.changes.receipts_unknown.extend(rows)
                self.stats["unknown_receipts"] += 1
                log.warning("receipt for unknown message id %s (SMSC %s, %s) kept as unknown",
                            waiting.receipt.message_id, smsc, waiting.receipt.state.name,
                            extra={"smsc": smsc})
        for smsc, reassembler in self.reassemblers.items():
            for partial in reassembler.expire(now):
                self._mo(smsc, partial, self._last_mo_destination.get((smsc, partial.source), ""))
        while self._forget and self._forget[0][0] <= now:
            _, smsc, ref = self._forget.popleft()
            self.correlators[smsc].forget(ref)
            self.info.pop(ref, None)

    # -- commit and effects -----------------------------------------------------------------------

    def _publish_after_commit(self, items: list[tuple[str | None, Outgoing]], tags: list) -> None:
        """Publish these, then ack `tags` when the broker has confirmed all of them."""
        self._groups.append((items, tags))

    def _commit(self) -> None:
        if not (self.changes or self._after_commit or self._acks or self._publish or self._groups or self._hops):
            return
        changes, self.changes = self.changes, Changes()
        self.stats["commits"] += 1
        while True:
            try:
                self.ledger.commit(changes)
                break
            except HubError as exc:
                # Nothing is answered or acked before it is durable: wait for the store.
                log.error("the ledger is unavailable (%s); holding this round's effects", exc.detail)
                time.sleep(1.0)
                if self._stopping:
                    return
        if self._hops:
            # Durable in the ledger now; the journal's copy is written by its own thread (never blocks here).
            hops, self._hops = self._hops, []
            # A receipt that came before its submit_sm_resp is matched before the job finishes: the
            # journey still reads submitted -> receipt (stable sort, one round).
            hops.sort(key=lambda item: item[1].status != "submitted")
            self.hop_journal.add(hops)
        actions, self._after_commit = self._after_commit, []
        for action in actions:
            action()
        if self._acks or self._publish or self._groups:
            acks, items, groups = self._acks, self._publish, self._groups
            self._acks, self._publish, self._groups = [], [], []
            self.bus.submit(acks, items, groups)

    # -- restart ----------------------------------------------------------------------------------

    def _restore(self) -> None:
        """Open messages back into the correlators, waiting receipts back in, the outbox re-published."""
        now = self.clock()
        known = {link.name for link in self.links}
        opened = self.ledger.open_messages()
        for ref, m in opened.items():
            self.info[ref] = Info(m.node, m.destination, m.reference, m.smsc)
            for index, (smsc, message_id, state, error) in sorted(m.parts.items()):
                if smsc not in known:
                    continue
                corr = self.correlators[smsc]
                corr.on_submit_resp(0, message_id, ref, index, m.total_parts)
                if state is not None:
                    restored = corr.on_receipt(Receipt(message_id=message_id, state=MessageState(state),
                                                       error=error), now)
                    if isinstance(restored, Matched) and restored.event is not None:
                        self._event(smsc, restored.event)   # final before the crash, not yet marked
        grace = self.config.receipt_grace_s
        wall = self.wall()
        for row in self.ledger.waiting_receipts():
            smsc = row["smsc"]
            if smsc not in known:
                continue
            receipt = Receipt(message_id=row["message_id"], state=MessageState(row["state"]), stat=row["stat"] or "",
                              error=row["error"], other_ids=tuple(row["other_ids"] or ()), text=row["text"])
            age = (wall - row["received_at"]).total_seconds() if row["status"] == "pending" else grace
            result = self.correlators[smsc].on_receipt(receipt, now - max(0.0, age))
            if isinstance(result, Matched):
                self.changes.receipts_gone.append(row["id"])
                self._matched(smsc, result)
            else:
                self._waiting_rows.setdefault((smsc, receipt), []).append(row["id"])
        for corr in self.correlators.values():
            corr.settle(now, grace)  # the unknown ones stay unknown (already marked in the ledger)
        for row in self.ledger.outbox_rows():
            props = Props(**row["props"])
            self._publish.append((row["id"], Outgoing(row["exchange"], row["routing_key"], props, row["body"])))
        log.info("SMPP engine restored %d open messages, %d waiting receipts, %d unpublished messages",
                 len(opened), sum(len(v) for v in self._waiting_rows.values()), len(self._publish))
        self._commit()


def _text(value) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1").strip("\x00 ")
    return str(value or "").strip("\x00 ")
