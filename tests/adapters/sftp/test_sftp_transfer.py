"""The SFTP adapter against OpenSSH's sshd and the real RabbitMQ (domain 4, scenario 4 of domain 9).

Each test starts its own sshd (as `nobody`, 127.0.0.1, its own host key) and uses a fresh vhost.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree
from waiting import wait_until

from adapters.sftp import records
from hub import envelope as ev
from protocols.errors import HubError, ReasonCode
from protocols.files import marker, wire
from protocols.files.events import FileMarkEvent, ReportLateEvent, TransferAlarm
from protocols.files.marker import FileKind, MarkKind


def write_random(path: Path, size: int, seed: int = 1) -> str:
    """A file of `size` pseudo-random bytes; returns its SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    block = hashlib.sha256(str(seed).encode()).digest() * 32768      # 1 MiB, cheap to make
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        i = 0
        while left > 0:
            chunk = (block[i % 97:] + block[:i % 97])[:min(left, len(block))]
            f.write(chunk)
            h.update(chunk)
            left -= len(chunk)
            i += 1
    return h.hexdigest()


def server_folder(sshd, *parts: str) -> Path:
    """A folder made on the server's side by the test (as root), writable by the server's user."""
    folder = sshd.root.joinpath(*parts)
    folder.mkdir(parents=True)
    for p in [folder, *folder.parents]:
        if p == sshd.root:
            break
        p.chmod(0o777)
    return folder


def sha_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_jobs(adapter, until, timeout: float = 30.0, what: str = "the jobs are done"):
    """Work the job queue (retries come back after their tier) until `until()` holds."""
    def step():
        adapter.work_once()
        return until()
    return wait_until(step, timeout, 0.05, what)


def events_in(read, queue: str) -> list:
    return [(p, wire.loads(b, p.content_encoding)) for p, b in read(queue)]


# ----------------------------------------------------------------------------- upload and HQ's mark


def test_report_goes_up_and_hq_returns_the_success_mark(make_adapter, sftp_cfg, sshd, queue_reader):
    adapter = make_adapter()
    report = sftp_cfg.endpoints["44"].outbox / "44_stats_202611.csv"
    sha = write_random(report, 3 * 1024 * 1024 + 17)

    assert adapter.poll()["queued"] == 1
    assert adapter.work_once() == 1

    # On the server: the data file under its final name, its sent mark beside it, no part file.
    folder = sshd.root / "up" / "44" / "202611"
    assert sha_of(folder / "44_stats_202611.csv") == sha
    mark = marker.parse((folder / "44_stats_202611.csv.ok").read_bytes())
    assert (mark.kind, mark.sha256, mark.size, mark.sender) == (MarkKind.sent, sha, report.stat().st_size, "44")
    assert (mark.file_kind, mark.report, mark.period, mark.version) == (FileKind.report, "stats", "202611", 1)
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]

    # HQ's mirror fetches it, verifies it against the mark and returns its success mark.
    assert adapter.poll()["offered"] == 1
    assert adapter.work_once() == 1
    local = sftp_cfg.endpoints["00"].inbox / "44" / "202611" / "44_stats_202611.csv"
    assert sha_of(local) == sha
    receipt = marker.parse((folder / "44_stats_202611.csv.00.ack").read_bytes())
    assert (receipt.kind, receipt.receiver, receipt.sha256) == (MarkKind.received, "00", sha)

    # ... and the mark as a bus event in the province's queue, in its encoding (GBK).
    [(props, event)] = events_in(queue_reader, "node.44")
    assert props.type == "file.report_received" and props.content_encoding == "gbk"
    assert props.headers[ev.H_SOURCE] == "hub"
    assert isinstance(event, FileMarkEvent)
    assert (event.company_code, event.sender_code, event.sha256, event.size) == ("00", "44", sha, mark.size)
    assert (event.report_type, event.period, event.late) == ("stats", "202611", False)
    assert event.path == "up/44/202611/44_stats_202611.csv"
    assert queue_reader("node.00") == []

    # The sender's record sees the receiver's mark: produced -> sent -> received.
    adapter.poll()
    [sent] = records.in_states(adapter.store, ["received"], node="44", direction="upload")
    assert sent.marks.keys() == {"00"} and sent.sha256 == sha
    [got] = records.in_states(adapter.store, ["marked"], node="00", direction="download")
    assert got.sha256 == sha
    assert adapter.health()["ok"] is True


