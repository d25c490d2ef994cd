"""Definition cases that mutation testing (mutation/run, issue 15) found unpinned: the edges of
what a retry policy accepts."""

from __future__ import annotations

from sagafsm import RetryPolicy


def test_a_policy_that_never_grows_its_backoff_is_allowed() -> None:
    """multiplier 1 keeps the backoff constant; a cap equal to the first backoff caps nothing."""
    policy = RetryPolicy(max_attempts=4, initial_backoff=0.5, multiplier=1, max_backoff=0.5)
    assert [policy.backoff(n) for n in (1, 2, 3)] == [0.5, 0.5, 0.5]
    growing = RetryPolicy(max_attempts=4, initial_backoff=0.5, multiplier=1.5, max_backoff=0.5)
    assert growing.backoff(3) == 0.5
