"""The one place where paramiko's and the socket layer's exceptions become the hub's errors.

    paramiko.BadHostKeyException          -> HubError(SFTP_HOST_KEY_CHANGED)   never retried, alarm
    unknown host key (RefuseUnknownHost)  -> HubError(SFTP_HOST_KEY_UNKNOWN)   never retried, alarm
    paramiko.AuthenticationException      -> HubError(SFTP_AUTH_FAILED)        never retried, alarm
    SFTP status "no such file" / "permission denied" (errno ENOENT, EACCES)
                                          -> HubError(SFTP_REMOTE_REFUSED)     never retried, alarm
    anything else from the link (refused, reset, dropped, timed out, SSH protocol errors,
    a generic SFTP failure such as a full disk)
                                          -> TransientFailure(SFTP_UNAVAILABLE) retried; resumes

Classification is by exception type and errno, never by message text. Messages name the
endpoint and say what to do; they never contain the key passphrase.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

import paramiko

from protocols.errors import HubError, ReasonCode, TransientFailure


class RefuseUnknownHost(paramiko.RejectPolicy):
    """paramiko's RejectPolicy, raising a typed error that carries the offered key's fingerprint.

    An unknown host key is never added: the operator checks the fingerprint out of band and
    writes the key into known_hosts (docs/sftp.md, "Security").
    """

    def missing_host_key(self, client, hostname, key) -> None:
        raise HubError(
            f"The SFTP server {hostname} offered the {key.get_name()} host key {key.fingerprint}, which is not in "
            f"known_hosts; the connection is refused. Check the fingerprint with the server's operator and add "
            f"the key to the endpoint's known_hosts file (for a port other than 22 the line starts "
            f"'[host]:port').", reason=ReasonCode.SFTP_HOST_KEY_UNKNOWN, field="known_hosts", value=key.fingerprint)


@contextmanager
def translate(endpoint: str, action: str) -> Iterator[None]:
    """Run an SFTP step; re-raise failures as HubError with a reason code naming `endpoint`."""
    try:
        yield
    except HubError:
        raise
    except paramiko.BadHostKeyException as exc:
        raise HubError(
            f"The SFTP server {endpoint} offered host key {exc.key.fingerprint} but known_hosts pins "
            f"{exc.expected_key.fingerprint}; the connection is refused (the server may be an impostor, or its key "
            f"was replaced). If the server's operator confirms the new key, replace the line in known_hosts.",
            reason=ReasonCode.SFTP_HOST_KEY_CHANGED, field="known_hosts", value=exc.key.fingerprint) from None
    except paramiko.PasswordRequiredException:  # before its base class below
        raise HubError(
            f"The key file of endpoint {endpoint} is encrypted; set key_passphrase in config/sftp.yaml.",
            reason=ReasonCode.SFTP_AUTH_FAILED, field="key_passphrase") from None
    except paramiko.AuthenticationException as exc:
        raise HubError(
            f"The SFTP server {endpoint} refused the key authentication while trying to {action} "
            f"({type(exc).__name__}); check the endpoint's user and key_file, and that the public key is in the "
            f"account's authorized_keys.", reason=ReasonCode.SFTP_AUTH_FAILED, field="key_file") from None
    except (TimeoutError, paramiko.SSHException, EOFError, ConnectionError) as exc:
        raise TransientFailure(
            f"The link to the SFTP server {endpoint} failed while trying to {action} ({type(exc).__name__}); "
            f"the transfer is retried and resumes where it stopped.",
            reason=ReasonCode.SFTP_UNAVAILABLE) from exc
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.EACCES, errno.EPERM, errno.EROFS):
            raise HubError(
                f"The SFTP server {endpoint} refused to {action}: {exc.strerror or exc} (errno {exc.errno}); check "
                f"the endpoint's remote folders and the account's permissions.",
                reason=ReasonCode.SFTP_REMOTE_REFUSED, value=getattr(exc, "filename", None)) from None
        # No errno: paramiko's "Socket is closed", a generic SFTP failure (a full disk), a refused
        # or unreachable TCP connection (NoValidConnectionsError is an OSError).
        raise TransientFailure(
            f"The SFTP server {endpoint} did not complete the request to {action} ({type(exc).__name__}); "
            f"the transfer is retried and resumes where it stopped.",
            reason=ReasonCode.SFTP_UNAVAILABLE) from exc
