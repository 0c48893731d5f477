"""Request bodies as rows: JSON (a list, or an object holding the list) or CSV with a
header naming the row's fields; times as epoch seconds or ISO 8601 with a zone."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

from streams.contract.records import RecordError
from streams.edge.ingest.feeds import Feed

Rows = list[tuple[dict | None, bytes, str | None]]  # (fields, original bytes, parse problem) per row


class IngestError(Exception):
    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


def parse_time(value: Any) -> Any:
    """Epoch seconds stay as they are; an ISO 8601 string with a zone becomes epoch seconds."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise RecordError(f"ts {value!r} is neither epoch seconds nor an ISO 8601 time") from None
        if parsed.tzinfo is None:
            raise RecordError(f"ts {value!r} has no time zone (add Z or +08:00)")
        return parsed.timestamp()
    return value


def parse_rows(feed: Feed, body: bytes, content_type: str) -> Rows:
    """The body's rows as (fields, original bytes, parse problem)."""
    if content_type in ("application/json", ""):
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:
            # ValueError: not UTF-8, not JSON, or a number of more digits than Python converts;
            # RecursionError: nested deeper than the parser goes.
            raise IngestError(400, f"body is not JSON that can be read: {type(exc).__name__}: {exc}") from None
        rows = data.get(feed.rows_key) if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise IngestError(400, f'expected a JSON list of rows, or {{"{feed.rows_key}": [...]}}')
        out = []
        for row in rows:
            raw = json.dumps(row, ensure_ascii=False).encode()
            out.append((row, raw, None) if isinstance(row, dict) else (None, raw, "a row must be a JSON object"))
        return out
    if content_type == "text/csv":
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise IngestError(400, f"CSV is not UTF-8: {exc}") from None
        # Lines may end in \r\n (Excel), \n (Unix) or a bare \r (old Mac exports): all are
        # line ends here, outside quotes and (a bare \r) inside an unquoted cell alike.
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        try:
            return _csv_rows(feed, text)
        except csv.Error as exc:  # a cell longer than the csv module takes (128 kB), ...
            raise IngestError(400, f"CSV cannot be read: {exc}") from None
    raise IngestError(415, "send application/json or text/csv")


def _csv_rows(feed: Feed, text: str) -> Rows:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    shapes = feed.row_shapes()
    fields = set(shapes)
    unknown = [c for c in (reader.fieldnames or []) if c not in fields]
    if not reader.fieldnames or unknown:
        raise IngestError(400, f"CSV header must name columns among {sorted(fields)}; unknown: {unknown}")
    if len(set(reader.fieldnames)) != len(reader.fieldnames):
        raise IngestError(400, f"CSV header names a column twice: {reader.fieldnames}")
    out = []
    for line in reader:
        raw = ",".join(line.get(c) or "" for c in reader.fieldnames).encode()
        if None in line:
            out.append((None, raw, "more cells than columns"))
            continue
        # A cell typed as its field wants it; an empty cell is null.
        out.append(({k: shapes[k].from_text(v) if (v or "").strip() else None for k, v in line.items()}, raw, None))
    return out
