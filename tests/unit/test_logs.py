"""JSON log lines (``unigate.logs``): their shape, the ids they carry, ``--log-dir`` and its
size-based rotation; plus the small observability helpers (label children, relay lists)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, Counter

from unigate.logs import (
    JsonFormatter,
    add_log_dir_argument,
    configure_logging,
    request_id_var,
    rotating_file_handler,
)
from unigate.metrics import Children
from unigate.settings import parse_relay_addrs


def record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError as e:
            exc_info = (type(e), e, e.__traceback__)
    return logging.LogRecord("unigate.test", logging.WARNING, __file__, 1, msg, args, exc_info)


def test_a_line_outside_any_request_still_has_both_ids() -> None:
    line = orjson.loads(JsonFormatter("billing").format(record("applied %d events", 3)))
    assert line["msg"] == "applied 3 events"
    assert line["service"] == "billing"
    assert line["level"] == "warning"
    assert line["logger"] == "unigate.test"
    assert line["request_id"] == "" and line["trace_id"] == ""
    assert isinstance(line["ts"], float)
    assert "exc" not in line


def test_a_line_carries_the_request_id_and_the_trace_id() -> None:
    tracer = TracerProvider().get_tracer("test")
    token = request_id_var.set("abc123")
    try:
        with tracer.start_as_current_span("request") as span:
            line = orjson.loads(JsonFormatter("gateway").format(record("hello", exc=True)))
            trace_id = format(span.get_span_context().trace_id, "032x")
    finally:
        request_id_var.reset(token)
    assert line["request_id"] == "abc123"
    assert line["trace_id"] == trace_id and len(trace_id) == 32 and int(trace_id, 16)
    assert "ValueError: boom" in line["exc"]
    # A line is one line, whatever the message holds.
    text = JsonFormatter("gateway").format(record("two\nlines"))
    assert "\n" not in text and orjson.loads(text)["msg"] == "two\nlines"


def test_rotation_keeps_the_configured_number_of_files(tmp_path: Path) -> None:
    handler = rotating_file_handler("relay", tmp_path / "logs", max_bytes=2000, backup_count=2)
    logger = logging.getLogger("unigate.test.rotation")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for i in range(200):
            logger.info("line %04d %s", i, "x" * 40)
    finally:
        logger.removeHandler(handler)
        handler.close()
    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert files == ["relay.log", "relay.log.1", "relay.log.2"]
    lines: list[dict[str, object]] = []
    for name in ("relay.log.2", "relay.log.1", "relay.log"):
        text = (tmp_path / "logs" / name).read_text()
        assert len(text) <= 2000
        if name != "relay.log":
            # A file is rotated when the next line would not fit.
            assert len(text) > 2000 - max(len(x) + 1 for x in text.splitlines())
        lines += [orjson.loads(x) for x in text.splitlines()]
    numbers = [int(str(x["msg"]).split()[1]) for x in lines]
    # The newest lines survive, in order and without gaps; the oldest were rotated away.
    assert numbers == list(range(numbers[0], 200))
    assert numbers[0] > 0


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for h in root.handlers:
        if h not in handlers:
            h.close()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("root_logging")
def test_log_dir_flag_writes_json_lines_to_the_service_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOG_DIR", raising=False)
    parser = argparse.ArgumentParser()
    add_log_dir_argument(parser)
    assert parser.parse_args([]).log_dir is None
    args = parser.parse_args(["--log-dir", str(tmp_path)])
    configure_logging("auth", "debug", args.log_dir, max_bytes=10_000, backup_count=1)
    logging.getLogger("unigate_auth").info("ready on %s", "127.0.0.1:1")
    for h in logging.getLogger().handlers:
        h.flush()
    (line,) = (tmp_path / "auth.log").read_text().splitlines()
    assert orjson.loads(line)["msg"] == "ready on 127.0.0.1:1"
    monkeypatch.setenv("LOG_DIR", str(tmp_path / "env"))
    parser = argparse.ArgumentParser()
    add_log_dir_argument(parser)
    assert parser.parse_args([]).log_dir == str(tmp_path / "env")


def test_children_are_bound_once_per_label_combination() -> None:
    counter = Counter("c", "test", ["a", "b"], registry=CollectorRegistry())
    children = Children(counter)
    assert children("x", "y") is children("x", "y")
    assert children("x", "y") is not children("x", "z")
    children("x", "y").inc(2)
    assert counter.labels("x", "y")._value.get() == 2


def test_a_family_may_name_several_relays() -> None:
    assert parse_relay_addrs("openai=ipv4:10.0.0.5:1,10.0.0.6:1, *=all:2") == {
        "openai": "ipv4:10.0.0.5:1,10.0.0.6:1",
        "*": "all:2",
    }
    # A stray address before any family has nowhere to go.
    assert parse_relay_addrs("10.0.0.7:1,openai=a:1") == {"openai": "a:1"}
