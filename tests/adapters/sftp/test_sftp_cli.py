"""`hub sftp send | status | lint | run` as an operator runs them (subprocesses, real sshd and RabbitMQ)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml
from running_hub import settings_file
from test_sftp_transfer import events_in, sha_of, write_random
from waiting import wait_until

REPO = Path(__file__).resolve().parents[3]


def config_file(cfg, folder: Path, **changes) -> Path:
    data = cfg.model_dump(mode="json", exclude_none=True)
    data.update(changes)
    path = folder / "sftp.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def hub(settings_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hub.cli", "--settings", str(settings_path), "sftp", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, HUB_LOG_FORMAT="text"))


def test_send_status_and_lint(settings, sftp_topology, sftp_cfg, sshd, tmp_path):
    s_path = settings_file(settings, tmp_path)
    c_path = config_file(sftp_cfg, tmp_path)
    report = sftp_cfg.endpoints["44"].outbox / "44_stats_202611.csv"
    sha = write_random(report, 300_000)

    sent = hub(s_path, "send", "--config", str(c_path), "44", str(report))
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith("sent: ") and f"sha256 {sha}" in sent.stdout
    [remote] = list((sshd.root / "up" / "44").glob("*/44_stats_202611.csv"))
    assert sha_of(remote) == sha

    again = hub(s_path, "send", "--config", str(c_path), "44", str(report))
    assert again.returncode == 0 and again.stdout.startswith("sent: ")     # recognised, not sent twice
    assert len(list((sshd.root / "up" / "44").glob("*/*"))) == 2          # the file and its mark

    status = hub(s_path, "status", "--config", str(c_path), "--json", "--check")
    assert status.returncode == 0, status.stdout + status.stderr
    doc = json.loads(status.stdout)
    assert {e["check"] for e in doc["endpoints"].values()} == {"ok"}
    assert {(c["node"], c["direction"], c["state"], c["count"]) for c in doc["counts"]} == {("44", "upload", "sent", 1)}

    (tmp_path / "known_hosts").write_text("")
    refused = hub(s_path, "status", "--config", str(c_path), "--check")
    assert refused.returncode == 1 and "SFTP_HOST_KEY_UNKNOWN" in refused.stdout

    assert hub(s_path, "lint", "--config", str(c_path)).returncode == 0
    bad = config_file(sftp_cfg, tmp_path, hq="44")
    linted = hub(s_path, "lint", "--config", str(bad))
    assert linted.returncode == 1 and "hq '44' is not the hq node" in linted.stderr


def test_run_moves_a_report_up_and_stops_on_sigterm(settings, sftp_topology, sftp_cfg, sshd, tmp_path, queue_reader):
    s_path = settings_file(settings, tmp_path)
    c_path = config_file(sftp_cfg, tmp_path, poll_interval_s=0.2)
    log = open(tmp_path / "sftp.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "--settings", str(s_path), "sftp", "run", "--config",
                             str(c_path)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        sha = write_random(sftp_cfg.endpoints["44"].outbox / "44_stats_202611.csv", 1_000_000)
        marks = []

        def marked():
            marks.extend(events_in(queue_reader, "node.44"))
            return marks
        wait_until(marked, 60, 0.1, "HQ's success mark reaches node.44")
        [(props, event)] = marks
        assert props.type == "file.report_received" and event.sha256 == sha
        assert sha_of(sftp_cfg.endpoints["00"].inbox / "44" / event.period / "44_stats_202611.csv") == sha
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
    text = (tmp_path / "sftp.log").read_text()
    assert "sftp adapter stopped" in text and "key_passphrase" not in text
