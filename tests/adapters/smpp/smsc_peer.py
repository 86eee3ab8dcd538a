"""The test SMSC (tests/peers/smsc/smsc.js, the npm package `smpp` as a server) as a Python handle.

Owns: installing the npm package when node_modules is missing (`npm ci`, from the lock file),
starting smsc.js on loopback ports with the options of a test, killing it (SIGKILL, or
SIGTERM) and starting it again on the same ports and files, reading the JSONL file of every
submit_sm it received, and its control API (MO on command, counters, a network cut).
Must not: assert anything; tests do.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ports import free_port
from waiting import wait_until

from adapters.smpp.config import SmppConfig

REPO = Path(__file__).resolve().parents[3]
SMSC_PASSWORD = "secret"
SMSC_DIR = REPO / "tests" / "peers" / "smsc"


def ensure_installed() -> None:
    """`npm ci` in tests/peers/smsc when node_modules is missing (scripts/bootstrap does it too)."""
    if (SMSC_DIR / "node_modules" / "smpp").is_dir():
        return
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(SMSC_DIR)], check=True,
                   capture_output=True, timeout=300)


def decode_part(entry: dict) -> tuple[tuple[int, int, int] | None, bytes]:
    """((reference, total, index) or None, text octets) of one recorded submit_sm."""
    raw = bytes.fromhex(entry["short_message"])
    if entry["esm_class"] & 0x40:
        udh, body = raw[:raw[0] + 1], raw[raw[0] + 1:]
        if udh[1] == 0x08:
            return ((udh[3] << 8) | udh[4], udh[5], udh[6]), body
        return (udh[3], udh[4], udh[5]), body
    return None, raw


@dataclass
class Smsc:
    folder: Path
    name: str = "smsc"
    system_id: str = "cs-hub"
    password: str = SMSC_PASSWORD
    options: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    control_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def submits_file(self) -> Path:
        return self.folder / f"{self.name}-submits.jsonl"

    @property
    def receipts_file(self) -> Path:
        return self.folder / f"{self.name}-receipts.jsonl"

    def start(self, *extra: str, resume: bool = False) -> Smsc:
        ensure_installed()
        self.folder.mkdir(parents=True, exist_ok=True)
        args = ["node", str(SMSC_DIR / "smsc.js"), "--port", str(self.port), "--control-port",
                str(self.control_port), "--system-id", self.system_id, "--password", self.password,
                "--submits", str(self.submits_file), "--receipts", str(self.receipts_file),
                *self.options, *extra]
        if resume:
            args.append("--resume")
        self._log = open(self.folder / f"{self.name}.log", "ab")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, cwd=SMSC_DIR)
        wait_until(self._listening, 15, 0.05, f"the test SMSC listens on 127.0.0.1:{self.port}")
        return self

    def _listening(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"the test SMSC exited with {self.proc.returncode}: "
                                 f"{(self.folder / f'{self.name}.log').read_text(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", self.control_port), timeout=0.2).close()
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the SMSC dies mid-stream, as a crash or a cut would leave it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if getattr(self, "_log", None):
            self._log.close()

    # -- what it received --------------------------------------------------------------------

    def submits(self) -> list[dict]:
        if not self.submits_file.exists():
            return []
        out = []
        for line in self.submits_file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass  # a line cut by a kill -9
        return out

    def accepted(self) -> list[dict]:
        return [s for s in self.submits() if s["status"] == 0]

    # -- control API ---------------------------------------------------------------------------

    def _http(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.control_port}{path}", data=data, method=method,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict:
        return self._http("GET", "/stats")

    def mo(self, source: str, text: str, destination: str = "10086", parts: int = 1, ref_bits: int = 16,
           reverse: bool = False) -> int:
        return self._http("POST", "/mo", {"source": source, "destination": destination, "text": text,
                                          "parts": parts, "ref_bits": ref_bits, "reverse": reverse})["parts"]


def reassemble(entries: list[dict]) -> dict[tuple[str, int | None], str]:
    """What each handset would show: accepted submits joined by (destination, reference),
    duplicates of a part counted once. Key (destination, reference or None for a single SMS
    numbered by its position)."""
    singles: dict[tuple[str, int | None], str] = {}
    groups: dict[tuple[str, int], dict[int, bytes]] = {}
    codings: dict[tuple[str, int], int] = {}
    n = 0
    for e in entries:
        if e["status"] != 0:
            continue
        concat, body = decode_part(e)
        if concat is None:
            n += 1
            singles[(e["destination"], -n)] = _decode(body, e["data_coding"])
        else:
            ref, _total, index = concat
            groups.setdefault((e["destination"], ref), {}).setdefault(index, body)
            codings[(e["destination"], ref)] = e["data_coding"]
    for key, parts in groups.items():
        singles[key] = _decode(b"".join(parts[i] for i in sorted(parts)), codings[key])
    return singles


def _decode(body: bytes, data_coding: int) -> str:
    if data_coding == 8:
        return body.decode("utf-16-be")
    from protocols.smpp.text import decode_text
    return decode_text(body, data_coding)



def smpp_config(*peers: Smsc, **overrides) -> SmppConfig:
    """An adapter configuration for these SMSCs, priority in the order given."""
    per_smsc = overrides.pop("smsc", {})
    return SmppConfig.model_validate({
        "smscs": [{"name": p.name, "host": "127.0.0.1", "port": p.port, "system_id": p.system_id,
                   "priority": i + 1, "source_addr": "10086", "tps": 5000, "window": 20,
                   "response_timeout_s": 3, "reconnect_initial_s": 0.1, "reconnect_max_s": 1.0,
                   "enquire_link_interval_s": 5, **per_smsc} for i, p in enumerate(peers)],
        "prefetch": 400, "receipt_grace_s": 2, "max_attempts": 3,
        "mo_routes": [{"survey_reply": True}, {"to_prefix": "1008699", "node": "99"}],
        "mo_default_node": "00", **overrides})
