"""The shared retry schedule and the bounded retry the services start with."""

from __future__ import annotations

import itertools
import logging

import pytest

from unigate.retrying import backoff, retry_within

log = logging.getLogger("test_retrying")


def test_the_backoff_doubles_from_its_first_pause_up_to_its_cap() -> None:
    assert list(itertools.islice(backoff(), 7)) == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert list(itertools.islice(backoff(first=0.1, cap=0.3), 4)) == [0.1, 0.2, 0.3, 0.3]


async def test_a_transient_error_is_tried_again_until_the_attempt_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tries = 0

    async def attempt() -> str:
        nonlocal tries
        tries += 1
        if tries < 3:
            raise ConnectionError("not up yet")
        return "up"

    with caplog.at_level(logging.WARNING, logger="test_retrying"):
        got = await retry_within(
            attempt,
            transient=lambda e: isinstance(e, ConnectionError),
            within=30,
            what="service not reachable",
            log=log,
        )
    assert (got, tries) == ("up", 3)
    assert caplog.text.count("service not reachable (ConnectionError('not up yet'))") == 2


async def test_past_its_bound_the_transient_error_is_raised() -> None:
    tries = 0

    async def attempt() -> None:
        nonlocal tries
        tries += 1
        raise ConnectionError("down for good")

    with pytest.raises(ConnectionError, match="down for good"):
        await retry_within(attempt, transient=lambda e: True, within=0.5, what="down", log=log)
    # Pauses of 0.2 and 0.4 s fit in 0.5 s only as the first: two tries, then the error.
    assert tries == 2


async def test_any_other_error_is_raised_at_once() -> None:
    tries = 0

    async def attempt() -> None:
        nonlocal tries
        tries += 1
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await retry_within(
            attempt,
            transient=lambda e: isinstance(e, ConnectionError),
            within=30,
            what="x",
            log=log,
        )
    assert tries == 1