# ----------------------------------------------------------------------------- download mirror


def test_hq_document_goes_down_and_each_province_confirms(make_adapter, sftp_cfg, sshd, clock, queue_reader):
    adapter = make_adapter()
    doc = sftp_cfg.endpoints["00"].outbox / "全网服务规范-v3.pdf"
    sha = write_random(doc, 512 * 1024 + 3, seed=7)

    adapter.poll()
    adapter.work_once()
    day = "2026-12-03"
    published = sshd.root / "down" / day / doc.name
    assert sha_of(published) == sha
    assert marker.parse(published.with_name(doc.name + ".ok").read_bytes()).file_kind is FileKind.document

    assert adapter.poll()["offered"] == 2            # 44 and 11 each mirror `down`
    run_jobs(adapter, lambda: len(records.in_states(adapter.store, ["marked"], direction="download")) == 2)
    for code in ("44", "11"):
        assert sha_of(sftp_cfg.endpoints[code].inbox / day / doc.name) == sha
        ack = marker.parse((sshd.root / "down" / day / f"{doc.name}.{code}.ack").read_bytes())
        assert (ack.receiver, ack.sha256) == (code, sha)

    marks = events_in(queue_reader, "node.00")
    assert sorted(e.company_code for _p, e in marks) == ["11", "44"]
    assert {(p.type, e.sender_code, e.sha256) for p, e in marks} == {("file.document_received", "00", sha)}

    adapter.poll()
    [rec] = records.in_states(adapter.store, ["received"], node="00", direction="upload")
    assert set(rec.marks) == {"11", "44"}


# ----------------------------------------------------------------------------- cut off and resumed


def test_upload_cut_off_midway_resumes_on_retry_without_a_visible_partial_file(make_adapter, sftp_cfg, sshd,
                                                                              queue_reader, caplog):
    caplog.set_level(logging.INFO, logger="adapters.sftp")
    killed = {}

    def cut(node, name, done, total):
        if not killed and done >= 24 * 1024 * 1024:
            killed["at"] = done
            sshd.kill()

    adapter = make_adapter(on_progress=cut)
    report = sftp_cfg.endpoints["44"].outbox / "44_stats_202611.csv"
    sha = write_random(report, 64 * 1024 * 1024, seed=3)
    folder = sshd.root / "up" / "44" / "202611"

    adapter.poll()
    assert adapter.work_once() == 1                  # the link dropped: the job went to a retry tier
    assert killed
    assert not (folder / report.name).exists()       # nothing under the final name ...
    part = folder / f".{report.name}.part"
    assert 0 < part.stat().st_size < report.stat().st_size   # ... only the hidden part
    [rec] = records.in_states(adapter.store, ["produced"], node="44")
    assert rec.reason_code == ReasonCode.SFTP_UNAVAILABLE

    sshd.start()                                     # the server is back
    run_jobs(adapter, lambda: records.in_states(adapter.store, ["sent"], node="44"), what="the upload completes")
    [rec] = records.in_states(adapter.store, ["sent"], node="44")
    assert sha_of(folder / report.name) == sha
    assert not part.exists()
    assert 0 < rec.resumed_from < rec.size          # continued after the verified partial file
    assert rec.attempts == 2
    assert marker.parse((folder / f"{report.name}.ok").read_bytes()).sha256 == sha
    assert queue_reader(ev.DLQ) == []
    # Long transfers report progress as structured log lines (every progress_every_s).
    lines = [r for r in caplog.records if r.getMessage() == "sftp transfer progress"]
    assert lines and all(r.total == rec.size and 0 < r.bytes <= r.total and r.node == "44" for r in lines)
    assert any(r.getMessage() == "sftp resuming upload" and r.offset == rec.resumed_from for r in caplog.records)


