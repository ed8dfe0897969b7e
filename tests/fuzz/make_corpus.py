#!/usr/bin/python3
"""Writes the seed inputs of fuzz_request into tests/fuzz/corpus/.

Each seed is a stream of protocol frames (a big-endian u32 length and a
msgpack body), as a client would send them. Needs python3-msgpack.
Run: /usr/bin/python3 tests/fuzz/make_corpus.py
"""
import os
import struct

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")


def frame(body):
    if not isinstance(body, bytes):
        body = msgpack.packb(body, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


SEEDS = {
    "ping": frame({"id": 1, "op": "ping"}),
    "produce": frame({
        "id": 2, "op": "produce", "topic": "events", "partition": 0,
        "records": [
            {"value": {"user": "ann", "n": 1}, "key": "ann", "ts": 1700000000000},
            {"value": [1, -2, 3.5, None, True], "key": b"\x00\xff"},
            {"value": "plain", "key": None, "ts": -1},
            {"value": None},
        ],
    }),
    "produce_idempotent": frame({
        "id": 3, "op": "produce", "topic": "t", "partition": 1,
        "producer_id": 77, "seq": 0, "records": [{"value": b"bytes"}],
    }),
    "fetch": frame({"id": 4, "op": "fetch", "topic": "events", "partition": 0,
                    "offset": 0, "max_bytes": 1048576, "max_wait_ms": 100}),
    "list_offsets": frame({"id": 5, "op": "list_offsets", "topic": "events",
                           "at": "earliest"}),
    "topic_create": frame({
        "id": 6, "op": "topic_create", "topic": "events", "partitions": 4,
        "fsync": "interval", "fsync_interval_ms": 1000, "retention_ms": -1,
        "retention_bytes": -1, "segment_bytes": 134217728,
        "segment_ms": 604800000,
    }),
    "group_commit": frame({
        "id": 7, "op": "group_commit", "group": "g1",
        "offsets": [{"topic": "events", "partition": 0, "offset": 10}],
    }),
    "pipelined": b"".join(frame({"id": i, "op": "ping"}) for i in range(3)),
    "wide_ints": frame(bytes.fromhex(
        "84a26964cf00000000000000ffa26f70a470696e67"
        "a174d3ffffffffffffffffa170d000")),
    "ext_float": frame(msgpack.packb({
        "id": 8, "op": "x", "f": 1.5,
        "e": msgpack.ExtType(5, b"abcd"), "big": msgpack.ExtType(1, b"z" * 300),
    }, use_bin_type=True, use_single_float=True)),
    "bad_trailing": frame(msgpack.packb({"id": 9, "op": "ping"}) + b"\xc0"),
    "bad_not_map": frame([1, 2, 3]),
    "bad_reserved": frame(b"\x82\xa2id\x01\xa2op\xc1"),
    "bad_huge_array": frame(b"\xdd\xff\xff\xff\xff"),
    "bad_zero_frame": b"\x00\x00\x00\x00",
    "bare_body": msgpack.packb({"id": 10, "op": "ping", "records": []}),
    "deep": frame(b"\x81\xa1a" + b"\x91" * 60 + b"\x01"),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in sorted(SEEDS.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(SEEDS), OUT))


if __name__ == "__main__":
    main()
