"""One SSH connection with an SFTP channel to one endpoint, and the small remote operations on it.

Owns: connecting with key authentication only (no agent, no password, no ~/.ssh keys), the
host key pinned through the endpoint's own known_hosts file with RefuseUnknownHost (a
RejectPolicy: unknown and changed keys are refused, never added), the preferred ciphers,
TCP_NODELAY and the SFTP channel's window; remote helpers (folders, stat, listing, small
files written atomically); and the bulk data paths built on bulk.py: a pipelined read of a
remote file into a sink, and a pipelined write that reads each range back into a hash. Every
remote call runs inside errors.translate; a bulk call that fails closes the session.
Must not: decide what to transfer or log secrets (the passphrase is read from its SecretStr
only when handed to paramiko).
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import socket
import stat
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import paramiko

from adapters.sftp.bulk import BulkIO
from adapters.sftp.config import Endpoint, Tuning
from adapters.sftp.errors import RefuseUnknownHost, translate
from protocols.errors import ConfigError

log = logging.getLogger("adapters.sftp")


class SftpSession:
    """Connected on construction (see `open`); close() or use as a context manager."""

    def __init__(self, endpoint: Endpoint, tuning: Tuning, *, node: str) -> None:
        self.endpoint = endpoint
        self.tuning = tuning
        self.node = node
        self.where = endpoint.address
        self.client: paramiko.SSHClient | None = None
        self.sftp: paramiko.SFTPClient | None = None

    @classmethod
    def open(cls, endpoint: Endpoint, tuning: Tuning, *, node: str) -> SftpSession:
        s = cls(endpoint, tuning, node=node)
        s.connect()
        return s

    def connect(self) -> None:
        ep = self.endpoint
        client = paramiko.SSHClient()
        try:
            client.load_host_keys(str(ep.known_hosts))
        except OSError as exc:
            raise ConfigError(f"endpoint {self.node}: cannot read known_hosts {ep.known_hosts} ({exc.strerror}); "
                              f"the server's host key must be pinned there", file="sftp.yaml") from None
        client.set_missing_host_key_policy(RefuseUnknownHost())
        if not ep.key_file.is_file():
            raise ConfigError(f"endpoint {self.node}: key_file {ep.key_file} does not exist", file="sftp.yaml")
        passphrase = ep.key_passphrase.get_secret_value() if ep.key_passphrase else None
        try:
            with translate(self.where, "connect"):
                sock = socket.create_connection((ep.host, ep.port), timeout=ep.connect_timeout_s)
                # Bulk transfers pipeline small requests (reads, window adjustments) between large
                # writes; Nagle's algorithm would hold those back behind unacknowledged data.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                client.connect(ep.host, ep.port, sock=sock, username=ep.user, key_filename=str(ep.key_file),
                               passphrase=passphrase, allow_agent=False, look_for_keys=False,
                               timeout=ep.connect_timeout_s, banner_timeout=ep.connect_timeout_s,
                               auth_timeout=ep.connect_timeout_s, channel_timeout=ep.connect_timeout_s,
                               transport_factory=self._transport)
                transport = client.get_transport()
                transport.set_keepalive(30)
                window = self.tuning.window_mib * 1024 * 1024
                # A large window and packets let the server stream reads (the read-back) without
                # waiting for window adjustments; OpenSSH caps what it sends at its own limits.
                self.sftp = paramiko.SFTPClient.from_transport(transport, window_size=window,
                                                               max_packet_size=256 * 1024)
                self.sftp.get_channel().settimeout(max(60.0, ep.connect_timeout_s))
        except BaseException:
            client.close()
            raise
        self.client = client
        log.info("sftp connected", extra={"node": self.node, "endpoint": self.where, "user": ep.user,
                                          "cipher": transport.local_cipher})

    def _transport(self, sock, **kw) -> paramiko.Transport:
        """A Transport preferring the configured ciphers: AES-GCM first by default, because its
        authentication runs in C, where paramiko checks an HMAC of every packet in Python."""
        t = paramiko.Transport(sock, **kw)
        opts = t.get_security_options()
        known = opts.ciphers
        preferred = [c for c in self.tuning.ciphers if c in known]
        opts.ciphers = tuple(preferred + [c for c in known if c not in preferred])
        return t

    @property
    def alive(self) -> bool:
        t = self.client.get_transport() if self.client else None
        return bool(t and t.is_active())

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = self.sftp = None

    def __enter__(self) -> SftpSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- remote helpers -----------------------------------------------------------------------

    def stat(self, path: str) -> paramiko.SFTPAttributes | None:
        """The attributes of `path`, or None when it does not exist."""
        with translate(self.where, f"stat {path}"):
            try:
                return self.sftp.stat(path)
            except FileNotFoundError:
                return None

    def makedirs(self, folder: str) -> None:
        """mkdir -p on the server (another writer creating the same folder meanwhile is fine)."""
        parts = [p for p in folder.split("/") if p]
        path = "/" if folder.startswith("/") else ""
        for part in parts:
            path = posixpath.join(path, part) if path else part
            st = self.stat(path)
            if st is not None:
                if not stat.S_ISDIR(st.st_mode or 0):
                    raise ConfigError(f"{path} on {self.where} is a file, not a folder", file="sftp.yaml")
                continue
            with translate(self.where, f"create folder {path}"):
                try:
                    self.sftp.mkdir(path)
                except OSError:
                    if self.stat(path) is None:
                        raise

    def listdir(self, folder: str) -> list[paramiko.SFTPAttributes]:
        """Entries of a folder; [] when it does not exist (nothing was sent yet)."""
        with translate(self.where, f"list {folder}"):
            try:
                return self.sftp.listdir_attr(folder or ".")
            except FileNotFoundError:
                return []

    def read_small(self, path: str, limit: int) -> bytes | None:
        """The bytes of a small file (a mark), None when it does not exist; at most `limit` + 1 bytes."""
        with translate(self.where, f"read {path}"):
            try:
                with self.sftp.open(path, "rb") as f:
                    return f.read(limit + 1)
            except FileNotFoundError:
                return None

    def write_small(self, path: str, data: bytes) -> None:
        """Write a small file atomically: under a hidden part name, then renamed over `path`."""
        folder, name = posixpath.split(path)
        tmp = posixpath.join(folder, f".{name}.part")
        with translate(self.where, f"write {path}"):
            with self.sftp.open(tmp, "wb") as f:
                f.write(data)
            self.sftp.posix_rename(tmp, path)

    def remove(self, path: str) -> None:
        with translate(self.where, f"remove {path}"):
            try:
                self.sftp.remove(path)
            except FileNotFoundError:
                pass

    def rename_no_replace(self, src: str, dst: str) -> bool:
        """Rename `src` to `dst` atomically (posix-rename@openssh.com) unless `dst` exists; False if it does.

        The check and the rename are two requests; one adapter serves a node's outbox, so the
        only other writer of the node's folder is a person, whom the check protects.
        """
        if self.stat(dst) is not None:
            return False
        with translate(self.where, f"rename {src} to {dst}"):
            self.sftp.posix_rename(src, dst)
        return True

    def hash_remote(self, path: str, *, start: int = 0, length: int | None = None,
                    hasher: Any = None, progress: Callable[[int], None] | None = None) -> Any:
        """Read `length` bytes of `path` from `start` through SFTP into `hasher` (a new sha256 by
        default) with pipelined large reads; returns the hasher. Raises TransientFailure
        (SFTP_UNAVAILABLE) when the file ends early."""
        hasher = hasher if hasher is not None else hashlib.sha256()

        def sink(block: memoryview) -> None:
            hasher.update(block)
            if progress is not None:
                progress(len(block))
        self.read_into(path, sink, start=start, length=length)
        return hasher

    def read_into(self, path: str, sink: Callable[[memoryview], None], *, start: int = 0,
                  length: int | None = None) -> None:
        """Feed bytes `start`..`start + length` of `path` to `sink` in order, with pipelined reads."""
        chunk = self.tuning.chunk_bytes
        with translate(self.where, f"read {path}"), self._bulk_guard():
            with self.sftp.open(path, "rb") as f:
                end = f.stat().st_size if length is None else start + length
                io = BulkIO(self.sftp, f.handle, on_data=sink)
                for off in range(start, end, chunk):
                    io.read(off, min(chunk, end - off))
                    io.flush()
                    io.pump(block=False)
                io.drain()
                if io.short_read:
                    raise EOFError(f"{path} is shorter than {end} bytes")

    def write_verified(self, path: str, src: BinaryIO, *, offset: int, size: int, hasher: Any,
                       progress: Callable[[int], None], resume: bool) -> tuple[Any, bool]:
        """Write `src` (positioned at `offset`) to `path` from `offset` to `size` and read every
        written range back a few requests later into `hasher`.

        Returns (hasher, complete): `complete` is False when the server answered a read-back
        short, in which case the caller hashes the file again with `hash_remote`. Every
        write's status is checked (the first error raises, after all responses are in).
        """
        chunk = self.tuning.chunk_bytes
        lag = 8   # writes ahead of their read-back: the server has them in its queue already
        with translate(self.where, f"upload {path}"), self._bulk_guard():
            with self.sftp.open(path, "r+b" if resume else "w+b") as f:
                io = BulkIO(self.sftp, f.handle, on_data=hasher.update)
                behind = deque()
                off = offset
                while off < size:
                    data = src.read(min(chunk, size - off))
                    if not data:
                        raise OSError(f"{getattr(src, 'name', 'the local file')} ended at byte {off} of {size}")
                    io.write(off, data)
                    behind.append((off, len(data)))
                    off += len(data)
                    progress(len(data))
                    if len(behind) > lag:
                        io.read(*behind.popleft())
                    io.pump(block=False)
                while behind:
                    io.read(*behind.popleft())
                io.drain()
        return hasher, not io.short_read

    @contextmanager
    def _bulk_guard(self) -> Iterator[None]:
        """A bulk operation that fails leaves the SFTP stream in an unknown state: close the session."""
        try:
            yield
        except BaseException:
            self.close()
            raise
