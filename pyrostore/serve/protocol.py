"""The Kafka wire format around kio's types: length-prefixed frames, request headers, response frames.

Every request is a 4-byte big-endian length followed by that many bytes: a header (API key, API version,
correlation id, client id, and tagged fields in flexible versions) and the body. kio knows each version's
header and body; this module only picks the right types, and turns anything kio cannot decode into one
:class:`~pyrostore.errors.ProtocolError`.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kio.index import load_request_schema
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i32
from kio.static.protocol import RequestPayload, ResponsePayload

from pyrostore.errors import ProtocolError

LENGTH = struct.Struct(">i")
_PREFIX = struct.Struct(">hhi")  # API key, API version, correlation id: the same in every header version
API_VERSIONS_KEY = 18


@dataclass(frozen=True)
class Request:
    """A decoded request. ``body`` is None only for an ApiVersions request of a version this server does not
    know: the one request that is still answered (with the v0 format, which every client reads)."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body: RequestPayload | None


def frame_size(prefix: bytes, maximum: int) -> int:
    """The size a 4-byte length prefix announces. Raises ProtocolError when it is not positive or above
    ``maximum`` (checked before anything of that size is read)."""
    (size,) = LENGTH.unpack(prefix)
    if size < _PREFIX.size:
        raise ProtocolError(f"a length prefix of {size} bytes is too short for a request header")
    if size > maximum:
        raise ProtocolError(f"a length prefix of {size} bytes is above the maximum request size {maximum}")
    return size


def decode_request(frame: bytes, versions: Mapping[int, tuple[int, int]]) -> Request:
    """Decode one request frame (without its length prefix) of an API and version in ``versions``
    (API key: (min, max)). Raises ProtocolError for an unknown API key or version, or bytes that do not decode."""
    if len(frame) < _PREFIX.size:
        raise ProtocolError(f"a frame of {len(frame)} bytes is too short for a request header")
    api_key, version, correlation_id = _PREFIX.unpack_from(frame)
    supported = versions.get(api_key)
    if supported is None:
        raise ProtocolError(f"unknown or unsupported API key {api_key} (version {version})")
    low, high = supported
    if api_key == API_VERSIONS_KEY and version > high:
        return Request(api_key, version, correlation_id, None, None)
    if not low <= version <= high:
        raise ProtocolError(f"API key {api_key} version {version} is outside the supported {low}..{high}")
    read_header, read_body = _readers(api_key, version)
    try:
        header, used = read_header(frame, 0)
        body, _ = read_body(frame, used)  # bytes after the body are tolerated, as Kafka does
    except Exception as exc:  # kio raises its own errors, ValueError, UnicodeDecodeError...: all mean bad bytes
        raise ProtocolError(f"API key {api_key} version {version}: malformed request ({exc!r})") from None
    return Request(api_key, version, correlation_id, header.client_id, body)


Frame = list[bytes | memoryview]  # a response frame as the parts to write in order


class Chain:
    """Byte strings that go on the wire as one bytes field, back to back: a partition's record batches. kio's
    writers take its length and hand it to ``write`` whole, and the frame keeps its parts, so the batches reach
    the socket without being joined into one copy first."""

    def __init__(self, parts: Sequence[bytes | memoryview]) -> None:
        self.parts = tuple(parts)
        self._size = sum(map(len, self.parts))

    def __len__(self) -> int:
        return self._size


class _Parts(Frame):
    """What kio's writers write, kept as the parts they wrote: a Fetch response's megabytes of records are then
    handed to the socket as they are, where a growing BytesIO copied them several times over (measured: half the
    page faults)."""

    def write(self, data: bytes | memoryview | Chain) -> int:
        """Keep ``data`` (a chain's parts)."""
        if isinstance(data, Chain):
            self.extend(data.parts)
        else:
            self.append(data)
        return len(data)


SEND_PIECE = 256 * 1024  # about what the socket takes at once when it has room
_JOIN_BELOW = 16 * 1024


def send_pieces(frame: Frame, piece: int = SEND_PIECE) -> Iterator[bytes | memoryview]:
    """A frame's parts as the pieces to hand to the socket one at a time: runs of small parts (kio writes each
    field on its own) joined, one send each; large parts (record batches) in slices of at most ``piece`` bytes.

    Python 3.11's socket transport copies into its own buffer whatever the socket does not take at once, and
    every later write while anything is queued: pieces the socket takes whole, each written once the last has
    left, keep megabytes of records from being copied again."""
    small: list[bytes | memoryview] = []
    for part in frame:
        if len(part) < _JOIN_BELOW:
            small.append(part)
            continue
        if small:
            yield b"".join(small)
            small = []
        view = memoryview(part)
        for start in range(0, len(view), piece):
            yield view[start : start + piece]
    if small:
        yield b"".join(small)


def encode_response(correlation_id: int, response: ResponsePayload) -> Frame:
    """A complete response frame, as the parts to write in order: length prefix, the response's header (its
    version's) and body."""
    parts = _Parts()
    header_type = response.__header_schema__
    # kio's writers only call ``write`` (its types say IO[bytes]; the serve tests encode every API through here).
    entity_writer(header_type)(parts, header_type(correlation_id=i32(correlation_id)))  # type: ignore[arg-type]
    entity_writer(type(response))(parts, response)  # type: ignore[arg-type]
    parts.insert(0, LENGTH.pack(sum(map(len, parts))))
    return parts


@functools.cache
def _readers(api_key: int, version: int) -> tuple[Callable[..., Any], Callable[..., Any]]:
    schema = load_request_schema(api_key, version)
    return entity_reader(schema.__header_schema__), entity_reader(schema)
