"""Where files go on the SFTP server: one folder per sending node, and below it one per period or day.

    <remote outbox of the sender>/<period>/NAME      reports: 44_stats_202611.csv -> up/44/202611/
    <remote outbox of the sender>/<yyyy-mm-dd>/NAME  documents and other files, by the day sent

With config/sftp.yaml's defaults, province 44 sends into `up/44` and HQ mirrors `up/*`;
HQ sends into `down` and every province mirrors `down`. Receivers keep the same relative
path in their local inbox, so a report lands in `inbox/44/202611/44_stats_202611.csv` at HQ.

Owns: the pure path arithmetic (POSIX paths on the server, always '/'), the day folder of
a time in a zone, and which node owns a path below a mirrored folder.
Must not: list or create folders.
"""

from __future__ import annotations

import posixpath
import re
from datetime import datetime
from zoneinfo import ZoneInfo

from protocols.files.marker import FileKind

_CODE = re.compile(r"^[0-9A-Za-z]{2,8}$")
#: How deep below a mirrored folder data files may lie: [node/]period-or-day/NAME.
MAX_DEPTH = 3


def join(*parts: str) -> str:
    """A normalised POSIX path from parts; refuses '..' so a name can never climb out of its folder."""
    path = posixpath.join(*[p for p in parts if p])
    if ".." in path.split("/"):
        raise ValueError(f"path {path!r} climbs out of its folder ('..' is not allowed)")
    norm = posixpath.normpath(path) if path else ""
    return "" if norm == "." else norm


def day_folder(at: datetime, zone: ZoneInfo) -> str:
    if at.utcoffset() is None:
        raise ValueError("time must be time-zone aware")
    return at.astimezone(zone).strftime("%Y-%m-%d")


def remote_folder(outbox: str, kind: FileKind, *, period: str | None, at: datetime, zone: ZoneInfo) -> str:
    """The folder a file of `kind` is uploaded into below the sender's remote outbox."""
    if kind is FileKind.report:
        if not period:
            raise ValueError("a report is filed under its period")
        return join(outbox, period)
    return join(outbox, day_folder(at, zone))


def owner_of(relative: str, mirror_from: str) -> str | None:
    """The sending node of a file at `relative` (below a mirrored folder).

    `mirror_from` is a company code when one node sends into the folder (HQ's `down`), or
    "*" when the folder holds one sub-folder per sending node (`up/44/...`): then the first
    path component is the owner, and a name that is not a company code owns nothing.
    """
    if mirror_from != "*":
        return mirror_from
    first = relative.split("/", 1)[0]
    return first if _CODE.match(first) and "/" in relative else None
