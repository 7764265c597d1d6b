"""``--log-format json``: one JSON object per line, access fields included."""

from __future__ import annotations

import json
import logging

import pytest
from semcache.adapters.proxy.logs import JsonFormatter, configure_logging

pytestmark = pytest.mark.unit


def test_json_lines_carry_the_access_fields() -> None:
    record = logging.LogRecord("semcache.access", logging.INFO, __file__, 1, "GET %s", ("/healthz",), None)
    record.request_id, record.status = "abc", 200
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "GET /healthz" and line["request_id"] == "abc" and line["status"] == 200
    assert line["level"] == "info" and line["logger"] == "semcache.access"


def test_configure_logging_json_sets_the_root_handler() -> None:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    try:
        config = configure_logging("json", "warning")
        assert isinstance(root.handlers[0].formatter, JsonFormatter) and root.level == logging.WARNING
        assert config["loggers"]["uvicorn"]["propagate"] is True
    finally:
        root.handlers[:], root.level = saved, level
