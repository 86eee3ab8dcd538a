"""Bulk data over SFTP: pipelined WRITE and READ requests on paramiko's SFTP channel.

Why not SFTPFile alone: paramiko builds each request through several copying layers and,
for reads, a prefetch thread; on this machine that made the upload plus its read-back
(the server-side verification) about half as fast as OpenSSH's own `sftp` client. Here the
requests of one open file are written straight onto the channel paramiko opened, and the
responses parsed in order: the upload writes 255 KiB requests (OpenSSH refuses SFTP
packets of 256 KiB or more) and, a few requests behind, asks for the same bytes back, so
the read-back is hashed while the upload is still going (bench/sftp.py has the figures).

Protocol: SFTP version 3 (draft-ietf-secsh-filexfer-02, what OpenSSH speaks), section 3:
every packet is uint32 length, byte type, uint32 request id, then
  SSH_FXP_READ  (5):  string handle, uint64 offset, uint32 length   -> SSH_FXP_DATA (103): string data
  SSH_FXP_WRITE (6):  string handle, uint64 offset, string data     -> SSH_FXP_STATUS (101): uint32 code, ...
The server answers in request order (sftp-server.c handles one request at a time), which is
also why a READ sent after the WRITE of the same range reads the written bytes.

Owns: the request/response bookkeeping of one bulk operation on one open handle. It must
end with no response outstanding (`drain`), because paramiko's SFTPClient reads the same
channel for its own requests afterwards; on any exception the caller closes the session.
Must not: open or close files (SFTPClient does), or retry.
"""

from __future__ import annotations

import errno
import struct
from collections import deque
from collections.abc import Callable

import paramiko

FXP_READ, FXP_WRITE, FXP_STATUS, FXP_DATA = 5, 6, 101, 103
FX_OK, FX_EOF, FX_NO_SUCH_FILE, FX_PERMISSION_DENIED = 0, 1, 2, 3
#: Request ids of bulk operations; paramiko numbers its own from 1, so they never meet.
_FIRST_ID = 0x40000000
_RECV = 4 * 1024 * 1024


class BulkIO:
    """Pipelined reads and writes on one open file handle; data read back goes to `on_data`, in order."""

    def __init__(self, sftp: paramiko.SFTPClient, handle: bytes, *, on_data: Callable[[memoryview], None],
                 max_reads: int = 24) -> None:
        self.ch = sftp.get_channel()
        self.handle = struct.pack(">I", len(handle)) + handle
        self.on_data = on_data
        self.max_reads = max_reads
        self.pending: deque[tuple[int, int, int]] = deque()   # (request id, type, requested length)
        self.reads_out = 0
        self.short_read = False          # a READ answered with fewer bytes (or EOF): the hash is incomplete
        self.error: OSError | None = None
        self._id = _FIRST_ID
        self._buf = bytearray()
        self._pos = 0
        self._out = bytearray()

    def write(self, offset: int, data) -> None:
        """Send a WRITE, together with the READs queued since the last one: paramiko sends each
        `sendall` as SSH packets of its own, so one buffer per request saves a packet or two
        (each costs more in Python than copying the data once)."""
        rid = self._next()
        self._out += struct.pack(">IBI", 1 + 4 + len(self.handle) + 12 + len(data), FXP_WRITE, rid)
        self._out += self.handle
        self._out += struct.pack(">QI", offset, len(data))
        self._out += data
        self.pending.append((rid, FXP_WRITE, len(data)))
        self.flush()

    def read(self, offset: int, length: int) -> None:
        """Queue a READ; it goes out with the next write (or `flush`)."""
        if self.reads_out >= self.max_reads:
            self.flush()
            while self.reads_out >= self.max_reads:
                self.pump(block=True)
        rid = self._next()
        self._out += struct.pack(">IBI", 1 + 4 + len(self.handle) + 12, FXP_READ, rid)
        self._out += self.handle
        self._out += struct.pack(">QI", offset, length)
        self.pending.append((rid, FXP_READ, length))
        self.reads_out += 1

    def flush(self) -> None:
        if self._out:
            self.ch.sendall(self._out)
            self._out = bytearray()

    def drain(self) -> None:
        """Send what is queued, wait for every response; then raise the first error status, if any."""
        self.flush()
        while self.pending:
            self.pump(block=True)
        if self.error is not None:
            raise self.error

    def pump(self, *, block: bool) -> None:
        """Handle the responses that have arrived (waiting for some when `block`)."""
        if not self.pending or (not block and not self.ch.recv_ready()):
            return
        data = self.ch.recv(_RECV)
        if not data:
            raise EOFError("the SFTP channel closed during a transfer")
        if self._pos:
            del self._buf[:self._pos]
            self._pos = 0
        self._buf += data
        buf, pos = self._buf, 0
        view = memoryview(buf)
        try:
            while len(buf) - pos >= 9:
                length = int.from_bytes(buf[pos:pos + 4], "big")
                if len(buf) - pos < 4 + length:
                    break
                kind = buf[pos + 4]
                rid = int.from_bytes(buf[pos + 5:pos + 9], "big")
                want_id, want_kind, asked = self.pending.popleft()
                if rid != want_id:
                    raise paramiko.SFTPError(f"SFTP response {rid} arrived where {want_id} was due")
                body = view[pos + 9:pos + 4 + length]
                if want_kind == FXP_READ:
                    self.reads_out -= 1
                    if kind == FXP_DATA:
                        n = int.from_bytes(body[:4], "big")
                        if not self.short_read:
                            self.on_data(body[4:4 + n])
                        self.short_read = self.short_read or n < asked
                    elif kind == FXP_STATUS and int.from_bytes(body[:4], "big") == FX_EOF:
                        self.short_read = True
                    else:
                        self._status(kind, body)
                else:
                    self._status(kind, body)
                pos += 4 + length
        finally:
            view.release()
        self._pos = pos

    def _status(self, kind: int, body: memoryview) -> None:
        if kind != FXP_STATUS:
            raise paramiko.SFTPError(f"SFTP response type {kind} where a status was due")
        code = int.from_bytes(body[:4], "big")
        if code == FX_OK or self.error is not None:
            return
        mlen = int.from_bytes(body[4:8], "big")
        text = bytes(body[8:8 + mlen]).decode("utf-8", "replace")
        # The same errno mapping as paramiko's SFTPClient._convert_status.
        if code == FX_NO_SUCH_FILE:
            self.error = FileNotFoundError(errno.ENOENT, text)
        elif code == FX_PERMISSION_DENIED:
            self.error = PermissionError(errno.EACCES, text)
        else:
            self.error = OSError(text)

    def _next(self) -> int:
        self._id += 1
        return self._id
