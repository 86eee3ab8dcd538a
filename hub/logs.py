"""Structured logs: one JSON object per line on stderr, with message ids as fields.

Call setup() once in a process entry point (the CLI); libraries only get loggers.
"""

from __future__ import annotations

import logging
import os
import sys

from pythonjsonlogger.json import JsonFormatter


def setup(level: str | None = None, *, json_format: bool | None = None) -> None:
    level = (level or os.environ.get("HUB_LOG_LEVEL", "INFO")).upper()
    if json_format is None:
        json_format = os.environ.get("HUB_LOG_FORMAT", "json") == "json"
    handler = logging.StreamHandler(sys.stderr)
    if json_format:
        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                                           rename_fields={"levelname": "level", "asctime": "time"}))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("pika").setLevel(logging.WARNING)
