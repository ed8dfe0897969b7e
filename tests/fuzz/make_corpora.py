#!/usr/bin/python3
"""Writes the seed inputs of fuzz_http, fuzz_batch, fuzz_luamp and
fuzz_config into tests/fuzz/corpus-<name>/ (fuzz_request's seeds come from
make_corpus.py). Needs python3-msgpack.
Run: /usr/bin/python3 tests/fuzz/make_corpora.py
"""
import os
import struct

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


# ---------------------------------------------------------------- http
def http_seeds():
    crlf = b"\r\n"
    return {
        "curl": b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:7071\r\n"
                b"User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
        "browser": b"GET /api/state?x=1 HTTP/1.1\r\nHost: localhost\r\n"
                   b"Accept: text/html,application/xhtml+xml\r\n"
                   b"Accept-Language: en-US,en;q=0.5\r\n"
                   b"Authorization: Bearer abc.DEF-123_~+/==\r\n"
                   b"Cookie: a=b; c=d\r\nConnection: keep-alive\r\n\r\n",
        "lf_only": b"\nGET / HTTP/1.0\nX-A: \t v \t\nX-B:\n\n",
        "basic_auth": b"GET /health HTTP/1.1\r\nauthorization: Basic YTpi"
                      b"\r\n\r\n",
        "two_auth": b"GET / HTTP/1.1\r\nAuthorization: bearer a\r\n"
                    b"AUTHORIZATION: Bearer b\r\n\r\n",
        "post_body": b"POST /x HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody",
        "star": b"OPTIONS * HTTP/1.1\r\n\r\n",
        "http2": b"GET / HTTP/2.0\r\n\r\n",
        "folding": b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",
        "partial": b"GET /index.html HTTP/1.1\r\nHost: x\r\n",
        "control": b"GET /a\x00b HTTP/1.1\r\n\r\n",
        "many_headers": b"GET / HTTP/1.1\r\n" +
                        b"".join(b"H%d: v\r\n" % i for i in range(65)) + crlf,
        "long_target": b"GET /" + b"a" * 1100 + b" HTTP/1.1\r\n\r\n",
    }


# ---------------------------------------------------------------- batch
def record_v2(delta, ts, key, value, headers=None, with_headers=False):
    body = struct.pack("<Iqi", delta, ts, -1 if key is None else len(key))
    if key is not None:
        body += key
    if with_headers:
        h = headers or b""
        body += struct.pack("<I", len(h)) + h
    body += value
    return struct.pack("<I", len(body)) + body


def batch_v2(base, records, pid=0, seq=0, flags=0):
    """records: (delta, ts, key, value, headers)."""
    body = b"".join(record_v2(d, ts, k, v, h, flags & 1)
                    for d, ts, k, v, h in records)
    tss = [r[1] for r in records]
    head = struct.pack("<QII", base, 64 + len(body), 0x3242504B)
    rest = struct.pack("<IIIIqqQI", crc32c(body), len(records),
                       records[-1][0], flags, tss[0], max(tss), pid, seq)
    head += rest
    head += struct.pack("<I", crc32c(head))
    assert len(head) == 64
    return head + body


def batch_v1(base, records, pid=0, seq=0, flags=0):
    """records: (ts, key, value, headers)."""
    recs = b""
    for ts, k, v, h in records:
        body = struct.pack("<qi", ts, -1 if k is None else len(k))
        if k is not None:
            body += k
        if flags & 1:
            body += struct.pack("<I", len(h or b"")) + (h or b"")
        body += v
        recs += struct.pack("<I", len(body)) + body
    tss = [r[0] for r in records]
    after_crc = struct.pack("<IqqQII", len(records), tss[0], max(tss), pid,
                            seq, flags) + recs
    blen = 20 + len(after_crc)
    head = struct.pack("<QII", base, blen, 0x3142504B)
    return head + struct.pack("<I", crc32c(after_crc)) + after_crc


def control(flags=0, split=0, base2=0, ck_pos=0, ck_next=0, ck_index=0,
            interval=4096 - 64):
    return struct.pack("<BHIHIBH", flags, split, base2, ck_pos, ck_next,
                       ck_index, interval)


