"""The SFTP adapter: province reports up to HQ, HQ documents down to provinces, with success marks.

    config.py    config/sftp.yaml as pydantic models; `schema()` gives its JSON schema
    errors.py    paramiko and socket exceptions -> the hub's reason codes (one place)
    session.py   one SSH/SFTP connection: key auth, pinned host keys, remote helpers
    engine.py    one file moved: resumable upload with read-back verification and atomic
                 rename, verified download; progress lines
    records.py   transfer records and the alarm log in the hub's state store
    bus.py       the job queue adapter.sftp and publishing with confirms
    service.py   SftpAdapter: poll outboxes and mirrored folders, run jobs, marks, alarms, health()
    cli.py       `hub sftp run | send | status | lint | schema`

The protocol (states, marks, naming, events) is pure code in protocols/files; docs/sftp.md
describes the exchange for operators and node vendors.
"""

from adapters.sftp.config import SftpFile, load, schema
from adapters.sftp.service import SftpAdapter

__all__ = ["SftpAdapter", "SftpFile", "load", "schema"]
