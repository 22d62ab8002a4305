"""Framing and decoding of Kafka requests, and response frames, around kio's types."""

from __future__ import annotations

import struct
from datetime import timedelta

import pytest
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader

from pyrostore.errors import ProtocolError
from pyrostore.serve.messages import item_type, make, response_type
from pyrostore.serve.protocol import Chain, decode_request, encode_response, frame_size, send_pieces
from tests.serve_helpers import request_frame

VERSIONS = {18: (0, 4), 3: (0, 13), 1: (4, 18)}


@pytest.mark.parametrize("size", [-1, 0, 7, 2**31 - 1, 1025])
def test_bad_length_prefixes(size):
    with pytest.raises(ProtocolError):
        frame_size(struct.pack(">i", size), maximum=1024)


def test_a_length_prefix_at_the_maximum():
    assert frame_size(struct.pack(">i", 1024), maximum=1024) == 1024


def test_decoding_a_request():
    frame = request_frame(
        3,
        12,
        correlation_id=42,
        topics=None,
        allow_auto_topic_creation=False,
        include_topic_authorized_operations=False,
    )[4:]
    request = decode_request(frame, VERSIONS)
    assert (request.api_key, request.api_version, request.correlation_id, request.client_id) == (3, 12, 42, "t")
    assert request.body.topics is None


def test_unknown_keys_and_versions_are_protocol_errors():
    frame = request_frame(
        3, 12, topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False
    )[4:]
    with pytest.raises(ProtocolError, match="unknown or unsupported API key 3"):
        decode_request(frame, {18: (0, 4)})
    with pytest.raises(ProtocolError, match=r"outside the supported 0\.\.11"):
        decode_request(frame, {3: (0, 11)})
    with pytest.raises(ProtocolError, match="too short"):
        decode_request(b"\x00\x03", VERSIONS)


def test_garbage_after_a_good_header_is_a_protocol_error():
    frame = request_frame(
        1, 12, topics=(), replica_id=-1, max_wait=timedelta(0), min_bytes=0, forgotten_topics_data=()
    )[4:]
    with pytest.raises(ProtocolError, match="malformed"):
        decode_request(frame[:20] + b"\xff" * 7, VERSIONS)


def test_an_api_versions_request_of_an_unknown_version_is_still_decoded():
    frame = struct.pack(">hhi", 18, 9, 77) + b"\x00\x01t\x00" + b"anything"
    request = decode_request(frame, VERSIONS)
    assert (request.api_key, request.api_version, request.correlation_id, request.body) == (18, 9, 77, None)


@pytest.mark.parametrize(("api_key", "version", "header_bytes"), [(18, 3, 4), (3, 12, 5), (3, 4, 4)])
def test_response_frames(api_key, version, header_bytes):
    cls = response_type(api_key, version)
    if api_key == 18:  # ApiVersions: never a flexible response header, even in flexible versions
        keys = (make(item_type(cls, "api_keys"), api_key=1, min_version=4, max_version=18),)
        body = make(cls, error_code=ErrorCode.none, api_keys=keys, throttle_time=timedelta(0))
    else:
        body = make(cls, error_code=ErrorCode.none, throttle_time=timedelta(0), brokers=(), topics=(), controller_id=0)
    frame = b"".join(encode_response(99, body))
    (size,) = struct.unpack_from(">i", frame)
    assert size == len(frame) - 4
    assert struct.unpack_from(">i", frame, 4) == (99,)
    _, used = entity_reader(cls.__header_schema__)(frame[4:], 0)
    assert used == header_bytes  # header v1 has tagged fields after the correlation id
    decoded, _ = entity_reader(cls)(frame[4:], used)
    assert decoded == body


def test_send_pieces_join_small_parts_and_slice_large_ones_without_changing_the_bytes():
    big = bytes(range(256)) * 4096  # 1 MiB
    frame = [b"\x00\x00\x01\x00", b"ab", b"c", big, b"tail", memoryview(big)[:20_000], b"end"]
    pieces = list(send_pieces(frame, piece=300_000))
    assert b"".join(pieces) == b"".join(frame)
    assert [len(p) for p in pieces] == [7, 300_000, 300_000, 300_000, 148_576, 4, 20_000, 3]
    assert isinstance(pieces[1], memoryview)  # the record bytes themselves, not a copy


@pytest.mark.parametrize("version", [4, 12, 16])  # legacy and compact bytes
def test_a_chain_of_batches_encodes_as_their_bytes_joined_and_keeps_them_as_parts(version):
    cls = response_type(1, version)
    topic_type = item_type(cls, "responses")
    partition_type = item_type(topic_type, "partitions")
    batches = [bytes(range(256)) * 100, memoryview(b"second batch" * 3000), b"third"]

    def fetch_response(records):
        partition = make(
            partition_type,
            partition_index=0,
            error_code=ErrorCode.none,
            high_watermark=9,
            last_stable_offset=9,
            log_start_offset=0,
            aborted_transactions=None,
            preferred_read_replica=-1,
            records=records,
        )
        topic = make(topic_type, topic="t", topic_id=None, partitions=(partition,))
        return make(cls, throttle_time=timedelta(0), error_code=ErrorCode.none, session_id=0, responses=(topic,))

    chained = encode_response(5, fetch_response(Chain(batches)))
    assert b"".join(chained) == b"".join(encode_response(5, fetch_response(b"".join(batches))))
    assert any(part is batches[1] for part in chained)  # handed on, not copied