def test_a_partial_file_that_differs_is_restarted_cleanly(make_adapter, sftp_cfg, sshd):
    adapter = make_adapter()
    report = sftp_cfg.endpoints["44"].outbox / "44_stats_202611.csv"
    sha = write_random(report, 2 * 1024 * 1024, seed=5)
    folder = server_folder(sshd, "up", "44", "202611")
    (folder / f".{report.name}.part").write_bytes(b"not the same bytes" * 1000)

    adapter.poll()
    adapter.work_once()
    assert sha_of(folder / report.name) == sha
    [rec] = records.in_states(adapter.store, ["sent"], node="44")
    assert rec.resumed_from == 0


# ----------------------------------------------------------------------------- host keys


def _dead_letters(read) -> list:
    return read(ev.DLQ)


def test_a_changed_host_key_is_refused_with_an_alarm(make_adapter, sftp_cfg, sshd, known_hosts, tmp_path,
                                                     queue_reader):
    from sftp_peer import keygen
    impostor = keygen(tmp_path / "other_host_key")
    known_hosts.write_text(sshd.known_hosts_line(impostor.with_suffix(".pub")))
    before = known_hosts.read_text()
    adapter = make_adapter()
    report = sftp_cfg.endpoints["44"].outbox / "44_stats_202611.csv"
    write_random(report, 1000)

    summary = adapter.poll()
    assert summary["queued"] == 1 and summary["errors"] >= 1      # the mirrors could not connect either
    assert adapter.work_once() == 1

    assert not (sshd.root / "up").exists()                        # nothing reached the server
    assert known_hosts.read_text() == before                      # never added or replaced
    [(props, body)] = _dead_letters(queue_reader)
    assert props.headers[ev.H_REASON_CODE] == ReasonCode.SFTP_HOST_KEY_CHANGED
    assert props.type == "file.transfer"
    alarms = [e for _p, e in events_in(queue_reader, "node.44") if isinstance(e, TransferAlarm)]
    reasons = {a.reason_code for a in alarms}
    assert reasons == {ReasonCode.SFTP_HOST_KEY_CHANGED}
    assert any(a.file_name == report.name for a in alarms)
    assert "主机密钥" in alarms[0].reason_zh
    hq = [e for _p, e in events_in(queue_reader, "node.00") if isinstance(e, TransferAlarm)]
    assert {a.company_code for a in hq} >= {"44", "00"}
    [rec] = records.in_states(adapter.store, ["failed"], node="44")
    assert rec.reason_code == ReasonCode.SFTP_HOST_KEY_CHANGED
    assert adapter.health()["endpoints"]["44"]["last_error"]["reason_code"] == ReasonCode.SFTP_HOST_KEY_CHANGED

    # The same refusal on the next poll raises no second alarm within the hour.
    adapter.poll()
    assert [e for _p, e in events_in(queue_reader, "node.44")] == []


def test_an_unknown_host_key_is_refused_and_never_added(make_adapter, sftp_cfg, known_hosts):
    known_hosts.write_text("")
    adapter = make_adapter()
    path = sftp_cfg.endpoints["44"].outbox / "44_stats_202611.csv"
    write_random(path, 100)
    with pytest.raises(HubError) as caught:
        adapter.send_now("44", path)
    assert caught.value.reason == ReasonCode.SFTP_HOST_KEY_UNKNOWN
    assert not caught.value.retryable
    assert known_hosts.read_text() == ""


