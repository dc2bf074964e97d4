"""JSON logs, one object per line, each carrying ``request_id`` and ``trace_id``.

Every line has both keys (empty strings outside a request or a trace), so a log pipeline can
index them without guessing the shape of a line. Lines go to stderr, and with ``--log-dir``
(One API's flag of that name) also to ``<dir>/<service>.log``, rotated by size with
``logging.handlers.RotatingFileHandler``: at ``LOG_MAX_BYTES`` the file becomes
``<service>.log.1`` (older ones shift up) and at most ``LOG_BACKUP_COUNT`` old files are kept.
Processes of the same service need directories of their own (two writers rotating one file
would lose lines).
"""

from __future__ import annotations

import argparse
import contextvars
import logging
import logging.handlers
import os
import sys
import time
from pathlib import Path

import orjson
from opentelemetry import trace

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_BACKUP_COUNT = 10


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        ctx = trace.get_current_span().get_span_context()
        entry: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": request_id_var.get(),
            "trace_id": format(ctx.trace_id, "032x") if ctx.is_valid else "",
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def add_log_dir_argument(parser: argparse.ArgumentParser) -> None:
    """``--log-dir DIR`` on a service's command line (default: ``LOG_DIR``, else none)."""
    parser.add_argument(
        "--log-dir",
        default=os.environ.get("LOG_DIR") or None,
        help="also write the JSON log lines to DIR/<service>.log, rotated by size"
        " (LOG_MAX_BYTES, LOG_BACKUP_COUNT); default from LOG_DIR",
    )


def rotating_file_handler(
    service: str, log_dir: str | Path, *, max_bytes: int, backup_count: int
) -> logging.Handler:
    directory = Path(log_dir)
    directory.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        directory / f"{service}.log",
        maxBytes=max_bytes,
        backupCount=backup_count,
        encoding="utf-8",
    )
    handler.setFormatter(JsonFormatter(service))
    return handler


def configure_logging(
    service: str,
    level: str = "INFO",
    log_dir: str | Path | None = None,
    *,
    max_bytes: int | None = None,
    backup_count: int | None = None,
) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    handlers: list[logging.Handler] = [handler]
    if log_dir:
        handlers.append(
            rotating_file_handler(
                service,
                log_dir,
                max_bytes=max_bytes
                if max_bytes is not None
                else int(os.environ.get("LOG_MAX_BYTES", DEFAULT_MAX_BYTES)),
                backup_count=backup_count
                if backup_count is not None
                else int(os.environ.get("LOG_BACKUP_COUNT", DEFAULT_BACKUP_COUNT)),
            )
        )
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(level.upper())
    logging.Formatter.converter = time.gmtime
    # httpx logs every request at INFO: far too costly (and noisy) on the hot path.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(root.level, logging.WARNING))
