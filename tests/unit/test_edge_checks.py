"""The edge's pure checks: channel base URLs, key scrubbing, CSV cells, body limits by route."""

from __future__ import annotations

import pytest

from unigate.urls import base_url_problem
from unigate_billing.logexport import _csv_value
from unigate_billing.usage_stats import split_range
from unigate_gateway.edge import BodyLimits
from unigate_relay.providers.base import scrub


@pytest.mark.parametrize(
    "url",
    ["", "http://127.0.0.1:8900", "https://api.openai.com/v1", "HTTPS://Example.com:443/x?y=1"],
)
def test_http_base_urls_are_accepted(url: str) -> None:
    assert base_url_problem(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://h/",
        "ftp://h/",
        "javascript:alert(1)",
        "http://",
        "https:///path",
        "http://h:99999/",
        "http://h/ x",
        "http://h/\x00",
        "//h/path",
    ],
)
def test_other_base_urls_are_refused(url: str) -> None:
    assert base_url_problem(url)


KEY = "sk-proj-Q1w2E3r4T5y6U7i8O9p0AaSsDdFfGgHh"


@pytest.mark.parametrize(
    "echo",
    [KEY, KEY.upper(), KEY.lower(), KEY.swapcase(), KEY[3:20], KEY[-12:].upper()],
)
def test_scrub_masks_any_case_and_long_fragments(echo: str) -> None:
    text = scrub(f"Incorrect API key provided: {echo}. Check it.", [KEY, ""])
    assert echo not in text
    assert text == "Incorrect API key provided: ***. Check it."


def test_scrub_leaves_short_runs_and_other_text_alone() -> None:
    assert scrub("sk-proj-Q1w (too short to be a fragment)", [KEY]) == (
        "sk-proj-Q1w (too short to be a fragment)"
    )
    assert scrub("nothing to see", [KEY]) == "nothing to see"
    # A short secret is masked whole only.
    assert scrub("pass=abcdef, ABCDEF", ["abcdef"]) == "pass=***, ***"


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+2", "'=1+2"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        (-5, -5),
        (True, 1),
    ],
)
def test_csv_cells_that_would_be_formulas_are_quoted(value: object, cell: object) -> None:
    assert _csv_value(value) == cell


def test_body_limits_by_route() -> None:
    limits = BodyLimits(api=1, upload=3, relay=2)
    assert limits.for_path("/api") == limits.for_path("/api/user/login") == 1
    assert limits.for_path("/apix") == 2
    assert limits.for_path("/v1/audio/transcriptions") == 3
    assert limits.for_path("/v1/audio/translations") == 3
    assert limits.for_path("/v1/chat/completions") == limits.for_path("/v1/messages") == 2


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 2**63 - 1), (440311300511, 2**63 - 2), (2**63 - 1, 0), (-(2**63), -(2**63)), (0, -5)],
)
def test_usage_ranges_beyond_any_date_split_without_overflow(start: int, end: int) -> None:
    split = split_range(start, end)
    for day in (split.first_day, split.last_day):
        assert day is None or day.year <= 9999


def test_an_end_beyond_any_date_is_unbounded() -> None:
    assert split_range(86400, 2**63 - 1) == split_range(86400, 0)
