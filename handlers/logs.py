"""Logging of `otklik run`: to stdout (systemd's journal and container runtimes collect it),
one record per line, plain or JSON (config `log_format`)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal, TextIO

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message and, when the
    record carries one, exception (the traceback as text, newlines escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str] = {
            # The record's own timestamp: when it was logged, not when it was formatted.
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(
    level: str, log_format: Literal["plain", "json"], stream: TextIO | None = None
) -> logging.Handler:
    """Replace the root logger's handlers with one writing to `stream` (stdout)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # APScheduler logs every run of every job at INFO: twice a minute for the crisis watch.
    logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
    return handler
