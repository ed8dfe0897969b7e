#!/usr/bin/env python3
"""
test_protocol_limits.py - every limit docs/PROTOCOL.md states, sent over
the raw protocol at its boundary: the value at the limit is accepted, the
one past it is refused with the documented code and a one-line message
naming the field (part of issue 14). A client written from the document
alone must meet no limit it was not told of.
"""

import os
import select
import subprocess

import msgpack

import kappa_harness as kh

U32_MAX = 2 ** 32 - 1
U64_MAX = 2 ** 64 - 1
MIB = 1 << 20


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def nested(levels):
    """msgpack bytes of `levels` arrays, each holding the next; the
    innermost is empty."""
    return b"\x91" * (levels - 1) + b"\x90"


def nested_list(levels):
    v = []
    for _ in range(levels - 1):
        v = [v]
    return v


class ProtocolLimits(kh.ServerTest):

    def conn(self):
        return self.server.client(timeout=10)

    def topic(self, c, **settings):
        name = kh.unique("lim")
        c.ok("topic_create", topic=name, **settings)
        return name

    def assertRefused(self, resp, code, *words):
        """The documented code, and a one-line message with every word."""
        self.assertIs(resp.get("ok"), False, resp)
        self.assertEqual(resp.get("error"), code, resp)
        msg = resp.get("message")
        self.assertIsInstance(msg, str, resp)
        self.assertNotIn("\n", msg)
        for w in words:
            self.assertIn(w, msg, resp)

    def end_offset(self, c, topic):
        return c.ok("list_offsets", topic=topic, at="latest")["end_offset"]

    # -- produce: idempotence
    def test_producer_id_zero_is_refused(self):
        with self.conn() as c:
            t = self.topic(c)
            r = c.call("produce", topic=t, partition=0, producer_id=0, seq=0,
                       records=[{"value": 1}])
            self.assertRefused(r, "BAD_REQUEST", "producer_id", "non-zero")
            self.assertEqual(self.end_offset(c, t), 0, "the batch was written")
            # The largest id is an id like any other.
            for dup in (False, True):
                r = c.ok("produce", topic=t, partition=0, producer_id=U64_MAX,
                         seq=0, records=[{"value": 1}])
                self.assertEqual(r["results"][0]["duplicate"], dup, r)
            self.assertEqual(self.end_offset(c, t), 1)

    def test_seq_without_producer_id_is_refused(self):
        with self.conn() as c:
            t = self.topic(c)
            r = c.call("produce", topic=t, partition=0, seq=3,
                       records=[{"value": 1}])
            self.assertRefused(r, "BAD_REQUEST", "seq", "producer_id")
            self.assertEqual(self.end_offset(c, t), 0)

    def test_seq_is_32_bits_and_wraps(self):
        with self.conn() as c:
            t = self.topic(c)

            def batch(seq):
                return c.call("produce", topic=t, partition=0, producer_id=7,
                              seq=seq, records=[{"value": seq}])

            r = batch(U32_MAX + 1)
            self.assertRefused(r, "BAD_REQUEST", "seq", "4294967295")
            r = batch(U64_MAX)
            self.assertRefused(r, "BAD_REQUEST", "seq", "4294967295")
            self.assertEqual(self.end_offset(c, t), 0)
            self.assertIs(batch(U32_MAX)["results"][0]["duplicate"], False)
            self.assertIs(batch(U32_MAX)["results"][0]["duplicate"], True)
            # After 2^32-1 comes 0: a new batch, not a retry or a gap.
            r = batch(0)
            self.assertEqual(r["results"][0], {"partition": 0,
                                               "base_offset": 1, "count": 1,
                                               "duplicate": False}, r)
            self.assertIs(batch(0)["results"][0]["duplicate"], True)
            self.assertRefused(batch(2), "OUT_OF_ORDER_SEQUENCE")

    # -- fetch and list_offsets
    def test_max_wait_ms_above_60000_waits_60000(self):
        """Documented as a clamp, not a refusal: the poll parks and the
        next record wakes it."""
        with self.conn() as c, self.conn() as w:
            t = self.topic(c)
            for wait in (60000, 60001, U32_MAX, U64_MAX):
                end = self.end_offset(c, t)
                rid = w.send("fetch", topic=t, offset=end, max_wait_ms=wait)
                ready, _, _ = select.select([w.sock], [], [], 0.3)
                self.assertEqual(ready, [], "max_wait_ms %d answered at once"
                                 % wait)
                c.produce(t, [wait])
                r = w.recv()
                self.assertEqual(r["id"], rid)
                self.assertIs(r.get("ok"), True, r)
                self.assertEqual([x["value"] for x in r["records"]], [wait])

    def test_list_offsets_needs_at(self):
        with self.conn() as c:
            t = self.topic(c)
            self.assertRefused(c.call("list_offsets", topic=t),
                               "BAD_REQUEST", "'at' is required")
            for at in ("earliest", "latest", 0, -1):
                self.assertEqual(c.ok("list_offsets", topic=t,
                                      at=at)["offset"], 0)

    # -- nesting
    def produce_value(self, c, topic, value_bytes):
        """A produce of one record whose value is the given msgpack."""
        body = (b"\x85" + pack("id") + pack(99) + pack("op") +
                pack("produce") + pack("topic") + pack(topic) +
                pack("partition") + pack(0) + pack("records") +
                b"\x91\x81" + pack("value") + value_bytes)
        c.send_frame(body)
        return c.recv()

    def test_record_value_nesting(self):
        """The request map, records and the record map take 3 of the 64
        levels: a value may nest 61 deep."""
        with self.conn() as c:
            t = self.topic(c)
            r = self.produce_value(c, t, nested(61))
            self.assertIs(r.get("ok"), True, r)
            (rec,) = c.ok("fetch", topic=t, offset=0)["records"]
            self.assertEqual(rec["value"], nested_list(61))
            r = self.produce_value(c, t, nested(62))
            self.assertRefused(r, "BAD_MSGPACK", "nested more than 64")
            self.assertEqual(r["id"], 0)
            self.assertEqual(self.end_offset(c, t), 1)
            self.assertEqual(c.call("ping")["ok"], True)

    def test_request_nesting(self):
        """Any field: 64 levels counting the request map."""
        with self.conn() as c:
            for levels, ok in ((63, True), (64, False)):
                body = (b"\x83" + pack("id") + pack(5) + pack("op") +
                        pack("ping") + pack("deep") + nested(levels))
                c.send_frame(body)
                r = c.recv()
                if ok:
                    self.assertIs(r.get("ok"), True, r)
                else:
                    self.assertRefused(r, "BAD_MSGPACK", "64")

    # -- topic_create
    def test_segment_bytes_bounds(self):
        with self.conn() as c:
            for bad in (0, 1023, (1 << 40) + 1, U64_MAX):
                r = c.call("topic_create", topic=kh.unique("seg"),
                           segment_bytes=bad)
                self.assertRefused(r, "BAD_REQUEST", "segment_bytes",
                                   "1024..2^40")
            for good in (1024, 1 << 40):
                t = self.topic(c, segment_bytes=good)
                d = c.ok("topic_describe", topic=t)["topic"]
                self.assertEqual(d["segment_bytes"], good)

    def test_partitions_bounds(self):
        with self.conn() as c:
            for bad in (0, 1025):
                r = c.call("topic_create", topic=kh.unique("parts"),
                           partitions=bad)
                self.assertRefused(r, "BAD_REQUEST", "partitions", "1..1024")
            for good in (1, 1024):
                t = self.topic(c, partitions=good)
                d = c.ok("topic_describe", topic=t)["topic"]
                self.assertEqual(d["partitions"], good)
            r = c.call("fetch", topic=t, partition=1024, offset=0)
            self.assertRefused(r, "UNKNOWN_PARTITION", "1024")

    def test_default_partitions_past_the_limit_stops_kappad(self):
        # Else every topic_create without partitions would fail later.
        s = self.new_server(start=False)
        path = os.path.join(s.root, "parts.conf")
        with open(path, "w") as f:
            f.write("default_partitions = 1025\n")
        r = subprocess.run([kh.KAPPAD, "--data", s.data, "--listen",
                            s.addr, "--http", "off", "--config", path],
                           capture_output=True, text=True,
                           timeout=20 * kh.SLOW)
        self.assertEqual(r.returncode, 2, r)     # a configuration error
        self.assertIn("default_partitions: '1025' is not a number in "
                      "1..1024", r.stdout + r.stderr)

    def test_other_topic_settings(self):
        with self.conn() as c:
            cases = [("fsync_interval_ms", 0, 1, "fsync_interval_ms"),
                     ("segment_ms", 0, 1, "segment_ms"),
                     ("retention_ms", 0, -1, "retention_ms"),
                     ("retention_ms", -2, 1, "retention_ms"),
                     ("retention_bytes", -2, 0, "retention_bytes"),
                     ("delete_retention_ms", 0, 1, "delete_retention_ms")]
            for field, bad, good, word in cases:
                r = c.call("topic_create", topic=kh.unique("set"),
                           **{field: bad})
                self.assertRefused(r, "BAD_REQUEST", word)
                t = self.topic(c, **{field: good})
                d = c.ok("topic_describe", topic=t)["topic"]
                self.assertEqual(d[field], good)

    def test_topic_and_group_name_length(self):
        with self.conn() as c:
            name = "n" * 199 + kh.unique("")[-1:]
            self.assertEqual(len(name), 200)
            c.ok("topic_create", topic=name)
            c.ok("produce", topic=name, partition=0, records=[{"value": 1}])
            r = c.call("topic_create", topic=name + "x")
            self.assertRefused(r, "BAD_REQUEST", "topic name", "1..200")
            c.ok("group_commit", group="g" * 200,
                 offsets=[{"topic": name, "partition": 0, "offset": 1}])
            r = c.call("group_commit", group="g" * 201,
                       offsets=[{"topic": name, "partition": 0, "offset": 1}])
            self.assertRefused(r, "BAD_REQUEST", "group name", "1..200")


