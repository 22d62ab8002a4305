"""Writing a query's result: a table for people, CSV, JSON lines or Parquet for programs."""

from __future__ import annotations

import base64
import json
import sys
from enum import StrEnum
from typing import IO, Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from pyrostore.errors import InvalidSetting


class ResultFormat(StrEnum):
    """``pyrostore sql --format``."""

    TABLE = "table"
    CSV = "csv"
    JSONL = "jsonl"
    PARQUET = "parquet"


def check_output(fmt: ResultFormat, output: str | None) -> None:
    """Parquet is binary: it goes to a file. Raises InvalidSetting."""
    if fmt is ResultFormat.PARQUET and output is None:
        raise InvalidSetting("--format parquet needs --output FILE")


def json_value(value: Any) -> Any:
    """A result value as JSON: bytes as UTF-8 text when they are, else ``{"base64": ...}``; times as ISO 8601."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)  # decimals, UUIDs, intervals


def text_value(value: Any) -> str:
    """A result value in a table cell: NULL for null, bytes as text when UTF-8."""
    if value is None:
        return "NULL"
    shown = json_value(value)
    return shown if isinstance(shown, str) else json.dumps(shown)


def rich_table(result: pa.Table) -> Table:
    """The result as a rich table."""
    table = Table(*result.column_names)
    for row in result.to_pylist():
        table.add_row(*(text_value(value) for value in row.values()))
    return table


def write_jsonl(result: pa.Table, stream: IO[str]) -> None:
    """One JSON object per row."""
    for row in result.to_pylist():
        stream.write(json.dumps({name: json_value(value) for name, value in row.items()}) + "\n")


def write_csv(result: pa.Table, stream: IO[bytes]) -> None:
    """CSV with a header row; binary, list and struct columns as their JSON text (CSV has no such types)."""
    columns = []
    for column in result.columns:
        if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type) or pa.types.is_nested(column.type):
            column = pa.array([None if v is None else text_value(v) for v in column.to_pylist()], pa.string())
        columns.append(column)
    pacsv.write_csv(pa.table(columns, names=result.column_names), stream)


def write_parquet(result: pa.Table, path: str) -> None:
    """The result as a Parquet file."""
    pq.write_table(result, path)


def write_result(result: pa.Table, fmt: ResultFormat, output: str | None, console: Console) -> None:
    """Write ``result`` in ``fmt`` to the file ``output``, or to standard output (a table through ``console``)."""
    check_output(fmt, output)
    if fmt is ResultFormat.PARQUET:
        write_parquet(result, str(output))
    elif fmt is ResultFormat.CSV:
        if output is None:
            write_csv(result, sys.stdout.buffer)
        else:
            with open(output, "wb") as binary:
                write_csv(result, binary)
    elif output is None:
        if fmt is ResultFormat.TABLE:
            console.print(rich_table(result))
        else:
            write_jsonl(result, sys.stdout)
    else:
        with open(output, "w", encoding="utf-8") as text:
            if fmt is ResultFormat.TABLE:
                Console(file=text, width=160).print(rich_table(result))
            else:
                write_jsonl(result, text)
