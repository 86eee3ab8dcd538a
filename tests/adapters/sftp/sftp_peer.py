"""OpenSSH's sshd as the tests' SFTP server: on 127.0.0.1, its own config and host key, as `nobody`.

Owns: keys (ssh-keygen), the server's folder (readable by `nobody`, outside pytest's 0700
tmp folders), sshd_config with `ForceCommand internal-sftp -d DIR` (shell commands refused),
known_hosts lines in the `[127.0.0.1]:PORT` form, starting and stopping the server, and
`kill()`: SIGKILL to the listener *and* its per-connection children (each runs in a session
of its own, so a process-group kill would leave an upload running). Only processes started
here are touched: the children are found from the listener's pid through /proc.
Must not: assert anything (tests do).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

from ports import free_port
from waiting import wait_until

SSHD = "/usr/sbin/sshd"


def keygen(path: Path, kind: str = "ed25519") -> Path:
    """A new key pair at `path` (private) and `path`.pub."""
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "cs-hub-test", "-f", str(path)], check=True)
    return path


def _children(pid: int) -> list[int]:
    """Descendants of `pid` (depth first), from /proc."""
    by_parent: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        by_parent.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in by_parent.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class SshServer:
    """One sshd; `root` is the folder SFTP users start in (every test account is `nobody`)."""

    def __init__(self, client_pub: Path, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="cs-hub-sshd-"))
        self.root = self.dir / "exchange"
        self.root.mkdir()
        self.user = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self.host_key = keygen(self.dir / "host_ed25519")
        shutil.copy(client_pub, self.dir / "authorized_keys")
        self.config = self.dir / "sshd_config"
        self.log = self.dir / "sshd.log"
        self.popen: subprocess.Popen | None = None
        self._write_config()
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            for p in (self.dir, self.root, self.host_key, self.dir / "authorized_keys", self.config):
                os.chown(p, nobody.pw_uid, nobody.pw_gid)
        self.dir.chmod(0o755)
        self.root.chmod(0o777)
        self.host_key.chmod(0o600)

    def _write_config(self) -> None:
        self.config.write_text(
            f"ListenAddress 127.0.0.1\nPort {self.port}\nHostKey {self.host_key}\nPidFile {self.dir / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}\nStrictModes no\nUsePAM yes\n"
            f"PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
            f"PrintMotd no\nSubsystem sftp internal-sftp\nForceCommand internal-sftp -d {self.root}\n"
            f"MaxStartups 100\nLogLevel INFO\n")

    def known_hosts_line(self, key_pub: Path | None = None) -> str:
        kind, key = (key_pub or self.host_key.with_suffix(".pub")).read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {key}\n"

    def write_known_hosts(self, path: Path) -> Path:
        path.write_text(self.known_hosts_line())
        return path

    def start(self) -> SshServer:
        cmd = [SSHD, "-D", "-f", str(self.config), "-E", str(self.log)]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "nobody", "--", *cmd]
        self.popen = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)

        def listening() -> bool:
            if self.popen.poll() is not None:
                raise AssertionError(f"sshd exited with {self.popen.returncode}: {self.log_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            except OSError:
                return False
            return True
        wait_until(listening, 10, 0.02, f"sshd listens on 127.0.0.1:{self.port}")
        return self

    def kill(self) -> None:
        """SIGKILL the server and every connection it serves (the link drops mid-transfer)."""
        if self.popen is None:
            return
        for pid in reversed(_children(self.popen.pid)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(10)
        self.popen = None

    def stop(self) -> None:
        self.kill()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