class ProcLimits(kh.ServerTest):
    """proc_create against a server with low ceilings."""

    server_config = {"max_time_budget_ms": 500,
                     "max_proc_memory_bytes": 64 * MIB}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.code = os.path.join(cls.server.root, "count.lua")
        with open(cls.code, "w") as f:
            f.write("local M = {}\n"
                    "function M.process(ctx, rec)\n"
                    "  if rec.value.spin then while true do end end\n"
                    "  ctx.state:incr('n', 1)\n"
                    "end\n"
                    "return M\n")
        with cls.server.client() as c:
            c.ok("topic_create", topic="in")

    def create(self, name, **extra):
        extra.setdefault("file", self.code)
        with self.server.client() as c:
            return c.call("proc_create", name=name, inputs=["in"], **extra)

    assertRefused = ProtocolLimits.assertRefused

    def test_time_budget_ms_bounds(self):
        for bad in (9, 501, U64_MAX):
            self.assertRefused(self.create(kh.unique("tb"),
                                           time_budget_ms=bad),
                               "BAD_REQUEST", "time_budget_ms", "10..500",
                               "max_time_budget_ms")
        for good in (10, 500):
            r = self.create(kh.unique("tb"), time_budget_ms=good)
            self.assertIs(r.get("ok"), True, r)

    def test_memory_limit_bounds(self):
        for bad in (0, 64 * MIB + 1):
            self.assertRefused(self.create(kh.unique("mem"),
                                           memory_limit=bad),
                               "BAD_REQUEST", "memory_limit",
                               "1..67108864", "max_proc_memory_bytes")
        r = self.create(kh.unique("mem"), memory_limit=64 * MIB)
        self.assertIs(r.get("ok"), True, r)

    def test_default_time_budget_is_capped(self):
        """Without time_budget_ms the default (5000) is capped by the
        server's max_time_budget_ms (500), as memory_limit's is."""
        topic = kh.unique("spin")
        with self.server.client() as c:
            c.ok("topic_create", topic=topic)
            c.ok("produce", topic=topic, partition=0,
                 records=[{"value": {"spin": True}}])
            name = kh.unique("spin")
            c.ok("proc_create", name=name, file=self.code, inputs=[topic])
        st = kh.wait_status(self.server, name,
                            lambda st: st["state"] == "failed",
                            timeout=3.5 * kh.SLOW, interval=0.1,
                            what="stopped by a 500 ms time budget")
        self.assertIn("time budget", st["reason"])

    def test_name_length(self):
        """184 bytes leave room for the dead-letter topic of every
        version, NAME.dlq.vN (N up to 2^32-1), within a topic name's 200."""
        for bad in (185, 200, 201):
            r = self.create("p" * bad)
            self.assertRefused(r, "BAD_REQUEST", "name", "184")
        name = "q" * 184
        r = self.create(name)
        self.assertIs(r.get("ok"), True, r)
        self.assertEqual(r["proc"]["dlq"], name + ".dlq")
        with self.server.client() as c:
            topics = [t["name"] for t in c.ok("topic_list")["topics"]]
        self.assertIn(name + ".dlq", topics)

    def test_output_name_length(self):
        """188 bytes leave room for a version's OUTPUT.vN."""
        with self.server.client() as c:
            for n in (188, 189):
                c.ok("topic_create", topic="o" * n)
        r = self.create(kh.unique("out"), outputs=["o" * 189])
        self.assertRefused(r, "BAD_REQUEST", "outputs", "188")
        r = self.create(kh.unique("out"), outputs=["o" * 188])
        self.assertIs(r.get("ok"), True, r)

    def test_file_of_unknown_type_is_bad_config(self):
        path = os.path.join(self.server.root, "count.js")
        with open(path, "w") as f:
            f.write("module.exports = {}\n")
        r = self.create(kh.unique("js"), file=path)
        self.assertRefused(r, "BAD_CONFIG", "count.js",
                           "unknown processor type")
        with self.server.client() as c:
            names = [p["name"] for p in c.ok("proc_list")["procs"]]
        self.assertFalse([n for n in names if n.startswith("js")], names)

    def test_error_rate_and_window(self):
        for field, bad in (("max_error_rate", 1.5), ("max_error_rate", -0.1),
                           ("max_error_rate", float("nan")),
                           ("max_error_rate", "half"),
                           ("error_window_min", 0),
                           ("error_window_min", U32_MAX + 1)):
            self.assertRefused(self.create(kh.unique("er"), **{field: bad}),
                               "BAD_REQUEST", field)

    def test_inputs_count(self):
        with self.server.client() as c:
            for i in range(33):
                c.call("topic_create", topic="many%d" % i)
        names = ["many%d" % i for i in range(33)]
        with self.server.client() as c:
            r = c.call("proc_create", name=kh.unique("many"), file=self.code,
                       inputs=names)
        self.assertRefused(r, "BAD_REQUEST", "inputs", "32")


if __name__ == "__main__":
    kh.main()
