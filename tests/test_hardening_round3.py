"""Hardening, third round: what a misconfiguration, a retry storm or a forged click could do, refused
or bounded (settings and policy refused at start, backoff with jitter)."""

from __future__ import annotations

from bot.core.errors import Backoff


def test_replicas_failing_together_do_not_retry_in_lockstep():
    backoff = Backoff(first=1.0, cap=30.0)
    waits = [backoff.delay(3) for _ in range(200)]
    assert all(0.0 <= wait <= 8.0 for wait in waits), "never longer than the exponential step"
    assert len({round(wait, 3) for wait in waits}) > 150, "each replica draws its own wait"
    assert min(waits) < 2.0 and max(waits) > 6.0, "spread over the whole step (full jitter)"
    assert all(backoff.delay(40) <= 30.0 for _ in range(50)), "the cap holds"
