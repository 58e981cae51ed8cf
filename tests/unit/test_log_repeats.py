"""A library line repeated with every message under load is logged once a minute, counted."""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Iterator

import pytest

from acct2crm.log_format import RepeatedLines, logging_config

PRODUCER = "faust.transport.producer"


def line(name: str, msg: str) -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, None, None)


def test_a_repeated_line_passes_once_a_window_with_the_count_of_the_rest() -> None:
    now = [0.0]
    repeats = RepeatedLines(window_s=60, clock=lambda: now[0])
    assert repeats.filter(line(PRODUCER, "producer buffer full size 127"))
    for step in range(1, 4):
        now[0] = step * 10.0
        assert not repeats.filter(line(PRODUCER, "producer buffer full size 126"))
    # another repeated line is counted on its own
    assert repeats.filter(line(PRODUCER, "producer flush took 0.01"))
    # other lines, and the same words from another logger, are never held
    assert repeats.filter(line("acct2crm.sink.engine", "producer buffer full size 1"))
    assert repeats.filter(line(PRODUCER, "Starting..."))
    now[0] = 61.0
    shown = line(PRODUCER, "producer buffer full size 125")
    assert repeats.filter(shown)
    assert shown.getMessage() == (
        "producer buffer full size 125 (and 3 more like it in the last 61s, not logged)")
    now[0] = 62.0
    assert not repeats.filter(line(PRODUCER, "producer buffer full size 124"))
    now[0] = 200.0
    quiet = line(PRODUCER, "producer buffer full size 130")
    assert repeats.filter(quiet)
    assert quiet.getMessage() == (
        "producer buffer full size 130 (and 1 more like it in the last 139s, not logged)")


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_worker_logging_holds_back_faust_s_buffer_warnings(
    log_format: str, capfd: pytest.CaptureFixture[str], restored_logging: None,
) -> None:
    logging.config.dictConfig(logging_config(log_format, "info"))
    producer = logging.getLogger(PRODUCER)
    for size in range(100, 150):
        producer.warning(f"producer buffer full size {size}")
    logging.getLogger("acct2crm.sink.engine").warning("a line of our own")
    err = capfd.readouterr().err
    assert err.count("producer buffer full") == 1
    assert "producer buffer full size 100" in err
    assert "a line of our own" in err