def test_a_wrong_client_key_is_refused(make_adapter, sftp_cfg, tmp_path):
    from sftp_peer import keygen
    other = keygen(tmp_path / "stranger")
    cfg = sftp_cfg.model_copy(deep=True)
    cfg.endpoints["44"].key_file = other
    adapter = make_adapter(cfg)
    path = cfg.endpoints["44"].outbox / "44_stats_202611.csv"
    write_random(path, 100)
    with pytest.raises(HubError) as caught:
        adapter.send_now("44", path)
    assert caught.value.reason == ReasonCode.SFTP_AUTH_FAILED


# ----------------------------------------------------------------------------- idempotence and versions


def test_the_same_file_is_not_sent_twice_and_a_changed_one_is_a_new_version(make_adapter, sftp_cfg, sshd):
    cfg = sftp_cfg.model_copy(deep=True)
    cfg.endpoints["00"].mirror = []                  # only the sending side in this test
    adapter = make_adapter(cfg)
    outbox = sftp_cfg.endpoints["44"].outbox
    report = outbox / "44_stats_202611.csv"
    sha1 = write_random(report, 200_000, seed=1)
    adapter.poll()
    adapter.work_once()
    folder = sshd.root / "up" / "44" / "202611"
    assert sha_of(folder / report.name) == sha1

    # The same content again: touched, and written again under the same name.
    os.utime(report, (1_700_000_000, 1_700_000_000))
    assert adapter.poll()["queued"] == 0
    copy = outbox.parent / "copy.csv"
    shutil.copy(report, copy)
    report.unlink()
    copy.rename(report)
    assert adapter.poll()["queued"] == 0
    assert adapter.work_once() == 0
    assert adapter.stats["duplicates"] == 2
    assert sorted(p.name for p in folder.iterdir()) == ["44_stats_202611.csv", "44_stats_202611.csv.ok"]
    assert adapter.send_now("44", report).state == "sent"         # `hub sftp send` does not send it again
    assert sorted(p.name for p in folder.iterdir()) == ["44_stats_202611.csv", "44_stats_202611.csv.ok"]

    # Changed content under the same name: version 2 beside version 1, which stays as it was.
    sha2 = write_random(report, 200_000, seed=2)
    assert adapter.poll()["queued"] == 1
    adapter.work_once()
    assert sha_of(folder / "44_stats_202611.csv") == sha1
    assert sha_of(folder / "44_stats_202611.v2.csv") == sha2
    mark2 = marker.parse((folder / "44_stats_202611.v2.csv.ok").read_bytes())
    assert (mark2.version, mark2.sha256) == (2, sha2)


def test_a_name_taken_on_the_server_is_never_overwritten(make_adapter, sftp_cfg, sshd):
    """Someone put other bytes under the final name (a plain SFTP user): the file becomes version 2."""
    adapter = make_adapter()
    folder = server_folder(sshd, "up", "44", "202611")
    (folder / "44_stats_202611.csv").write_bytes(b"someone else's file")
    report = sftp_cfg.endpoints["44"].outbox / "44_stats_202611.csv"
    sha = write_random(report, 10_000)
    rec = adapter.send_now("44", report)
    assert (rec.state, rec.version, rec.remote_path) == ("sent", 2, "up/44/202611/44_stats_202611.v2.csv")
    assert (folder / "44_stats_202611.csv").read_bytes() == b"someone else's file"
    assert sha_of(folder / "44_stats_202611.v2.csv") == sha


def test_a_report_of_another_province_is_refused_with_an_alarm(make_adapter, sftp_cfg, sshd, queue_reader):
    adapter = make_adapter()
    write_random(sftp_cfg.endpoints["44"].outbox / "11_stats_202611.csv", 100)
    assert adapter.poll()["queued"] == 0
    assert adapter.poll()["queued"] == 0             # recorded: not examined again while unchanged
    [(props, alarm)] = events_in(queue_reader, "node.44")
    assert alarm.reason_code == ReasonCode.SFTP_NAME_INVALID and alarm.file_name == "11_stats_202611.csv"
    assert not (sshd.root / "up").exists()


# ----------------------------------------------------------------------------- deadlines


