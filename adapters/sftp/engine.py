"""Moving one file: the upload with atomic publication and the download with verification.

Upload (sender -> server), the order that makes a partial file invisible under its final name:
  1. folder created; if NAME is already there with this content (a crash after the rename),
     only the sent mark is (re)written; with other content the caller picks a new version;
  2. `.NAME.part`: resumed from its size when its bytes equal the file's first bytes
     (hashed on both sides), else rewritten from the start;
  3. pipelined writes of `chunk_bytes` (255 KiB: OpenSSH refuses SFTP packets of 256 KiB or
     more), each range read back through SFTP a few requests later and hashed (bulk.py), so
     the server's copy is verified while the upload runs; the resumed prefix was read back in
     step 2 and is not read again;
  4. verified on the server: size by stat, SHA-256 of the read-back equal to the file's (a
     difference caused by the local file changing meanwhile is SFTP_FILE_CHANGED);
  5. renamed to NAME with posix-rename@openssh.com (atomic), refused if NAME appeared;
  6. the sent mark NAME.ok written (itself through a part name and a rename).

Download (server -> receiver): into `.NAME.part` in the local folder, resumed from its size,
hashed, compared with the sender's mark, then published under NAME with a hard link (which
never replaces an existing file) and the part removed.

Owns: those steps, progress reports (a structured log line every `progress_every_s`, and an
optional callback) and the results.
Must not: touch the state store or the bus, or retry (the caller's job system does).
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from adapters.sftp.session import SftpSession
from protocols.errors import HubError, ReasonCode, TransientFailure
from protocols.files import marker
from protocols.files.marker import Mark
from protocols.files.transfer import FileFacts, resume_offset

log = logging.getLogger("adapters.sftp")

_LOCAL_BLOCK = 1024 * 1024


class VersionTaken(Exception):
    """NAME exists on the server with other content: never overwritten, the caller takes a new version."""

    def __init__(self, remote_path: str, sha256: str | None) -> None:
        super().__init__(remote_path)
        self.remote_path = remote_path
        self.sha256 = sha256


ProgressHook = Callable[[str, int, int], None]   # (file name, bytes done, total)


class Progress:
    """Counts bytes of one transfer; logs a line every `every_s` seconds and calls `hook` each step."""

    def __init__(self, *, node: str, name: str, direction: str, total: int, every_s: float,
                 hook: ProgressHook | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.node, self.name, self.direction, self.total = node, name, direction, total
        self.every_s, self.hook, self.clock = every_s, hook, clock
        self.done = 0
        self.started = self.last = clock()

    def start_at(self, offset: int) -> None:
        self.done = offset

    def add(self, n: int) -> None:
        self.done += n
        if self.hook is not None:
            self.hook(self.name, self.done, self.total)
        now = self.clock()
        if now - self.last >= self.every_s:
            self.last = now
            elapsed = max(now - self.started, 1e-9)
            log.info("sftp transfer progress", extra={
                "node": self.node, "file": self.name, "direction": self.direction, "bytes": self.done,
                "total": self.total, "percent": round(100 * self.done / self.total, 1) if self.total else 100.0,
                "mb_s": round(self.done / elapsed / 1e6, 1)})


@dataclass(frozen=True)
class Moved:
    """What one transfer did."""

    path: str              # remote path (upload) or local path (download) of the published file
    size: int
    sha256: str
    resumed_from: int      # 0 = from the start
    seconds: float
    already_there: bool = False


def sha256_file(path: Path, *, length: int | None = None) -> str:
    """Hex SHA-256 of a local file (its first `length` bytes when given)."""
    h = hashlib.sha256()
    left = length
    with open(path, "rb") as f:
        while left is None or left > 0:
            block = f.read(_LOCAL_BLOCK if left is None else min(_LOCAL_BLOCK, left))
            if not block:
                break
            h.update(block)
            if left is not None:
                left -= len(block)
    return h.hexdigest()


def _changed(path: Path, facts: FileFacts) -> HubError:
    return HubError(f"{path} changed after it was queued (it no longer has {facts.size} bytes and SHA-256 "
                    f"{facts.sha256}); the new content is sent as a new version at the next scan.",
                    reason=ReasonCode.SFTP_FILE_CHANGED, value=str(path))


# ----------------------------------------------------------------------------- upload


def upload(session: SftpSession, local: Path, remote_path: str, facts: FileFacts, mark: Mark, *,
           progress: Progress, on_start: Callable[[int], None] | None = None) -> Moved:
    """Publish `local` as `remote_path` with its sent mark; see the module docstring for the steps.

    Raises VersionTaken when `remote_path` holds other content, HubError(SFTP_FILE_CHANGED)
    when the local file is not the one described by `facts`, TransientFailure for a broken
    link or a read-back that differs (the part is removed then: the retry starts cleanly).
    """
    t0 = time.perf_counter()
    folder, name = posixpath.split(remote_path)
    part = posixpath.join(folder, marker.part_name(name))
    mark_path = posixpath.join(folder, marker.sent_mark_name(name))
    session.makedirs(folder)

    existing = session.stat(remote_path)
    if existing is not None:
        if existing.st_size == facts.size and _remote_sha(session, remote_path) == facts.sha256:
            session.write_small(mark_path, marker.render(mark))
            return Moved(remote_path, facts.size, facts.sha256, 0, time.perf_counter() - t0, already_there=True)
        raise VersionTaken(remote_path, None)

    try:
        local_size = local.stat().st_size
    except FileNotFoundError:
        raise _changed(local, facts) from None
    if local_size != facts.size:
        raise _changed(local, facts)

    # Resume: continue after a partial file whose bytes are the file's first bytes.
    offset, remote_hash = 0, None
    partial = session.stat(part)
    if partial is not None and 0 < partial.st_size <= facts.size:
        remote_hash = session.hash_remote(part, length=partial.st_size)
        local_prefix = sha256_file(local, length=partial.st_size)
        offset = resume_offset(partial.st_size, facts.size, remote_hash.hexdigest() == local_prefix)
        if offset == 0:
            remote_hash = None
            log.info("sftp partial file differs; restarting", extra={"node": session.node, "file": name,
                                                                      "partial_bytes": partial.st_size})
    if partial is not None and offset == 0:
        session.remove(part)   # a fresh file, whoever wrote the old one
    if on_start is not None:
        on_start(offset)
    progress.start_at(offset)
    if offset:
        log.info("sftp resuming upload", extra={"node": session.node, "file": name, "offset": offset,
                                                "total": facts.size})

    # Write and read back at once (session.write_verified): the server's copy is hashed while
    # the upload runs. A changed local file shows as a digest that differs from the facts.
    before = local.stat()
    with open(local, "rb") as src:
        src.seek(offset)
        remote_hash, complete = session.write_verified(
            part, src, offset=offset, size=facts.size, hasher=remote_hash or hashlib.sha256(),
            progress=progress.add, resume=offset > 0)
    if not complete:   # the server answered a read-back short: hash its copy again, in full
        remote_hash = session.hash_remote(part)
    st = session.stat(part)
    if st is None or st.st_size != facts.size or remote_hash.hexdigest() != facts.sha256:
        session.remove(part)
        after = local.stat()
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or \
                sha256_file(local) != facts.sha256:
            raise _changed(local, facts)
        got = f"{st.st_size} bytes" if st is not None else "no file"
        raise TransientFailure(f"{part} on {session.where} reads back as {got} with SHA-256 "
                               f"{remote_hash.hexdigest()}, not {facts.size} bytes with {facts.sha256}; it is "
                               f"uploaded again from the start.", reason=ReasonCode.SFTP_CHECKSUM_MISMATCH,
                               value=remote_hash.hexdigest())
    if not session.rename_no_replace(part, remote_path):
        raise VersionTaken(remote_path, None)
    session.write_small(mark_path, marker.render(mark))
    return Moved(remote_path, facts.size, facts.sha256, offset, time.perf_counter() - t0)


def _remote_sha(session: SftpSession, path: str) -> str:
    """SHA-256 of a remote file, read back through SFTP (a mark beside it is not proof of its bytes)."""
    return session.hash_remote(path).hexdigest()


# ----------------------------------------------------------------------------- download


def download(session: SftpSession, remote_path: str, local: Path, facts: FileFacts, *,
             progress: Progress, on_start: Callable[[int], None] | None = None) -> Moved:
    """Fetch `remote_path` into `local` and verify it against `facts` (the sender's mark).

    A verified copy already at `local` is kept (a repeat of the job); a different file there
    is never replaced: HubError(SFTP_FILE_CHANGED) asks the operator to move it away.
    """
    t0 = time.perf_counter()
    local.parent.mkdir(parents=True, exist_ok=True)
    if local.exists():
        if local.stat().st_size == facts.size and sha256_file(local) == facts.sha256:
            return Moved(str(local), facts.size, facts.sha256, 0, time.perf_counter() - t0, already_there=True)
        raise HubError(f"{local} already exists with other content; the received file is not written over it. "
                       f"Move the local file away and re-queue the transfer.",
                       reason=ReasonCode.SFTP_FILE_CHANGED, value=str(local))
    part = local.with_name(marker.part_name(local.name))
    have = part.stat().st_size if part.exists() else 0
    offset = resume_offset(have, facts.size, True)
    if have and not offset:
        part.unlink()
    if on_start is not None:
        on_start(offset)
    progress.start_at(offset)
    h = hashlib.sha256()
    if offset:
        with open(part, "rb") as f:
            while block := f.read(_LOCAL_BLOCK):
                h.update(block)
    st = session.stat(remote_path)
    if st is None or st.st_size != facts.size:
        raise HubError(f"{remote_path} on {session.where} has {st.st_size if st else 'no'} bytes but its sent mark "
                       f"says {facts.size}; the sender must send it again.",
                       reason=ReasonCode.SFTP_MARKER_INVALID, value=st.st_size if st else None)
    with open(part, "ab" if offset else "wb") as dst:
        def sink(block: memoryview) -> None:
            h.update(block)
            dst.write(block)
            progress.add(len(block))
        session.read_into(remote_path, sink, start=offset, length=facts.size - offset)
        dst.flush()
        os.fsync(dst.fileno())
    if h.hexdigest() != facts.sha256:
        part.unlink(missing_ok=True)
        raise TransientFailure(f"{remote_path} from {session.where} arrived with SHA-256 {h.hexdigest()}, not "
                               f"{facts.sha256} as its sent mark says; it is fetched again from the start.",
                               reason=ReasonCode.SFTP_CHECKSUM_MISMATCH, value=h.hexdigest())
    try:
        os.link(part, local)   # never replaces an existing file
    except FileExistsError:
        raise HubError(f"{local} appeared while the file was fetched; it is not written over.",
                       reason=ReasonCode.SFTP_FILE_CHANGED, value=str(local)) from None
    except OSError:            # a file system without hard links: check, then rename
        if local.exists():
            raise
        os.replace(part, local)
    else:
        part.unlink()
    return Moved(str(local), facts.size, facts.sha256, offset, time.perf_counter() - t0)
