"""The one way a database outage leaves the state store: TransientFailure(STORE_UNAVAILABLE)."""

from __future__ import annotations

from protocols.errors import ReasonCode, TransientFailure


def store_unavailable(exc: BaseException) -> TransientFailure:
    """The failure to raise for a driver or pool error (the hop holds its batch and retries)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    cause = text.splitlines()[0] if text else type(exc).__name__
    return TransientFailure(
        f"The state store is unavailable ({cause}); the batch will be retried, check the database.",
        reason=ReasonCode.STORE_UNAVAILABLE,
    )
