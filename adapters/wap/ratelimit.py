"""Per-client token buckets for the WAP endpoint.

Owns: the bucket arithmetic (refill at `rate` per second up to `burst`, one token per request)
with the time passed in, so the tests need no clock; `take` answers whether the request may
go and, when not, how many seconds until a token is there (the Retry-After header).
Must not: read the clock itself or know HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TokenBucket:
    rate: float
    burst: int
    tokens: float = -1.0
    at: float = 0.0

    def take(self, now: float) -> tuple[bool, float]:
        if self.tokens < 0:          # first use: a full bucket
            self.tokens, self.at = float(self.burst), now
        self.tokens = min(float(self.burst), self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True, 0.0
        return False, (1.0 - self.tokens) / self.rate
