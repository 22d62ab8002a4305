"""The child process of :func:`e2e.stack.spark.run_sql`, run as a script: one Spark session with the settings
of a request file runs its queries; each query's rows go to a result file as JSON, with bytes and times tagged so
that :func:`decode_rows` restores them. It imports nothing of the project (only pyspark, from PYTHONPATH)."""

from __future__ import annotations

import base64
import json
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any


def encode_rows(rows: list[dict[str, Any]]) -> str:
    """Rows as JSON, bytes and times tagged so that :func:`decode_rows` restores them (naive datetimes, as PySpark
    gives them, are taken as UTC: the child runs with TZ=UTC)."""
    return json.dumps([_encode(row) for row in rows])


def decode_rows(text: str) -> list[dict[str, Any]]:
    """Rows from :func:`encode_rows`: bytes as bytes, times as datetimes in UTC."""
    return json.loads(text, object_hook=_decode)


def _encode(value: Any) -> Any:
    """A row value as JSON, with bytes and times tagged so that :func:`_decode` restores them."""
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, datetime):
        return {"$time": value.replace(tzinfo=UTC).isoformat()}  # naive, in the child's time zone: UTC
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _encode(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(item) for item in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)  # decimals, intervals


def _decode(found: dict[str, Any]) -> Any:
    if set(found) == {"$bytes"}:
        return base64.b64decode(found["$bytes"])
    if set(found) == {"$time"}:
        return datetime.fromisoformat(found["$time"])
    return found


def main(request: Path, result: Path) -> None:
    """In the child: one session with the request's settings; each query's rows, encoded, to ``result``."""
    from pyspark.sql import SparkSession

    asked = json.loads(request.read_text())
    builder = SparkSession.builder.appName("pyrostore-tests")
    for key, value in asked["conf"].items():
        builder = builder.config(key, value)
    began = time.monotonic()
    session = builder.getOrCreate()
    print(f"session started in {time.monotonic() - began:.1f}s", flush=True)
    answers: dict[str, str] = {}  # each query's rows as encode_rows gives them
    try:
        for name, query in asked["queries"].items():
            began = time.monotonic()
            rows = [row.asDict(recursive=True) for row in session.sql(query).collect()]
            answers[name] = encode_rows(rows)
            print(f"{name}: {len(rows)} row(s) in {time.monotonic() - began:.1f}s", flush=True)
    finally:
        session.stop()
    result.write_text(json.dumps(answers))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
