"""The shared retry schedule and the bounded retry the services start with."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable

import pytest

from unigate.retrying import backoff, retry_within

log = logging.getLogger("test_retrying")


class Attempts:
    """An attempt that raises ``error`` on its first ``failing`` tries, then answers "up"."""

    def __init__(self, error: Exception, failing: int = 1_000) -> None:
        self.error = error
        self.failing = failing
        self.tries = 0

    async def __call__(self) -> str:
        self.tries += 1
        if self.tries <= self.failing:
            raise self.error
        return "up"


def retried(attempt: Callable[[], Awaitable[str]], within: float) -> Awaitable[str]:
    return retry_within(
        attempt,
        transient=lambda e: isinstance(e, ConnectionError),
        within=within,
        what="service not reachable",
        log=log,
    )


def test_the_backoff_doubles_from_its_first_pause_up_to_its_cap() -> None:
    assert list(itertools.islice(backoff(), 7)) == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert list(itertools.islice(backoff(first=0.1, cap=0.3), 4)) == [0.1, 0.2, 0.3, 0.3]


async def test_a_transient_error_is_tried_again_until_the_attempt_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempt = Attempts(ConnectionError("not up yet"), failing=2)
    with caplog.at_level(logging.WARNING, logger="test_retrying"):
        assert await retried(attempt, within=30) == "up"
    assert attempt.tries == 3
    assert caplog.text.count("service not reachable (ConnectionError('not up yet'))") == 2


async def test_past_its_bound_the_transient_error_is_raised() -> None:
    attempt = Attempts(ConnectionError("down for good"))
    with pytest.raises(ConnectionError, match="down for good"):
        await retried(attempt, within=0.5)
    # Pauses of 0.2 and 0.4 s fit in 0.5 s only as the first: two tries, then the error.
    assert attempt.tries == 2


async def test_any_other_error_is_raised_at_once() -> None:
    attempt = Attempts(ValueError("refused"))
    with pytest.raises(ValueError, match="refused"):
        await retried(attempt, within=30)
    assert attempt.tries == 1