def batch_seeds():
    mp = msgpack.packb
    b0 = batch_v2(0, [(0, 1700000000000, b"ann", mp({"n": 1}), None),
                      (1, 1700000000001, None, mp([1, 2]), None)])
    b1 = batch_v2(2, [(0, 5, b"", mp("x"), None)], pid=7, seq=0)
    b2 = batch_v2(3, [(0, 9, b"k", mp(None), b"\x81\xa1h\x01"),
                      (4, 3, None, mp(1.5), None)], flags=1)
    seg = b0 + b1 + b2
    v1 = batch_v1(0, [(1, b"a", mp({"v": 1}), None), (2, None, mp(2), None)])
    v1h = batch_v1(2, [(3, b"k", mp("s"), b"\x80")], pid=9, seq=1, flags=1)
    ctl = control()
    rec = control(flags=0x03)
    return {
        "one_batch": ctl + b0,
        "segment": ctl + seg,
        "torn_tail": ctl + seg[:-7],
        "flipped": ctl + seg[:100] + bytes([seg[100] ^ 1]) + seg[101:],
        "gap_garbage": ctl + b0 + b"\x00" * 37 + b1 + b2,
        "fix_crc": control(flags=0x01) + b0[:64] + b"\xff" * 8 + b0[72:],
        "v1": ctl + v1 + v1h,
        "recover": rec + seg,
        "recover_torn": rec + seg[:-3],
        "recover_two": control(flags=0x07, split=len(b0) + len(b1),
                               base2=3) + seg,
        "recover_ckpt": control(flags=0x0b, ck_pos=len(b0), ck_next=2,
                                ck_index=0) + seg,
        "recover_ckpt2": control(flags=0x1f, split=len(b0), base2=2,
                                 ck_pos=len(b1), ck_next=3) + seg,
        "recover_v1": rec + v1 + v1h,
        "recover_small_interval": control(flags=0x03, interval=0) + seg * 1,
    }


# ---------------------------------------------------------------- luamp
def luamp_seeds():
    mp = lambda v: msgpack.packb(v, use_bin_type=True)
    return {
        "map": mp({"user": "ann", "n": 1, "ok": True, "none": None,
                   "f": 1.5, "big": 2 ** 60, "neg": -(2 ** 60)}),
        "nested": mp({"a": [1, [2, {"b": None}], {}], "c": []}),
        "array": mp([None, 1, "x", b"\x00\xff", [], {}]),
        "int_keys": mp({1: "a", 2: "b", 3: "c"}),
        "float32": msgpack.packb([1.25, -0.0, 3.0], use_single_float=True),
        "u64": bytes.fromhex("cfffffffffffffffff"),
        "i64": bytes.fromhex("d38000000000000000"),
        "nan_key": bytes.fromhex("81cb7ff8000000000000000001"),
        "nil_key": bytes.fromhex("81c001"),
        "ext": mp(msgpack.ExtType(3, b"ab")),
        "deep": b"\x91" * 70 + b"\x01",
        "dup_keys": bytes.fromhex("82a16101a16102"),
        "bin_keys": bytes.fromhex("82c40161a178c4016202"),
        "table_key": bytes.fromhex("81910102"),
        "nil": b"\xc0",
        "trailing": b"\x01\x02",
        "lazy_all": mp({"s": "str", "i": 7, "t": True, "f": False,
                        "z": None, "d": 2.5, "o": [1], "m": {"x": 1},
                        "w": 2 ** 62}),
    }


# ---------------------------------------------------------------- config
def config_seeds():
    return {
        "full": b"# kappad\n"
                b"data = /var/lib/kappa\nlisten = 127.0.0.1:7070\n"
                b"http = [::1]:7071\nlog_level = debug\n"
                b"auto_create_topics = yes\nwatch_processors = off\n"
                b"default_partitions = 4\ndefault_fsync = interval\n"
                b"default_segment_bytes = 1048576\n"
                b"default_retention_ms = -1\ndefault_segment_ms = 60000\n"
                b"default_retention_bytes = 1000000\n"
                b"fsync_interval_ms = 100\nmax_frame_bytes = 1048576\n"
                b"max_inflight_bytes = 65536\n"
                b"max_inflight_total_bytes = 1048576\n"
                b"retention_check_ms = 1000\nworkers = 2\n"
                b"view_cache_bytes = 1048576\nview_max_bytes = 16777216\n"
                b"max_connections = 10\nclient_frame_timeout_ms = 500\n"
                b"max_time_budget_ms = 100\nmax_proc_memory_bytes = 0\n"
                b"error_window_min = 5\nhealth_lag_records = 10\n"
                b"health_lag_seconds = 1.5\nhealth_min_free_bytes = 1\n"
                b"health_min_free_percent = 2.5\n",
        "http_off": b"http = off\r\n  listen=0.0.0.0:1  # all\n",
        "bad_line": b"listen\n",
        "bad_port": b"listen = host:65536\n",
        "bad_number": b"max_frame_bytes = 12x\n",
        "unknown": b"nope = 1\n",
        "args": b"--data\x00/tmp/d\x00--listen\x00127.0.0.1:9\x00"
                b"--http\x00off\x00--log-level\x00warn",
        "long_line": b"data = /" + b"x" * 5000 + b"\n",
        "nul": b"listen = a:1\x00junk\nhttp = b:2\n",
    }


def write(name, seeds):
    out = os.path.join(HERE, "corpus-" + name)
    os.makedirs(out, exist_ok=True)
    for k, v in sorted(seeds.items()):
        with open(os.path.join(out, k), "wb") as f:
            f.write(v)
    print("wrote %d seeds to %s" % (len(seeds), out))


def main():
    write("http", http_seeds())
    write("batch", batch_seeds())
    write("luamp", luamp_seeds())
    write("config", config_seeds())


if __name__ == "__main__":
    main()
