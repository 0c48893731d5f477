"""Structured logs: one JSON object per line, with the component and the ids involved.

    log = logging.getLogger("shaftwatch.power")
    log.info("reading rejected", extra=ids(meter_id="M-0001", reason="negative"))

gives ``{"ts": "...", "level": "info", "component": "shaftwatch.power",
"event": "reading rejected", "meter_id": "M-0001", "reason": "negative"}``.
"""

from __future__ import annotations

import json
import logging
import logging.config
import time
from typing import Any

_IDS = "shaftwatch_ids"


def ids(**fields: Any) -> dict[str, Any]:
    """The ``extra=`` argument that attaches ids and figures to one log line."""
    return {_IDS: fields}


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "component": record.name,
            "event": record.getMessage(),
        }
        line.update(getattr(record, _IDS, {}))
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def logging_config(level: str = "info") -> dict[str, Any]:
    """A dictConfig for every ShaftWatch process (Faust's worker takes it as is)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonLineFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            # Library chatter that is not an event for an operator.
            "aiokafka": {"level": "WARNING"},
            "faust": {"level": "WARNING" if level != "debug" else "DEBUG"},
            "mode": {"level": "WARNING" if level != "debug" else "DEBUG"},
            "ultralytics": {"level": "WARNING"},
        },
    }


def setup_logging(level: str = "info") -> None:
    logging.config.dictConfig(logging_config(level))
