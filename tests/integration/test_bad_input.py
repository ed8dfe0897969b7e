"""
test_bad_input.py - hostile and broken input: bad frames, bad msgpack, bad
requests, lying length headers, truncated frames, out-of-range reads. The
server answers with the documented error, closes only what the protocol says
it closes, does not balloon in memory, and keeps serving everything it had
acknowledged. kappactl usage errors are one line and a non-zero exit.
"""

import socket
import struct
import time

import msgpack

import kappa_harness as kh

MAX_FRAME = 16 * 1024 * 1024


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


class BadInput(kh.ServerTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.topic = kh.unique("bad")
        with cls.server.client() as c:
            c.ok("topic_create", topic=cls.topic, partitions=2)
            c.produce(cls.topic, [{"n": i} for i in range(100)], partition=0)
            c.produce(cls.topic, [{"n": i} for i in range(7)], partition=1)
            cls.before = [c.fetch_all(cls.topic, p) for p in range(2)]

    def conn(self):
        return self.server.client(timeout=5)

    def assertUsable(self, c):
        self.assertEqual(c.call("ping")["ok"], True)

    # -- framing
    def test_zero_length_frame_closes(self):
        with self.conn() as c:
            c.send_raw(b"\0\0\0\0")
            self.assertError(c.recv(), "BAD_FRAME", rid=0)
            self.assertTrue(c.is_closed(), "connection left open after BAD_FRAME")

    def test_oversized_frame_closes(self):
        with self.conn() as c:
            c.send_raw(struct.pack(">I", MAX_FRAME + 1))
            self.assertError(c.recv(), "BAD_FRAME", rid=0)
            self.assertTrue(c.is_closed(), "connection left open after BAD_FRAME")
        with self.conn() as c:
            c.send_raw(b"\xff\xff\xff\xff" + b"x" * 100)
            self.assertError(c.recv(), "BAD_FRAME", rid=0)
            self.assertTrue(c.is_closed())

    def test_bad_frame_after_good_request(self):
        """Responses before the bad frame still arrive, in order."""
        with self.conn() as c:
            c.send("ping", id=11)
            c.send_raw(b"\0\0\0\0")
            r = c.recv()
            self.assertEqual((r["id"], r["ok"]), (11, True))
            self.assertError(c.recv(), "BAD_FRAME", rid=0)
            self.assertTrue(c.is_closed())

    def test_not_msgpack_keeps_connection(self):
        with self.conn() as c:
            for body in (b"\xc1", b"\x82\xa2id", b"\x81\xa2id\x01\x00",
                         b"\xa5hello\xa5world"):
                c.send_frame(body)
                r = c.recv()
                self.assertIn(r.get("error"), ("BAD_MSGPACK",), repr((body, r)))
                self.assertIs(r["ok"], False)
                self.assertUsable(c)

    def test_valid_msgpack_not_a_request(self):
        with self.conn() as c:
            for body in (pack([1, 2, 3]), pack("ping"), pack(None), pack(7)):
                c.send_frame(body)
                self.assertError(c.recv(), "BAD_REQUEST", rid=0)
                self.assertUsable(c)
            c.send_frame(pack({"id": 7}))
            r = c.recv()
            self.assertError(r, "BAD_REQUEST", rid=7)
            self.assertIn("op", r["message"])
            c.send_frame(pack({"id": 8, "op": "frobnicate"}))
            r = c.recv()
            self.assertError(r, "UNKNOWN_OP", rid=8)
            self.assertIn("frobnicate", r["message"])
            c.send_frame(pack({"id": 9, "op": 5}))
            self.assertError(c.recv(), "BAD_REQUEST", rid=9)
            c.send_frame(pack({"op": "ping", "id": "x"}))
            self.assertError(c.recv(), "BAD_REQUEST", rid=0)
            self.assertUsable(c)

    def test_missing_and_mistyped_fields(self):
        t = self.topic
        rec = [{"value": 1}]
        offs = [{"topic": t, "partition": 0, "offset": 1}]
        cases = [
            # (op, fields, the field the message must name)
            ("produce", {"records": rec}, "topic"),
            ("produce", {"topic": t}, "records"),
            ("produce", {"topic": 5, "records": rec}, "topic"),
            ("produce", {"topic": t, "records": "x"}, "records"),
            ("produce", {"topic": t, "records": rec, "partition": "0"}, "partition"),
            ("produce", {"topic": t, "records": [{"key": "k"}]}, "value"),
            ("produce", {"topic": t, "records": [{"value": 1, "ts": "now"}]}, "ts"),
            ("produce", {"topic": t, "records": [{"value": 1, "key": 3}]}, "key"),
            ("produce", {"topic": t, "records": rec, "partition": 0,
                         "producer_id": 9}, "seq"),
            ("produce", {"topic": t, "records": rec, "partition": 0,
                         "producer_id": "9", "seq": 0}, "producer_id"),
            ("fetch", {"offset": 0}, "topic"),
            ("fetch", {"topic": t}, "offset"),
            ("fetch", {"topic": t, "offset": "0"}, "offset"),
            ("fetch", {"topic": t, "offset": 0, "partition": "0"}, "partition"),
            ("fetch", {"topic": t, "offset": 0, "max_wait_ms": "1"}, "max_wait_ms"),
            ("fetch", {"topic": t, "offset": 0, "max_bytes": -1}, "max_bytes"),
            ("list_offsets", {"at": "earliest"}, "topic"),
            ("list_offsets", {"topic": t, "at": [1]}, "at"),
            ("list_offsets", {"topic": t, "at": "sometime"}, "at"),
            ("topic_create", {}, "topic"),
            ("topic_create", {"topic": 1}, "topic"),
            ("topic_create", {"topic": kh.unique("x"), "partitions": "2"}, "partitions"),
            ("topic_create", {"topic": kh.unique("x"), "partitions": 0}, "partitions"),
            ("topic_create", {"topic": kh.unique("x"), "fsync": "sometimes"}, "fsync"),
            ("topic_create", {"topic": kh.unique("x"), "segment_bytes": "big"},
             "segment_bytes"),
            ("topic_create", {"topic": "a/b"}, "topic"),
            ("topic_create", {"topic": ".."}, "topic"),
            ("topic_create", {"topic": "x" * 201}, "topic"),
            ("topic_describe", {}, "topic"),
            ("topic_describe", {"topic": ["x"]}, "topic"),
            ("topic_delete", {}, "topic"),
            ("topic_delete", {"topic": 3}, "topic"),
            ("group_commit", {"offsets": offs}, "group"),
            ("group_commit", {"group": "g"}, "offsets"),
            ("group_commit", {"group": "g", "offsets": "x"}, "offsets"),
            ("group_commit", {"group": "g", "offsets": [{"topic": t, "partition": 0,
                                                         "offset": "1"}]}, "offset"),
            ("group_commit", {"group": 1, "offsets": offs}, "group"),
            ("group_fetch", {}, "group"),
            ("group_fetch", {"group": 1}, "group"),
            ("group_delete", {}, "group"),
        ]
        failures = []
        with self.conn() as c:
            for op, fields, field in cases:
                r = c.call(op, **fields)
                if (r.get("ok") is not False or r.get("error") != "BAD_REQUEST"
                        or field not in r.get("message", "")):
                    failures.append("%s %r -> %r (want BAD_REQUEST naming %r)"
                                    % (op, fields, r, field))
            self.assertUsable(c)
        self.assertEqual(failures, [], "\n".join(failures))

    # -- lying lengths and memory
    def test_huge_declared_lengths_rejected_without_allocating(self):
        rss0 = self.server.metric("process_resident_memory_bytes")
        self.assertIsNotNone(rss0, "no process_resident_memory_bytes in /metrics")
        head = pack({"id": 21, "op": "produce", "topic": self.topic})
        bodies = [
            b"\xdd\xff\xff\xff\xff",               # array32 of 2^32-1
            b"\xdf\xff\xff\xff\xff",               # map32 of 2^32-1
            b"\xdb\xff\xff\xff\xff",               # str32
            b"\xc6\xff\xff\xff\xff",               # bin32
            # A request map whose records field lies.
            bytes([head[0] + 1]) + head[1:] + pack("records") + b"\xdd\xff\xff\xff\xff",
            b"\x91" * 10000 + b"\xdd\xff\xff\xff\xff",   # deep nesting
        ]
        with self.conn() as c:
            for body in bodies:
                for _ in range(20):
                    t0 = time.monotonic()
                    c.send_frame(body)
                    r = c.recv()
                    dt = time.monotonic() - t0
                    self.assertIn(r.get("error"), ("BAD_MSGPACK", "BAD_REQUEST"),
                                  repr((body[:16], r)))
                    self.assertLess(dt, 1.0 * kh.SLOW)
                self.assertUsable(c)
        rss1 = self.server.metric("process_resident_memory_bytes")
        self.assertLess(rss1 - rss0, 64 * 1024 * 1024,
                        "resident memory grew from %d to %d" % (rss0, rss1))

    def test_large_frame_announced_but_not_sent(self):
        """A 16 MiB frame header then a close: nothing is kept."""
        rss0 = self.server.metric("process_resident_memory_bytes")
        for _ in range(20):
            with self.conn() as c:
                c.send_raw(struct.pack(">I", MAX_FRAME) + b"\x81")
        rss1 = self.server.metric("process_resident_memory_bytes")
        self.assertLess(rss1 - rss0, 128 * 1024 * 1024,
                        "resident memory grew from %d to %d" % (rss0, rss1))
        with self.conn() as c:
            self.assertUsable(c)

    def test_truncated_frame_then_close(self):
        for prefix in (b"\0", b"\0\0\0", b"\0\0\0\x64", b"\0\0\0\x64" + b"\x82" * 10):
            s = socket.create_connection(("127.0.0.1", self.server.port))
            s.sendall(prefix)
            s.close()
        s = socket.create_connection(("127.0.0.1", self.server.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sendall(struct.pack(">I", 1000) + b"\x85" * 500)
        s.close()   # RST
        with self.conn() as c:
            self.assertUsable(c)

    # -- documented errors
    def test_fetch_out_of_range(self):
        with self.conn() as c:
            r = c.call("fetch", topic=self.topic, partition=0, offset=101)
            self.assertError(r, "OFFSET_OUT_OF_RANGE")
            self.assertEqual((r["start_offset"], r["end_offset"]), (0, 100))
            r = c.call("fetch", topic=self.topic, partition=0, offset=2 ** 63)
            self.assertError(r, "OFFSET_OUT_OF_RANGE")
            r = c.call("fetch", topic=self.topic, partition=0, offset=100)
            self.assertEqual((r["ok"], r["records"], r["end_offset"]),
                             (True, [], 100))

    def test_unknown_topic_and_partition(self):
        with self.conn() as c:
            nope = kh.unique("nope")
            self.assertError(c.call("produce", topic=nope, records=[{"value": 1}]),
                             "UNKNOWN_TOPIC")
            self.assertError(c.call("fetch", topic=nope, offset=0), "UNKNOWN_TOPIC")
            self.assertError(c.call("topic_describe", topic=nope), "UNKNOWN_TOPIC")
            self.assertError(c.call("fetch", topic=self.topic, partition=2, offset=0),
                             "UNKNOWN_PARTITION")
            self.assertError(c.call("produce", topic=self.topic, partition=9,
                                    records=[{"value": 1}]), "UNKNOWN_PARTITION")
            self.assertError(c.call("group_delete", group=kh.unique("g")),
                             "UNKNOWN_GROUP")
            self.assertError(c.call("topic_create", topic=self.topic),
                             "TOPIC_EXISTS")
            # None of that created the topic.
            self.assertError(c.call("topic_describe", topic=nope), "UNKNOWN_TOPIC")

    def test_errors_keep_pipeline_order(self):
        with self.conn() as c:
            ids, resps = c.pipeline([
                ("ping", {}),
                ("fetch", {"topic": self.topic, "offset": 1000}),
                ("frobnicate", {}),
                ("fetch", {"topic": self.topic, "offset": 99}),
                ("produce", {"topic": kh.unique("nope"), "records": [{"value": 1}]}),
                ("ping", {}),
            ])
            self.assertEqual([r["id"] for r in resps], ids)
            self.assertEqual([r.get("error") for r in resps],
                             [None, "OFFSET_OUT_OF_RANGE", "UNKNOWN_OP", None,
                              "UNKNOWN_TOPIC", None])
            self.assertEqual(resps[3]["records"][0]["value"], {"n": 99})

    # -- malformed records: refused with their index, nothing written
    def end_offsets(self, c, topic):
        r = c.ok("topic_describe", topic=topic)
        return [p["end_offset"] for p in r["topic"]["partition_stats"]]

    def test_bad_record_at_index_writes_nothing(self):
        topic = kh.unique("badrec")
        good = [{"value": {"n": i}, "key": "k%d" % i} for i in range(200)]
        bad = [
            ({"key": "k"}, "value"),                    # no value
            ({"value": 1, "key": 3}, "key"),            # key neither str nor bin
            ({"value": 1, "key": [1]}, "key"),
            ({"value": 1, "ts": "now"}, "ts"),          # ts not an int
            ({"value": 1, "ts": 2 ** 64 - 1}, "ts"),    # ts above int64
            ([1, 2], "map"),                            # not a map
            ("value", "map"),
        ]
        with self.conn() as c:
            c.ok("topic_create", topic=topic, partitions=3)
            c.produce(topic, [{"n": 1}], partition=1)
            before = self.end_offsets(c, topic)
            for rec, word in bad:
                for k in (0, 57, 199):
                    records = list(good)
                    records[k] = rec
                    for part in (None, 2):   # routed by key, and explicit
                        fields = {"topic": topic, "records": records}
                        if part is not None:
                            fields["partition"] = part
                        with self.subTest(rec=rec, k=k, partition=part):
                            r = c.call("produce", **fields)
                            self.assertError(r, "BAD_REQUEST")
                            self.assertTrue(
                                r["message"].startswith("records[%d]: " % k),
                                r["message"])
                            self.assertIn(word, r["message"])
            # Unknown fields in records and in the request are ignored.
            r = c.call("produce", topic=topic, partition=0, extra={"x": [1]},
                       records=[{"value": 1, "other": [1, {"a": 2}]}])
            self.assertEqual(r["ok"], True, r)
            self.assertEqual(self.end_offsets(c, topic),
                             [before[0] + 1] + before[1:])
            self.assertUsable(c)

    def test_malformed_record_bytes_write_nothing(self):
        """A record whose bytes are cut or lie, or bytes after the request
        value: BAD_MSGPACK, and nothing of the request is written."""
        topic = kh.unique("badbytes")
        with self.conn() as c:
            c.ok("topic_create", topic=topic, partitions=1)
            head = {"id": 31, "op": "produce", "topic": topic, "partition": 0}
            good = pack({"value": b"x" * 50})
            recs = [good] * 40

            def body(records, extra=b""):
                m = pack(head)
                return (bytes([m[0] + 1]) + m[1:] + pack("records")
                        + b"\xdc" + struct.pack(">H", len(records))
                        + b"".join(records) + extra)

            bodies = []
            # Record 17's bin announces more bytes than the frame holds.
            lying = list(recs)
            lying[17] = b"\x81\xa5value\xc6\x00\x01\x00\x00" + b"x" * 10
            bodies.append(body(lying))
            # The array announces one record more than it has.
            bodies.append(body(recs)[:-len(good)])
            # The last record cut in the middle of its value.
            bodies.append(body(recs)[:-20])
            # A reserved byte (0xc1) as record 5's value.
            bad = list(recs)
            bad[5] = b"\x81\xa5value\xc1"
            bodies.append(body(bad))
            # One well-formed request, then bytes after it.
            bodies.append(body(recs, extra=b"\xc0"))
            for b in bodies:
                c.send_frame(b)
                r = c.recv()
                self.assertError(r, "BAD_MSGPACK")
            self.assertEqual(self.end_offsets(c, topic), [0])
            # The same request whole is written.
            c.send_frame(body(recs))
            r = c.recv()
            self.assertEqual((r["ok"], r["results"][0]["count"]), (True, 40), r)
            self.assertEqual(self.end_offsets(c, topic), [40])

    # -- after all of it (runs last: tests run in name order)
    def test_zz_still_serving_everything(self):
        self.assertTrue(self.server.alive(), self.server.log_tail())
        with self.conn() as c:
            self.assertUsable(c)
            after = [c.fetch_all(self.topic, p) for p in range(2)]
        self.assertEqual(after, self.before)
        self.server.stop_ok(self)


class CtlUsage(kh.ServerTest):

    def test_usage_errors(self):
        s = self.server
        topic = kh.unique("u")
        self.assertCtlOk(s.ctl("topic", "create", topic))
        for args in (["frobnicate"], ["topic"], ["topic", "frobnicate"],
                     ["topic", "create"], ["topic", "describe"],
                     ["topic", "create", kh.unique("x"), "--partitions", "many"],
                     ["topic", "create", kh.unique("x"), "--fsync", "sometimes"],
                     ["produce"], ["consume"],
                     ["consume", topic, "--partition", "abc"],
                     ["consume", topic, "--partition", "-1"],
                     ["consume", topic, "--from", "yesterday"],
                     ["consume", topic, "--count", "x"],
                     ["consume", topic, "--bogus-option"],
                     ["produce", topic, "--partition", "abc"],
                     ["group", "reset", "g", topic],
                     ["group", "describe"]):
            with self.subTest(args=args):
                cp = s.ctl(*args, input="")
                self.assertCtlFails(cp)
        # A partition that does not exist is the server's error, still one line.
        self.assertCtlFails(s.ctl("consume", topic, "--partition", "5"))

    def test_connection_refused(self):
        port = kh.free_port()
        for args in (["ping"], ["topic", "list"], ["consume", "t"]):
            cp = kh.run_ctl(args, addr="127.0.0.1:%d" % port, timeout=20)
            self.assertCtlFails(cp)
        cp = kh.run_ctl(["--addr", "127.0.0.1:%d" % port, "ping"], timeout=20)
        self.assertCtlFails(cp)


if __name__ == "__main__":
    kh.main()