def test_a_late_report_raises_one_alarm_and_the_late_arrival_is_marked_late(make_adapter, sftp_cfg, clock,
                                                                           queue_reader):
    adapter = make_adapter()
    # Beijing delivers in time (2026-12-03), Guangdong does not.
    write_random(sftp_cfg.endpoints["11"].outbox / "11_stats_202611.csv", 5000)
    adapter.poll()
    adapter.work_once()
    adapter.poll()
    adapter.work_once()
    assert [e.late for _p, e in events_in(queue_reader, "node.11")] == [False]

    clock.now = datetime(2026, 12, 5, 9, 59, tzinfo=UTC)       # 17:59 Beijing time: not yet due
    assert adapter.poll()["late"] == 0
    clock.now = datetime(2026, 12, 5, 10, 1, tzinfo=UTC)       # 18:01: the deadline has passed
    assert adapter.poll()["late"] == 1
    [(props, late)] = events_in(queue_reader, "node.00")
    assert props.type == "file.report_late" and isinstance(late, ReportLateEvent)
    assert (late.province, late.report_type, late.period, late.expected_name) == ("44", "stats", "202611",
                                                                                 "44_stats_202611.csv")
    assert late.deadline == datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    [(props44, late44)] = events_in(queue_reader, "node.44")
    assert props44.message_id == props.message_id and props44.content_encoding == "gbk"
    assert adapter.poll()["late"] == 0                         # once per report and period
    assert events_in(queue_reader, "node.00") == []

    # Guangdong delivers after all: HQ's mark says it was late.
    clock.now = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)
    write_random(sftp_cfg.endpoints["44"].outbox / "44_stats_202611.csv", 5000)
    adapter.poll()
    adapter.work_once()
    adapter.poll()
    adapter.work_once()
    [(_p, mark)] = events_in(queue_reader, "node.44")
    assert (mark.report_type, mark.late) == ("stats", True)
    assert records.alarms_raised(adapter.store, kind="report_late")[0]["province"] == "44"


# ----------------------------------------------------------------------------- the wire of the events


def test_events_validate_against_files_xsd(make_adapter, sftp_cfg, queue_reader):
    adapter = make_adapter()
    write_random(sftp_cfg.endpoints["11"].outbox / "billing-sms-20261202.dat", 1234)
    adapter.poll()
    adapter.work_once()
    adapter.poll()
    adapter.work_once()
    [(props, body)] = queue_reader("node.11")
    assert props.type == "file.received"
    root = etree.fromstring(body)
    assert etree.QName(root).namespace == "urn:cs-hub:files:1" and etree.QName(root).localname == "FileReceived"
    event = wire.loads(body, props.content_encoding)
    assert (event.kind, event.company_code, event.sender_code) == (FileKind.file, "00", "11")


def test_metrics_show_finished_jobs_transfers_and_endpoints(make_adapter, sftp_cfg, sshd):
    from ports import free_port
    from prometheus_client.parser import text_string_to_metric_families

    from adapters.sftp.metrics import SftpCollector
    from hub.metrics import serve_collector

    adapter = make_adapter()
    port = free_port()
    server = serve_collector(SftpCollector(adapter.health), port)
    write_random(sftp_cfg.endpoints["44"].outbox / "44_stats_202611.csv", 64 * 1024)
    assert adapter.poll()["queued"] == 1
    assert adapter.work_once() == 1

    import requests
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        server.shutdown()
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for f in text_string_to_metric_families(text) for s in f.samples}
    finished = {labels: v for (name, labels), v in got.items() if name == "sftp_jobs_total"}
    assert sum(finished.values()) == 1, got
    transfers = {labels: v for (name, labels), v in got.items() if name == "sftp_transfers"}
    assert transfers == {(("direction", "upload"), ("state", "sent")): 1.0}, transfers
    assert got[("sftp_endpoint_ok", (("node", "44"),))] == 1
    assert got[("sftp_store_ok", ())] == 1
