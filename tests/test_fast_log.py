"""logs.FastInfo, the access log's writer: the very line logging would write, or logging itself
whenever anything besides bootserver's own handler would see the record."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import time

import pytest

from bootserver import logs

STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


@pytest.fixture
def stream():
    """Where setup()'s handler writes (see `setup`); the root logger's handlers and level put back afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield io.StringIO()
    root.handlers[:], root.level = saved[0], saved[1]


def setup(out: io.StringIO, fmt: str = "human", level: str = "info") -> logging.Handler:
    logs.setup(fmt, level)
    handler = logging.getLogger().handlers[0]
    handler.setStream(out)
    return handler


def logged(handler: logging.Handler, name: str, msg: str, *args) -> str:
    return handler.format(logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, None))


@pytest.mark.parametrize("path", ["/ipxe", "/x\n2026-01-01 00:00:00 INFO bootserver: forged", "/a\x1b[2Jb\u2028"])
def test_the_direct_line_is_the_line_logging_writes(stream, path):
    setup(stream)
    line = logs.FastInfo(logging.getLogger("bootserver.access"))
    before = time.time()
    line.info("%s %s GET %s %d %.1fms", "10.0.0.5", "node1", path, 200, 0.25)
    written = stream.getvalue()
    assert written.endswith("\n") and written.count("\n") == 1 and "\x1b" not in written
    expected = logged(logging.getLogger().handlers[0], "bootserver.access", "%s %s GET %s %d %.1fms",
                      "10.0.0.5", "node1", path, 200, 0.25)
    assert STAMP.match(written) and STAMP.match(expected)
    assert written[24:] == expected[24:] + "\n"  # past the time stamp: byte for byte
    stamp = time.mktime(time.strptime(written[:19], "%Y-%m-%d %H:%M:%S")) + int(written[20:23]) / 1000
    assert before - 0.002 <= stamp <= time.time() + 0.002


def test_another_handler_or_a_filter_gets_the_record(stream, caplog):
    setup(stream)
    access = logging.getLogger("bootserver.access")
    line = logs.FastInfo(access)
    caplog.set_level(logging.INFO, logger="bootserver.access")
    logging.getLogger().addHandler(caplog.handler)  # pytest's handler beside ours (setup replaced them)
    line.info("GET %s %d", "/ipxe", 200)
    assert [r.getMessage() for r in caplog.records] == ["GET /ipxe 200"]
    assert caplog.records[0].funcName == "test_another_handler_or_a_filter_gets_the_record"
    assert stream.getvalue().count("GET /ipxe 200") == 1  # and ours wrote it once
    logging.getLogger().removeHandler(caplog.handler)
    seen = []
    access.addFilter(lambda record: seen.append(record.getMessage()) or True)
    try:
        line.info("GET %s %d", "/ignition", 304)
    finally:
        access.filters.clear()
    assert seen == ["GET /ignition 304"] and stream.getvalue().count("GET /ignition 304") == 1


def test_json_lines_and_extra_fields_go_through_logging(stream):
    setup(stream, "json")
    logs.FastInfo(logging.getLogger("bootserver.access")).info("GET %s", "/ipxe", extra={"fields": {"status": 200}})
    out = json.loads(stream.getvalue())
    assert out["message"] == "GET /ipxe" and out["status"] == 200 and out["logger"] == "bootserver.access"


def test_below_info_nothing_is_written(stream):
    setup(stream, level="warning")
    logs.FastInfo(logging.getLogger("bootserver.access")).info("GET %s", "/ipxe")
    assert stream.getvalue() == ""


def test_a_broken_stream_is_said_not_raised(stream, monkeypatch, capsys):
    handler = setup(stream)

    class Broken(io.StringIO):
        def write(self, text):
            raise OSError("disk full")

    handler.stream = Broken()
    monkeypatch.setattr(logging, "raiseExceptions", True)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # where logging reports its own trouble
    logs.FastInfo(logging.getLogger("bootserver.access")).info("GET %s", "/ipxe")
    assert "disk full" in sys.stderr.getvalue()
