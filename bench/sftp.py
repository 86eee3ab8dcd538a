"""Benchmark of the SFTP adapter's upload against OpenSSH's own client, same sshd, same run.

(a) openssh: `sftp -b` (OpenSSH 9.2, default buffer and request settings) putting the file:
    connect, authenticate, write, close — what a province's script would run.
(b) adapter: `SftpAdapter.send_now` (what `hub sftp send` runs), doing its real work: hash
    the local file, record the transfer in the state store (SQLite), connect (host key
    pinned, key auth), write `.NAME.part` with pipelined 255 KiB requests, read the whole
    file back through SFTP to verify size and SHA-256 on the server, rename it into place,
    write the sent mark, record it as sent.
Both against one OpenSSH sshd on 127.0.0.1 (started here as `nobody`, like the tests), the
runs interleaved, each with a fresh file name; the figure of each side is the median run.

    python bench/sftp.py [--quick] [--mb N] [--runs N]
Last line: RESULT sftp adapter_mb_s=... openssh_mb_s=... ratio=... mb=... runs=...
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))                      # waiting.py
sys.path.insert(0, str(ROOT / "tests" / "adapters" / "sftp"))  # sftp_peer.py: the tests' sshd

import yaml  # noqa: E402
from sftp_peer import SshServer, keygen  # noqa: E402

from adapters.sftp.config import SftpFile  # noqa: E402
from adapters.sftp.service import SftpAdapter  # noqa: E402
from hub.nodes import Directory, NodesFile  # noqa: E402
from hub.settings import load_settings  # noqa: E402
from hub.store import open_store  # noqa: E402


def progress(msg: str) -> None:
    print(f"[sftp] {msg}", file=sys.stderr, flush=True)


def make_file(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 1 << 20))
            f.write(block)
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def openssh_put(server: SshServer, key: Path, known_hosts: Path, local: Path, name: str, work: Path) -> float:
    batch = work / "batch"
    batch.write_text(f"put {local} {name}\n")
    cmd = ["sftp", "-q", "-b", str(batch), "-i", str(key), "-o", f"UserKnownHostsFile={known_hosts}",
           "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-P", str(server.port), f"{server.user}@127.0.0.1"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="30 MB, 3 runs each (well within a minute)")
    ap.add_argument("--mb", type=int, help="file size in MB (default 100, quick 30)")
    ap.add_argument("--runs", type=int, help="runs of each side (default 5, quick 3)")
    args = ap.parse_args()
    mb = args.mb or (30 if args.quick else 100)
    runs = args.runs or (3 if args.quick else 5)
    size = mb * 1_000_000

    with tempfile.TemporaryDirectory(prefix="bench-sftp-") as tmp:
        work = Path(tmp)
        key = keygen(work / "id_ed25519")
        server = SshServer(key.with_suffix(".pub")).start()
        try:
            known_hosts = server.write_known_hosts(work / "known_hosts")
            data = work / "data.bin"
            t0 = time.perf_counter()
            sha = make_file(data, size)
            progress(f"{mb} MB test file made in {time.perf_counter() - t0:.1f}s; sshd on port {server.port}")

            settings = load_settings(ROOT / "config" / "hub.yaml", store_url=f"sqlite:///{work / 'bench.sqlite3'}",
                                     data_dir=work / "var")
            nodes = yaml.safe_load((ROOT / "config" / "nodes.yaml").read_text(encoding="utf-8"))
            directory = Directory(NodesFile.model_validate(nodes).nodes)
            outbox = work / "outbox"
            outbox.mkdir()
            cfg = SftpFile.model_validate({"endpoints": {"44": {
                "host": "127.0.0.1", "port": server.port, "user": server.user, "key_file": str(key),
                "known_hosts": str(known_hosts), "remote_outbox": "up/44", "outbox": str(outbox),
                "inbox": str(work / "inbox")}}, "transfer": {"progress_every_s": 3600}})
            store = open_store(settings.store_url)
            clock = lambda: datetime(2026, 12, 3, 2, 0, tzinfo=UTC)  # noqa: E731
            ours, theirs = [], []
            for i in range(runs):
                name = f"openssh-{i}.bin"
                dt = openssh_put(server, key, known_hosts, data, name, work)
                got = server.root / name
                assert got.stat().st_size == size
                got.unlink()
                theirs.append(size / dt / 1e6)

                local = outbox / f"adapter-{i}.bin"
                os.link(data, local)
                adapter = SftpAdapter(cfg, settings, store, directory, clock=clock)
                t0 = time.perf_counter()
                rec = adapter.send_now("44", local)
                dt = time.perf_counter() - t0
                adapter.close()
                assert rec.state == "sent" and rec.sha256 == sha, rec
                published = server.root / rec.remote_path
                assert published.stat().st_size == size
                published.unlink()
                ours.append(size / dt / 1e6)
                progress(f"run {i + 1}/{runs}: openssh {theirs[-1]:.0f} MB/s, adapter {ours[-1]:.0f} MB/s")
            store.close()
        finally:
            server.cleanup()
    adapter_mb_s, openssh_mb_s = statistics.median(ours), statistics.median(theirs)
    print(f"adapter runs (MB/s): {', '.join(f'{v:.0f}' for v in ours)}")
    print(f"openssh runs (MB/s): {', '.join(f'{v:.0f}' for v in theirs)}")
    print(f"RESULT sftp adapter_mb_s={adapter_mb_s:.0f} openssh_mb_s={openssh_mb_s:.0f} "
          f"ratio={adapter_mb_s / openssh_mb_s:.2f} mb={mb} runs={runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
