#!/usr/bin/env python3
"""
test_limits.py - what a client may ask is bounded by the server (part of
issue 13): a processor's time_budget_ms and memory_limit stay within
max_time_budget_ms and max_proc_memory_bytes (no "unlimited" memory unless
the operator allows it), names with NUL or control bytes are refused rather
than cut, every error message is one line, and group_commit refuses an
offset past the partition's end (which would show a lag of 0 for records
never read).
"""

import kappa_harness as kh

GIB = 1 << 30


class LimitsTest(kh.ServerTest):
    class_server = False

    def create(self, s, name, **extra):
        with s.client() as c:
            return c.call("proc_create", name=name,
                          file=kh.fixture("iso_count.lua"), inputs=["in"],
                          **extra)

    def topic_server(self, config=None):
        s = self.new_server(config)
        with s.client() as c:
            c.ok("topic_create", topic="in")
        return s

    def assertRefused(self, resp, code, *words):
        self.assertFalse(resp.get("ok"), resp)
        self.assertEqual(resp["error"], code, resp)
        for w in words:
            self.assertIn(w, resp["message"])
        self.assertNotIn("\n", resp["message"])

    def test_time_budget_ceiling(self):
        s = self.topic_server()
        self.assertRefused(self.create(s, "a", time_budget_ms=3600000),
                           "BAD_REQUEST", "time_budget_ms", "10..10000",
                           "max_time_budget_ms")
        self.assertTrue(self.create(s, "b", time_budget_ms=10000)["ok"])
        s2 = self.topic_server({"max_time_budget_ms": 60000})
        self.assertTrue(self.create(s2, "c", time_budget_ms=60000)["ok"])
        self.assertRefused(self.create(s2, "d", time_budget_ms=60001),
                           "BAD_REQUEST", "10..60000")

    def test_memory_limit_ceiling(self):
        s = self.topic_server()
        for bad in (0, 2 ** 64 - 1, 2 * GIB):
            self.assertRefused(self.create(s, "m", memory_limit=bad),
                               "BAD_REQUEST", "memory_limit",
                               "max_proc_memory_bytes")
        self.assertTrue(self.create(s, "m", memory_limit=GIB)["ok"])
        with s.client() as c:
            names = [p["name"] for p in c.ok("proc_list")["procs"]]
        self.assertEqual(names, ["m"])
        # A lower ceiling also caps the default (256 MiB).
        s2 = self.topic_server({"max_proc_memory_bytes": 128 << 20})
        self.assertTrue(self.create(s2, "n")["ok"])
        self.assertRefused(self.create(s2, "o", memory_limit=256 << 20),
                           "BAD_REQUEST", "1..134217728")
        # "No limit" only where the operator allows it.
        s3 = self.topic_server({"max_proc_memory_bytes": 0})
        self.assertTrue(self.create(s3, "p", memory_limit=0)["ok"])

    def test_names_with_nul_or_control_bytes_are_refused(self):
        s = self.topic_server()
        for name in ("p\x00q", "p\nq", "p\x1bq"):
            self.assertRefused(self.create(s, name), "BAD_REQUEST", "name")
        with s.client() as c:
            self.assertEqual(c.ok("proc_list")["procs"], [])
            r = c.call("proc_status", name="p")
            self.assertFalse(r["ok"])
            for name in ("t\x00u", "t\nu"):
                r = c.call("topic_create", topic=name)
                self.assertFalse(r["ok"], r)
                r = c.call("group_commit", group="g\x00h",
                           offsets=[{"topic": "in", "partition": 0,
                                     "offset": 0}])
                self.assertFalse(r["ok"], r)

    def test_error_messages_are_one_line(self):
        s = self.topic_server()
        with s.client() as c:
            r = c.call("fetch", topic="no\nsuch\rtopic", offset=0)
            self.assertRefused(r, "UNKNOWN_TOPIC")
            r = c.call("produce", topic="in", records=[{"value": 1},
                                                       {"vaule\n": 2}])
            self.assertFalse(r["ok"], r)
            self.assertNotIn("\n", r["message"])

    def test_group_commit_past_the_end_is_refused(self):
        s = self.topic_server()
        with s.client() as c:
            c.produce("in", list(range(10)))
            r = c.call("group_commit", group="g", offsets=[
                {"topic": "in", "partition": 0, "offset": 5},
                {"topic": "in", "partition": 0, "offset": 11}])
            self.assertRefused(r, "OFFSET_OUT_OF_RANGE", "11", "end offset 10")
            # Nothing of the refused request was committed.
            offs = c.ok("group_fetch", group="g").get("offsets", [])
            self.assertEqual([o for o in offs if o.get("offset")], [], offs)
            c.ok("group_commit", group="g", offsets=[
                {"topic": "in", "partition": 0, "offset": 10}])
            offs = c.ok("group_fetch", group="g")["offsets"]
            self.assertEqual([(o["offset"], o["lag"]) for o in offs], [(10, 0)])

    def test_records_and_state_values_at_most_max_frame_bytes(self):
        # A processor cannot write a record or a view value that no
        # client could fetch: the record fails (a dead letter saying so),
        # the ones within the limit go through.
        s = self.topic_server({"max_frame_bytes": 1 << 20})
        with s.client() as c:
            c.ok("topic_create", topic="big_out")
            c.ok("proc_create", name="big", file=kh.fixture("big_values.lua"),
                 inputs=["in"], outputs=["big_out"], max_error_rate=1.0)
            c.produce("in", [{"size": 1000}, {"size": 2 << 20},
                             {"size": 2 << 20, "state": True},
                             {"size": 500 << 10, "state": True},
                             {"size": 2000}])
        st = kh.wait_proc(s, "big", lambda st: st["records_processed"] >= 5)
        self.assertEqual(st["errors"], 2, st)
        self.assertEqual(st["state"], "running", st)
        out = kh.consume_all(s, "big_out")
        self.assertEqual([len(r["value"]["blob"]) for r in out], [1000, 2000])
        dlq = kh.consume_all(s, "big.dlq")
        self.assertEqual(len(dlq), 2)
        for d in dlq:
            self.assertIn("too large", d["value"]["error"])
        with s.client() as c:
            v = c.ok("view_get", name="big", key="blob")
        self.assertEqual(len(v["value"]), 500 << 10)


if __name__ == "__main__":
    kh.main()
