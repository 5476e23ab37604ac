"""`otklik run` logs to stdout, one record per line: plain text or one JSON object a line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from handlers.logs import configure_logging


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, given back as it was (pytest's own capture handlers included)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_logs_are_one_object_per_line(root_logger: logging.Logger) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    log = logging.getLogger("otklik.api")
    log.debug("not at INFO")
    log.info("Кейс %d открыт\nвторая строка", 7)
    try:
        raise ValueError("broken")
    except ValueError:
        log.exception("delivery failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2  # newlines inside a record stay inside its line
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"time", "level", "logger", "message"}
    assert first["level"] == "INFO" and first["logger"] == "otklik.api"
    assert first["message"] == "Кейс 7 открыт\nвторая строка"
    assert first["time"].endswith("+00:00") and "T" in first["time"]
    assert second["level"] == "ERROR" and second["message"] == "delivery failed"
    assert "Traceback" in second["exception"] and "ValueError: broken" in second["exception"]


def test_plain_logs_and_the_level(root_logger: logging.Logger) -> None:
    stream = io.StringIO()
    configure_logging("WARNING", "plain", stream)
    logging.getLogger("otklik").info("quiet")
    logging.getLogger("otklik").warning("no transport configured")
    (line,) = stream.getvalue().splitlines()
    assert line.endswith(" WARNING otklik: no transport configured")
    assert logging.getLogger("apscheduler.executors").level == logging.WARNING
    assert len(root_logger.handlers) == 1  # pytest's capture replaced by the one handler
