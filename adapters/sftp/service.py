"""The SFTP adapter: watch outboxes and mirrored folders, run transfer jobs, mark, alarm.

Two halves, one thread:

  poll (every poll_interval_s)                     jobs (queue adapter.sftp)
    outboxes: new files -> record PRODUCED,          upload: resume or restart, verify, rename,
      job on adapter.sftp (same content: skipped)      sent mark                      -> SENT
    mirrored folders: new sent marks -> record       download: fetch, verify, receipt mark,
      OFFERED, job                                     mark event to the sender       -> MARKED
    receipt marks of sent files -> RECEIVED          failure: retry through the hub's tiers
    report deadlines -> ReportLate once                (hub.retry, back to adapter.sftp), or dead
                                                       letter + TransferAlarm when permanent or
                                                       the attempts are used up

A job is acked only after its outputs (mark event, retry or dead letter with alarm) were
confirmed by the broker, so a crash repeats a job rather than losing one; the records make a
repeat harmless (a file already published is recognised, a mark already written is written
again with the same content, events carry deterministic message ids).

Owns: composing config, records, the protocol machine (protocols/files/transfer.py), the
engine and the bus; sessions per endpoint; `health()`.
Must not: hold paramiko or pika details (session.py, errors.py, bus.py do) or read the wall
clock for business times (the clock is injected; only an outbox file's age uses file times).
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from adapters.sftp import engine, records
from adapters.sftp.config import SftpFile, check_against_nodes, report_rules
from adapters.sftp.engine import Progress, VersionTaken, sha256_file
from adapters.sftp.records import TransferRecord
from adapters.sftp.session import SftpSession
from hub import envelope as ev
from hub import failures
from hub.envelope import Incoming, Outgoing, Props
from hub.job_bus import Bus
from hub.nodes import Directory
from hub.settings import Settings
from hub.store import Hop, JournalEntry, JournalStatus, Store
from hub.topology import adapter_queue
from protocols.errors import HubError, ReasonCode, RejectedMessage, TransientFailure
from protocols.files import layout, marker, wire
from protocols.files.events import (
    Direction,
    FileMarkEvent,
    ReportLateEvent,
    TransferAlarm,
    TransferRequest,
    transfer_key_download,
    transfer_key_upload,
)
from protocols.files.marker import FileKind, Mark, MarkKind
from protocols.files.naming import ReportRule, late_reports, match_report
from protocols.files.transfer import (
    DONE,
    Fetched,
    FetchInterrupted,
    FetchStarted,
    FileFacts,
    Marked,
    ReceiptMarked,
    Requeued,
    Role,
    SendCompleted,
    SendInterrupted,
    SendStarted,
    State,
    Transfer,
    TransferFailed,
)

log = logging.getLogger("adapters.sftp")

NAME = "sftp"
JOB_QUEUE = adapter_queue(NAME)
ROUTE = "sftp"
ProgressCallback = Callable[[str, str, int, int], None]   # (node, file name, bytes done, total)


def _hash_id(prefix: str, *parts: object) -> str:
    return f"{prefix}-" + hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:32]


@dataclass
class JobResult:
    outputs: list[Outgoing] = field(default_factory=list)
    after_publish: Callable[[], None] | None = None
    verdict: str = "done"


class SftpAdapter:
    """The adapter of one site: the endpoints of config/sftp.yaml, the hub's broker and state store."""

    def __init__(self, cfg: SftpFile, settings: Settings, store: Store, directory: Directory, *,
                 bus: Bus | None = None, clock: Callable[[], datetime] | None = None,
                 on_progress: ProgressCallback | None = None) -> None:
        check_against_nodes(cfg, directory)
        self.cfg = cfg
        self.settings = settings
        self.store = store
        self.directory = directory
        self.rules: list[ReportRule] = report_rules(cfg, directory)
        self.bus = bus or Bus(settings, queue=JOB_QUEUE, name="cs-hub sftp")
        self.clock = clock or (lambda: datetime.now(UTC))
        self.on_progress = on_progress
        self.tiers = [t.name for t in settings.retry_tiers]
        self.stats: Counter[str] = Counter()
        self.last_poll: datetime | None = None
        self._sessions: dict[str, SftpSession] = {}
        self._endpoint_health: dict[str, dict] = {code: {"ok": None, "last_ok": None, "last_error": None}
                                                  for code in cfg.endpoints}
        records.ensure_tables(store)

    # ------------------------------------------------------------------ sessions and health

    def session(self, node: str) -> SftpSession:
        s = self._sessions.get(node)
        if s is not None and s.alive:
            return s
        self.drop_session(node)
        try:
            s = SftpSession.open(self.cfg.endpoints[node], self.cfg.transfer, node=node)
        except HubError as exc:
            self._note_error(node, exc)
            raise
        self._sessions[node] = s
        self._note_ok(node)
        return s

    def drop_session(self, node: str) -> None:
        s = self._sessions.pop(node, None)
        if s is not None:
            s.close()

    def _note_ok(self, node: str) -> None:
        h = self._endpoint_health[node]
        h.update(ok=True, last_ok=self.clock().isoformat())

    def _note_error(self, node: str, exc: HubError) -> None:
        self._endpoint_health[node].update(ok=False, last_error={
            "reason_code": str(exc.reason), "detail": exc.detail, "at": self.clock().isoformat()})

    def health(self) -> dict:
        """What an operator (or a probe) needs: endpoints, broker, last poll, jobs, transfers by state."""
        try:
            by_state = Counter()
            for (_node, direction, state), n in records.counts(self.store).items():
                by_state[f"{direction}.{state}"] += n
            store_ok = True
        except HubError:
            by_state, store_ok = Counter(), False
        endpoints = {code: dict(h) for code, h in self._endpoint_health.items()}
        ok = store_ok and all(h["ok"] is not False for h in endpoints.values())
        return {"ok": ok, "last_poll": self.last_poll.isoformat() if self.last_poll else None,
                "bus": dict(self.bus.health), "store": store_ok, "endpoints": endpoints,
                "jobs": dict(self.stats), "transfers": dict(by_state)}

    def close(self) -> None:
        for node in list(self._sessions):
            self.drop_session(node)
        self.bus.close()

    # ------------------------------------------------------------------ outboxes

    def classify(self, node: str, name: str) -> tuple[FileKind, ReportRule | None, str | None]:
        """What a file in `node`'s outbox is: HQ's files are documents; a province's file named by a
        report rule is a report (of its own province only); anything else is a data file."""
        if not marker.is_data_name(name):
            raise RejectedMessage(f"{name!r} is not a name a data file may have (hidden, a part file or a mark); "
                                  f"rename it.", reason=ReasonCode.SFTP_NAME_INVALID, field="FileName", value=name)
        if node == self.cfg.hq:
            return FileKind.document, None, None
        try:
            found = match_report(self.rules, name)
        except ValueError as exc:
            raise RejectedMessage(str(exc), reason=ReasonCode.SFTP_NAME_INVALID, field="FileName", value=name) from None
        if found is None:
            return FileKind.file, None, None
        rule, province, period = found
        if province != node:
            raise RejectedMessage(
                f"{name} is named as the {rule.code} report of {province}, but it is in the outbox of {node}; a "
                f"node sends only its own reports (expected {rule.naming.render(node, period)}).",
                reason=ReasonCode.SFTP_NAME_INVALID, field="FileName", value=name)
        return FileKind.report, rule, period

    def prepare_upload(self, node: str, path: Path, now: datetime) -> tuple[TransferRecord, str]:
        """The record for sending `path` from `node` and what it is: "new" content, a file already
        "known" as it is (unchanged since it was recorded), or a "duplicate": content sent (or
        queued) before under this name, which is never sent twice."""
        st = path.stat()
        known = records.by_local_file(self.store, node, str(path), st.st_size, st.st_mtime_ns)
        if known is not None:
            return known, "known"
        sha = sha256_file(path)
        base = path.name
        key = transfer_key_upload(node, base, sha)
        same = records.get(self.store, key)
        if same is not None:
            if same.local_path == str(path):
                records.save(self.store, same.evolve(mtime_ns=st.st_mtime_ns))
            return same, "duplicate"
        kind, rule, period = self.classify(node, base)
        version = records.latest_version(self.store, node, "upload", base) + 1
        folder = layout.remote_folder(self.cfg.endpoints[node].remote_outbox, kind, period=period, at=now,
                                      zone=self.cfg.zone)
        rec = TransferRecord(
            key=key, node=node, direction="upload", kind=kind.value, sender=node, base_name=base, version=version,
            remote_path=layout.join(folder, marker.versioned_name(base, version)), local_path=str(path),
            size=st.st_size, sha256=sha, state=State.PRODUCED.value, created_at=now, updated_at=now,
            mtime_ns=st.st_mtime_ns, report_type=rule.code if rule else None, period=period)
        return rec, "new"

    def scan_outbox(self, node: str, now: datetime) -> int:
        """Queue a job for every new, settled file in `node`'s outbox; returns how many were queued."""
        outbox = self.cfg.endpoints[node].outbox
        if not outbox.is_dir():
            return 0
        queued = 0
        settled_before = time.time() - self.cfg.settle_s
        for path in sorted(outbox.iterdir()):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode) or path.name.startswith(".") or st.st_mtime > settled_before:
                continue
            try:
                rec, what = self.prepare_upload(node, path, now)
            except RejectedMessage as exc:
                self._refuse_local_file(node, path, exc, now)
                continue
            except FileNotFoundError:
                continue
            if what == "duplicate":
                self.stats["duplicates"] += 1
                log.info("sftp duplicate not sent again", extra={"node": node, "file": path.name,
                                                                 "sha256": rec.sha256, "state": rec.state,
                                                                 "path": rec.remote_path})
            if what != "new":
                continue
            self.bus.publish([self._job_out(self._request(rec), now)])
            records.save(self.store, rec)
            queued += 1
            log.info("sftp queued", extra={"node": node, "file": rec.name, "kind": rec.kind, "bytes": rec.size,
                                           "sha256": rec.sha256, "version": rec.version})
        return queued

    def _refuse_local_file(self, node: str, path: Path, exc: HubError, now: datetime) -> None:
        """A file that must not be sent: recorded as FAILED (not examined again until it changes), alarmed once."""
        st = path.stat()
        sha = sha256_file(path)
        rec = TransferRecord(
            key=transfer_key_upload(node, path.name, sha), node=node, direction="upload", kind=FileKind.file.value,
            sender=node, base_name=path.name, version=1, remote_path="-", local_path=str(path), size=st.st_size,
            sha256=sha, state=State.FAILED.value, created_at=now, updated_at=now, mtime_ns=st.st_mtime_ns,
            reason_code=str(exc.reason), error=exc.detail)
        records.save(self.store, rec)
        log.error("sftp refused a file", extra={"node": node, "file": path.name, "reason_code": str(exc.reason),
                                               "error": exc.detail})
        self._raise_alarm(node, exc, now, file_name=path.name, key=f"file:{rec.key}")

    # ------------------------------------------------------------------ mirrored folders

    def scan_mirror(self, node: str, now: datetime) -> int:
        """Queue a download for every file with a sent mark in `node`'s mirrored folders that is new."""
        ep = self.cfg.endpoints[node]
        if not ep.mirror:
            return 0
        s = self.session(node)
        queued = 0
        for m in ep.mirror:
            for folder, entries in self._walk(s, m.path):
                names = {e.filename: e for e in entries}
                for fname in sorted(names):
                    data = marker.data_name_of_sent_mark(fname)
                    if data is None or data not in names or stat.S_ISDIR(names[data].st_mode or 0):
                        continue
                    remote = layout.join(folder, data)
                    key = transfer_key_download(node, remote)
                    if records.get(self.store, key) is not None:
                        continue
                    relative = remote[len(m.path):].lstrip("/") if m.path else remote
                    rec = self._offer(s, node, m.sender, remote, relative, names[data].st_size, now)
                    if rec is None:
                        continue
                    self.bus.publish([self._job_out(self._request(rec), now)])
                    records.save(self.store, rec)
                    queued += 1
                    log.info("sftp offered", extra={"node": node, "file": data, "sender": rec.sender,
                                                    "bytes": rec.size, "sha256": rec.sha256})
        return queued

    def _walk(self, s: SftpSession, root: str):
        """(folder, entries) for `root` and its sub-folders, at most layout.MAX_DEPTH levels deep."""
        todo = [(root, 0)]
        while todo:
            folder, depth = todo.pop(0)
            entries = s.listdir(folder)
            yield folder, entries
            if depth < layout.MAX_DEPTH:
                todo += [(layout.join(folder, e.filename), depth + 1) for e in sorted(entries, key=lambda e: e.filename)
                         if stat.S_ISDIR(e.st_mode or 0) and not e.filename.startswith(".")]

    def _offer(self, s: SftpSession, node: str, mirror_sender: str, remote: str, relative: str, size: int,
               now: datetime) -> TransferRecord | None:
        """The OFFERED record of a file whose sent mark checks out, or None (refused and alarmed once)."""
        folder, data = remote.rsplit("/", 1) if "/" in remote else ("", remote)
        mark_path = layout.join(folder, marker.sent_mark_name(data))
        owner = layout.owner_of(relative, mirror_sender)
        try:
            raw = s.read_small(mark_path, marker.MAX_MARK_BYTES)
            if raw is None:
                return None      # removed meanwhile
            mk = marker.parse(raw, where=f"{s.where}:{mark_path}")
            problem = None
            if mk.kind is not MarkKind.sent:
                problem = f"it is a {mk.kind.value} mark, not a sent mark"
            elif mk.file != data:
                problem = f"it describes {mk.file!r}, not {data!r}"
            elif owner is None or mk.sender != owner:
                problem = f"it names sender {mk.sender!r} but the file lies in the folder of {owner or 'no node'}"
            elif mk.size != size:
                problem = f"it says {mk.size} bytes but the file has {size}"
            elif mk.sender not in self.directory.by_code:
                problem = f"sender {mk.sender!r} is not a node"
            if problem:
                raise RejectedMessage(f"{s.where}:{mark_path} is not a valid sent mark for {remote}: {problem}.",
                                      reason=ReasonCode.SFTP_MARKER_INVALID, field="mark", value=mark_path)
        except RejectedMessage as exc:
            # Alarmed and logged once; the file is looked at again at each poll (a sender may fix its mark).
            if self._raise_alarm(node, exc, now, file_name=data, key=f"mark:{node}:{remote}"):
                log.error("sftp refused a sent mark", extra={"node": node, "file": remote, "error": exc.detail})
            return None
        if mk.sender == node:
            return None          # our own file (a folder this node both sends into and mirrors)
        report_type, period = None, None
        if mk.file_kind is FileKind.report:
            base = marker.split_version(data)[0]
            found = None
            try:
                found = match_report(self.rules, base)
            except ValueError:
                found = None
            if found is not None and found[1] == mk.sender:
                report_type, period = found[0].code, found[2]
            else:
                report_type, period = mk.report, mk.period
        kind = mk.file_kind if (mk.file_kind is not FileKind.report or report_type and period) else FileKind.file
        local = self.cfg.endpoints[node].inbox / relative
        return TransferRecord(
            key=transfer_key_download(node, remote), node=node, direction="download", kind=kind.value,
            sender=mk.sender, base_name=marker.split_version(data)[0], version=mk.version, remote_path=remote,
            local_path=str(local), size=mk.size, sha256=mk.sha256, state=State.OFFERED.value, created_at=now,
            updated_at=now, report_type=report_type, period=period, sent_at=mk.time)

    # ------------------------------------------------------------------ receipts and deadlines

    def check_receipts(self, node: str, now: datetime) -> int:
        """Record the receivers' success marks of files `node` sent (SENT -> RECEIVED); returns how many."""
        sent = records.in_states(self.store, [State.SENT.value, State.RECEIVED.value], node=node,
                                 direction="upload", limit=500)
        if not sent:
            return 0
        by_folder: dict[str, list[TransferRecord]] = {}
        for rec in sent:
            by_folder.setdefault(rec.remote_path.rsplit("/", 1)[0], []).append(rec)
        s = self.session(node)
        found = 0
        for folder, recs in by_folder.items():
            names = {e.filename for e in s.listdir(folder)}
            for rec in recs:
                for fname in names:
                    parsed = marker.receipt_of(fname)
                    if parsed is None or parsed[0] != rec.name or parsed[1] in rec.marks:
                        continue
                    raw = s.read_small(layout.join(folder, fname), marker.MAX_MARK_BYTES)
                    try:
                        mk = marker.parse(raw or b"", where=f"{s.where}:{folder}/{fname}")
                        rec = self._apply(rec, ReceiptMarked(at=mk.time, by=parsed[1], sha256=mk.sha256))
                    except HubError as exc:
                        log.warning("sftp ignored a receipt mark", extra={"node": node, "file": fname,
                                                                          "error": exc.detail})
                        continue
                    records.save(self.store, rec)
                    found += 1
                    log.info("sftp receipt marked", extra={"node": node, "file": rec.name, "by": parsed[1]})
        return found

    def check_deadlines(self, now: datetime) -> int:
        """Raise ReportLate once per (report, province, period) HQ has not received by its deadline."""
        hq = self.cfg.hq
        if hq not in self.cfg.endpoints or not self.rules:
            return 0
        received = records.received_reports(self.store, hq)
        raised = 0
        for rule in self.rules:
            got = {(p, per) for (r, p, per) in received if r == rule.code}
            for late in late_reports(rule, got, now, lookback=self.cfg.late_lookback,
                                     since=self.cfg.reports_since):
                key = f"late:{rule.code}:{late.province}:{late.period}"
                payload = {"report": rule.code, "province": late.province, "period": late.period,
                           "deadline": late.deadline.isoformat(), "expected_name": late.expected_name}
                if not records.claim_alarm(self.store, key, "report_late", now, payload):
                    continue
                event = ReportLateEvent(company_code=hq, province=late.province, report_type=rule.code,
                                        period=late.period, expected_name=late.expected_name,
                                        deadline=late.deadline, detected_at=now)
                mid = _hash_id("sftp-late", key)
                try:
                    self._publish_events([self._event_out(event, to, mid, now) for to in dict.fromkeys((hq, late.province))
                                          if to in self.directory.by_code], now)
                except HubError:
                    records.release_alarm(self.store, key)
                    raise
                raised += 1
                log.warning("sftp report late", extra=payload)
        return raised

    # ------------------------------------------------------------------ poll

    def poll(self, now: datetime | None = None) -> dict[str, int]:
        """One pass over every endpoint: outboxes, mirrored folders, receipts; then deadlines."""
        now = now or self.clock()
        summary = Counter()
        for node in self.cfg.endpoints:
            for step, fn in (("queued", self.scan_outbox), ("offered", self.scan_mirror),
                             ("receipts", self.check_receipts)):
                try:
                    summary[step] += fn(node, now)
                except TransientFailure as exc:
                    if exc.reason == ReasonCode.PARTNER_UNAVAILABLE or exc.reason == ReasonCode.STORE_UNAVAILABLE:
                        raise           # the broker or the store: the whole pass waits
                    self.drop_session(node)
                    self._note_error(node, exc)
                    summary["errors"] += 1
                    log.warning("sftp poll step failed", extra={"node": node, "step": step,
                                                                "reason_code": str(exc.reason), "error": exc.detail})
                except HubError as exc:
                    self.drop_session(node)
                    self._note_error(node, exc)
                    summary["errors"] += 1
                    log.error("sftp poll step refused", extra={"node": node, "step": step,
                                                               "reason_code": str(exc.reason), "error": exc.detail})
                    hour = now.strftime("%Y%m%d%H")
                    self._raise_alarm(node, exc, now, key=f"poll:{node}:{exc.reason}:{hour}")
        summary["late"] += self.check_deadlines(now)
        self.last_poll = now
        return dict(summary)

    # ------------------------------------------------------------------ jobs

    def work_once(self, limit: int = 100) -> int:
        """Handle the jobs waiting now (at most `limit`); returns how many were handled."""
        n = 0
        while n < limit:
            msg = self.bus.get()
            if msg is None:
                break
            self.handle_job(msg)
            n += 1
        return n

    def handle_job(self, msg: Incoming) -> str:
        """Run one job and publish its outputs, then ack it. Returns the verdict."""
        now = self.clock()
        attempt = int((msg.props.headers or {}).get(ev.H_ATTEMPT, 1))
        mid = msg.props.message_id or _hash_id("sftp-job-noid", hashlib.sha256(msg.body).hexdigest())
        try:
            req = wire.loads(msg.body, msg.props.content_encoding)
            if not isinstance(req, TransferRequest):
                raise RejectedMessage(f"adapter.sftp takes TransferRequest jobs, not {type(req).__name__}",
                                      reason=ReasonCode.UNKNOWN_TYPE, value=msg.props.type)
        except HubError as exc:
            self.bus.publish([failures.dead_letter(msg, exc, now, message_id=mid, attempts=attempt, stage="sftp",
                                                   route=ROUTE)])
            self.bus.ack(msg)
            self.stats["dead_lettered"] += 1
            return "dead_lettered"
        try:
            result = self.execute(req, now)
        except HubError as exc:
            result = self._failed(msg, req, attempt, exc, now, mid)
        except Exception as exc:  # a bug or a local disk error: retried, then dead-lettered, never lost
            log.exception("sftp job failed unexpectedly", extra={"node": req.node, "file": req.file_name})
            err = HubError(f"{type(exc).__name__}: {exc}", reason=ReasonCode.PROCESSING_ERROR)
            result = self._failed(msg, req, attempt, err, now, mid)
        self._publish_events(result.outputs, now)
        if result.after_publish is not None:
            result.after_publish()
        self.bus.ack(msg)
        self.stats[result.verdict] += 1
        return result.verdict

    def execute(self, req: TransferRequest, now: datetime) -> JobResult:
        """Do the transfer of one job; raises HubError (with its reason code) when it fails."""
        rec = records.get(self.store, req.key) or self._record_from_request(req, now)
        if rec.sha256 != req.sha256:
            return JobResult(verdict="stale")
        if State(rec.state) in DONE:
            return JobResult(verdict="duplicate")
        if rec.state == State.FAILED.value:   # replayed from the dead-letter queue after a fix
            rec = self._apply(rec, Requeued(at=now))
            records.save(self.store, rec)
        if req.direction is Direction.upload:
            return self._upload(rec, now)
        return self._download(rec, now)

    def _progress(self, node: str, name: str, direction: str, total: int) -> Progress:
        def hook(fname: str, done: int, total_: int) -> None:
            self.bus.keepalive()
            if self.on_progress is not None:
                self.on_progress(node, fname, done, total_)
        return Progress(node=node, name=name, direction=direction, total=total,
                        every_s=self.cfg.transfer.progress_every_s, hook=hook)

    def _upload(self, rec: TransferRecord, now: datetime) -> JobResult:
        s = self.session(rec.node)
        box = {"rec": rec}

        def started(offset: int) -> None:
            box["rec"] = self._apply(box["rec"], SendStarted(at=now, offset=offset))
            records.save(self.store, box["rec"])

        while True:
            cur = box["rec"]
            facts = FileFacts(cur.name, cur.size, cur.sha256, cur.sender)
            mark = Mark(kind=MarkKind.sent, file=cur.name, size=cur.size, sha256=cur.sha256, sender=cur.sender,
                        time=now.astimezone(self.cfg.zone), file_kind=FileKind(cur.kind), report=cur.report_type,
                        period=cur.period, version=cur.version)
            try:
                moved = engine.upload(s, Path(cur.local_path), cur.remote_path, facts, mark,
                                      progress=self._progress(cur.node, cur.name, "upload", cur.size), on_start=started)
                break
            except VersionTaken:
                # Another file holds this name on the server: never overwritten, this content
                # becomes the next version (docs/sftp.md, "Versions").
                version = max(cur.version, records.latest_version(self.store, cur.node, "upload", cur.base_name)) + 1
                folder = cur.remote_path.rsplit("/", 1)[0]
                box["rec"] = cur.evolve(version=version, updated_at=now, remote_path=layout.join(
                    folder, marker.versioned_name(cur.base_name, version)))
                records.save(self.store, box["rec"])
                log.warning("sftp name taken by other content; sending as a new version",
                            extra={"node": cur.node, "file": cur.name, "version": version})
            except HubError as exc:
                self._interrupted(box["rec"], exc, now)
                raise
        rec = self._apply(box["rec"], SendCompleted(at=now, size=moved.size, sha256=moved.sha256,
                                                    remote_path=moved.path))
        rec = rec.evolve(sent_at=now, completed_at=now, done=moved.size, reason_code=None, error=None)
        records.save(self.store, rec)
        log.info("sftp sent", extra={"node": rec.node, "file": rec.name, "path": rec.remote_path, "bytes": rec.size,
                                     "sha256": rec.sha256, "resumed_from": moved.resumed_from,
                                     "seconds": round(moved.seconds, 3), "already_there": moved.already_there,
                                     "mb_s": round(rec.size / max(moved.seconds, 1e-9) / 1e6, 1)})
        return JobResult(verdict="sent")

    def _download(self, rec: TransferRecord, now: datetime) -> JobResult:
        box = {"rec": rec}

        def started(offset: int) -> None:
            box["rec"] = self._apply(box["rec"], FetchStarted(at=now, offset=offset))
            records.save(self.store, box["rec"])

        local = Path(rec.local_path)
        if rec.state != State.FETCHED.value:
            s = self.session(rec.node)
            facts = FileFacts(rec.name, rec.size, rec.sha256, rec.sender)
            try:
                moved = engine.download(s, rec.remote_path, local, facts,
                                        progress=self._progress(rec.node, rec.name, "download", rec.size),
                                        on_start=started)
            except HubError as exc:
                self._interrupted(box["rec"], exc, now)
                raise
            if box["rec"].state == State.OFFERED.value:    # already fetched by an earlier run
                started(0)
            box["rec"] = self._apply(box["rec"], Fetched(at=now, size=moved.size, sha256=moved.sha256))
            records.save(self.store, box["rec"])
        rec = box["rec"]
        # The success mark beside the file on the server (seed 001, 5.1 step 3) ...
        folder = rec.remote_path.rsplit("/", 1)[0] if "/" in rec.remote_path else ""
        receipt = Mark(kind=MarkKind.received, file=rec.name, size=rec.size, sha256=rec.sha256, sender=rec.sender,
                       receiver=rec.node, time=now.astimezone(self.cfg.zone), file_kind=FileKind(rec.kind),
                       report=rec.report_type, period=rec.period, version=rec.version)
        try:
            self.session(rec.node).write_small(layout.join(folder, marker.receipt_mark_name(rec.name, rec.node)),
                                               marker.render(receipt))
        except HubError as exc:
            self._interrupted(rec, exc, now)
            raise
        # ... and as a bus event to the sender.
        event = self._mark_event(rec, now)
        out = self._event_out(event, rec.sender, _hash_id("sftp-mark", rec.key, rec.sha256), now)

        def marked() -> None:
            done = self._apply(records.get(self.store, rec.key) or rec, Marked(at=now))
            records.save(self.store, done.evolve(completed_at=now, marks={rec.node: now.isoformat()},
                                                 reason_code=None, error=None))
            log.info("sftp received and marked", extra={"node": rec.node, "file": rec.name, "sender": rec.sender,
                                                        "path": rec.local_path, "bytes": rec.size,
                                                        "sha256": rec.sha256})
        return JobResult([out], marked, verdict="marked")

    def _mark_event(self, rec: TransferRecord, now: datetime) -> FileMarkEvent:
        kind = FileKind(rec.kind)
        report = {}
        if kind is FileKind.report:
            rule = next((r for r in self.rules if r.code == rec.report_type), None)
            if rule is None:   # a report type this site does not know: marked as a plain file
                kind = FileKind.file
            else:
                deadline = rule.deadline(rec.period)
                report = {"report_type": rule.code, "period": rec.period, "deadline": deadline,
                          "late": now > deadline}
        return FileMarkEvent(kind=kind, company_code=rec.node, sender_code=rec.sender, file_name=rec.name,
                             path=rec.remote_path, size=rec.size, sha256=rec.sha256, version=rec.version,
                             sent_time=rec.sent_at or now, received_time=now, **report)

    # ------------------------------------------------------------------ failures

    def _failed(self, msg: Incoming, req: TransferRequest, attempt: int, exc: HubError, now: datetime,
                mid: str) -> JobResult:
        self.drop_session(req.node)
        rec = records.get(self.store, req.key)
        if exc.reason == ReasonCode.SFTP_FILE_CHANGED and req.direction is Direction.upload:
            # The outbox file changed while queued: this content is gone, the new one is a new version.
            if rec is not None and rec.state != State.FAILED.value:
                records.save(self.store, self._apply(rec, TransferFailed(at=now, reason=exc.reason)).evolve(
                    reason_code=str(exc.reason), error=exc.detail))
            log.info("sftp job superseded", extra={"node": req.node, "file": req.file_name, "error": exc.detail})
            return JobResult(verdict="superseded")
        if exc.retryable and attempt < self.cfg.max_attempts:
            tier = failures.tier_for(attempt, self.tiers)
            log.warning("sftp transfer retrying", extra={"node": req.node, "file": req.file_name, "attempt": attempt,
                                                         "tier": tier, "reason_code": str(exc.reason),
                                                         "error": exc.detail})
            return JobResult([failures.retry(msg, attempt, tier, exc, back_to=JOB_QUEUE)], verdict="retrying")
        if exc.retryable:
            exc = HubError(f"Gave up after {attempt} attempts; last error: {exc.detail}",
                           reason=ReasonCode.RETRY_EXHAUSTED)
        if rec is not None and rec.state not in (State.FAILED.value, *[s.value for s in DONE]):
            try:
                rec = self._apply(rec, TransferFailed(at=now, reason=exc.reason))
            except HubError:
                pass
            records.save(self.store, rec.evolve(reason_code=str(exc.reason), error=exc.detail, updated_at=now))
        log.error("sftp transfer dead-lettered", extra={"node": req.node, "file": req.file_name,
                                                        "reason_code": str(exc.reason), "error": exc.detail})
        outs = [failures.dead_letter(msg, exc, now, message_id=mid, attempts=attempt, stage="sftp", route=ROUTE)]
        outs += self._alarm_outs(req.node, exc, now, file_name=req.file_name, key=f"job:{mid}:{attempt}")
        return JobResult(outs, verdict="dead_lettered")

    def _interrupted(self, rec: TransferRecord, exc: HubError, now: datetime) -> None:
        """Record why a transfer stopped; SENDING/FETCHING go back to where a retry starts."""
        rec = records.get(self.store, rec.key) or rec
        event = {State.SENDING: SendInterrupted, State.FETCHING: FetchInterrupted,
                 State.FETCHED: FetchInterrupted}.get(State(rec.state))
        if event is not None:
            rec = self._apply(rec, event(at=now, reason=exc.reason, done=rec.done))
        records.save(self.store, rec.evolve(reason_code=str(exc.reason), error=exc.detail, updated_at=now))

    def _raise_alarm(self, node: str, exc: HubError, now: datetime, *, key: str, file_name: str | None = None) -> bool:
        """Publish a TransferAlarm once per `key` (to the node and HQ); False when it was raised before."""
        if not records.claim_alarm(self.store, key, "transfer", now,
                                   {"node": node, "reason_code": str(exc.reason), "detail": exc.detail}):
            return False
        try:
            self._publish_events(self._alarm_outs(node, exc, now, file_name=file_name, key=key), now)
        except HubError:
            records.release_alarm(self.store, key)
            raise
        return True

    def _alarm_outs(self, node: str, exc: HubError, now: datetime, *, key: str,
                    file_name: str | None = None) -> list[Outgoing]:
        alarm = TransferAlarm(company_code=node, endpoint=self.cfg.endpoints[node].address, reason_code=str(exc.reason),
                              reason_zh=exc.text_zh(), reason_en=exc.detail, raised_at=now,
                              file_name=file_name if file_name and marker.is_data_name(file_name) else None)
        mid = _hash_id("sftp-alarm", key)
        return [self._event_out(alarm, to, mid, now) for to in dict.fromkeys((node, self.cfg.hq))
                if to in self.directory.by_code]

    # ------------------------------------------------------------------ records and messages

    def _machine(self, rec: TransferRecord) -> Transfer:
        role = Role.SENDER if rec.direction == "upload" else Role.RECEIVER
        return Transfer(role, FileFacts(rec.name, rec.size, rec.sha256, rec.sender), state=State(rec.state),
                        done=rec.done, attempts=rec.attempts, resumed_from=rec.resumed_from,
                        marks={k: datetime.fromisoformat(v) for k, v in (rec.marks or {}).items()})

    def _apply(self, rec: TransferRecord, event) -> TransferRecord:
        """Feed one event to the record's machine; the record after it (raises on an illegal event)."""
        m = self._machine(rec)
        m.handle(event)
        return rec.evolve(state=m.state.value, done=m.done, attempts=m.attempts, resumed_from=m.resumed_from,
                          marks={k: v.isoformat() for k, v in m.marks.items()}, updated_at=event.at,
                          reason_code=str(m.last_reason) if m.last_reason else rec.reason_code)

    def _record_from_request(self, req: TransferRequest, now: datetime) -> TransferRecord:
        """A job whose record is missing (a store restored from a backup): rebuilt from the job."""
        state = State.PRODUCED if req.direction is Direction.upload else State.OFFERED
        return TransferRecord(
            key=req.key, node=req.node, direction=req.direction.value, kind=req.kind.value, sender=req.sender_code,
            base_name=req.base_name, version=req.version, remote_path=req.remote_path, local_path=req.local_path,
            size=req.size, sha256=req.sha256, state=state.value, created_at=now, updated_at=now,
            report_type=req.report_type, period=req.period, sent_at=req.sent_time)

    def _request(self, rec: TransferRecord) -> TransferRequest:
        return TransferRequest(
            node=rec.node, direction=Direction(rec.direction), kind=FileKind(rec.kind), sender_code=rec.sender,
            base_name=rec.base_name, file_name=rec.name, version=rec.version, size=rec.size, sha256=rec.sha256,
            local_path=rec.local_path, remote_path=rec.remote_path, sent_time=rec.sent_at,
            report_type=rec.report_type, period=rec.period)

    def _job_out(self, req: TransferRequest, now: datetime) -> Outgoing:
        props = Props(message_id=_hash_id("sftp-job", req.key, req.sha256), type=req.type_name,
                      content_type="application/xml", content_encoding="utf-8", app_id="cs-hub",
                      timestamp=int(now.timestamp()), delivery_mode=2,
                      headers={ev.H_SOURCE: "hub", ev.H_ROUTE: ROUTE})
        return Outgoing(ev.DELIVER_EXCHANGE, JOB_QUEUE, props, wire.dumps(req))

    def _event_out(self, event, to: str, message_id: str, now: datetime) -> Outgoing:
        """An event for node `to`'s queue, in the node's encoding (config/nodes.yaml)."""
        node = self.directory.by_code[to]
        props = Props(message_id=message_id, type=event.type_name, content_type="application/xml",
                      content_encoding=node.encoding, app_id="cs-hub", timestamp=int(now.timestamp()),
                      delivery_mode=2, headers={ev.H_SOURCE: "hub", ev.H_ROUTE: ROUTE})
        return Outgoing(ev.DELIVER_EXCHANGE, node.queue, props, wire.dumps(event, node.encoding))

    def _publish_events(self, outs: list[Outgoing], now: datetime) -> None:
        """Publish with confirms, then journal the node deliveries (so `hub trace ID` finds them)."""
        if not outs:
            return
        self.bus.publish(outs)
        entries: dict[str, list[Outgoing]] = {}
        for out in outs:
            if out.exchange == ev.DELIVER_EXCHANGE and out.routing_key.startswith("node."):
                entries.setdefault(out.props.message_id, []).append(out)
        if not entries:
            return
        try:
            self.store.record([JournalEntry(
                message_id=mid, type=group[0].props.type, source="hub", status=JournalStatus.delivered, at=now,
                destinations=tuple(o.routing_key for o in group), route_id=ROUTE,
                hops=tuple(Hop(o.routing_key, "published", now) for o in group)) for mid, group in entries.items()])
        except HubError as exc:  # delivered already; only the trace is missing
            log.warning("sftp could not journal its events: %s", exc)

    # ------------------------------------------------------------------ entry points

    def send_now(self, node: str, path: Path) -> TransferRecord:
        """Upload one file for `node` at once (the `hub sftp send` command); a duplicate is not sent again."""
        if node not in self.cfg.endpoints:
            raise HubError(f"node {node} has no endpoint in config/sftp.yaml; known: {', '.join(self.cfg.endpoints)}",
                           reason=ReasonCode.UNKNOWN_NODE, value=node)
        now = self.clock()
        # Connect while the file is hashed (the digest decides whether anything is sent at all):
        # the key exchange waits on the network, hashlib releases the GIL.
        with ThreadPoolExecutor(1, thread_name_prefix="sftp-connect") as pool:
            connecting = pool.submit(self.session, node)
            rec, what = self.prepare_upload(node, path.resolve(), now)
            connect_error = connecting.exception()
        if what != "new" and State(rec.state) in DONE:
            return rec
        if rec.reason_code == ReasonCode.SFTP_NAME_INVALID and rec.state == State.FAILED.value:
            raise RejectedMessage(rec.error or f"{path.name} cannot be sent under this name",
                                  reason=ReasonCode.SFTP_NAME_INVALID, field="FileName", value=path.name)
        if connect_error is not None:
            raise connect_error
        if what == "new":
            records.save(self.store, rec)
        self.execute(self._request(rec), now)
        return records.get(self.store, rec.key) or rec

    def run(self, stop: threading.Event) -> None:
        """Poll and work until `stop` is set; broker or store outages back off and carry on."""
        next_poll, backoff = 0.0, 1.0
        log.info("sftp adapter running", extra={"endpoints": list(self.cfg.endpoints), "queue": JOB_QUEUE,
                                                "poll_interval_s": self.cfg.poll_interval_s, "pid": os.getpid()})
        try:
            while not stop.is_set():
                try:
                    if time.monotonic() >= next_poll:
                        self.poll()
                        next_poll = time.monotonic() + self.cfg.poll_interval_s
                    msg = self.bus.get()
                    backoff = 1.0      # the broker and the store answered
                    if msg is None:
                        self.bus.sleep(min(0.5, max(0.05, next_poll - time.monotonic())))
                        continue
                    self.handle_job(msg)
                except HubError as exc:
                    log.warning("sftp adapter waiting: %s", exc, extra={"reason_code": str(exc.reason),
                                                                        "backoff_s": backoff})
                    self.bus.close()
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 10.0)
                except Exception:   # a bug or a local disk problem: said loudly, the loop carries on
                    log.exception("sftp adapter pass failed; retried after %.0f s", backoff)
                    self.bus.close()
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 10.0)
        finally:
            self.close()
            log.info("sftp adapter stopped", extra={"jobs": dict(self.stats)})
