"""
test_roundtrip.py - what a user sees through kappactl: produce JSON lines,
consume them back unchanged and in order, keys route by key, event time and
positions (--from, --count, --follow), bad input lines, topic admin.
"""

import datetime
import json
import queue
import threading
import time

import kappa_harness as kh

# 2024-01-01T00:00:00Z
BASE_TS = 1704067200000


def fnv1a32(data):
    h = 2166136261
    for b in data:
        h ^= b
        h = (h * 16777619) & 0xFFFFFFFF
    return h


def lines_of(values):
    return "".join(json.dumps(v) + "\n" for v in values)


class RoundTrip(kh.ServerTest):

    def create(self, *args):
        name = kh.unique("rt")
        self.assertCtlOk(self.server.ctl("topic", "create", name, *args))
        return name

    def produce(self, topic, values, *args):
        cp = self.server.ctl("produce", topic, *args, input=lines_of(values))
        self.assertCtlOk(cp)
        out = kh.json_lines(cp.stdout)
        self.assertEqual(len(out), 1, cp.stdout)
        self.assertEqual(out[0]["acked"], len(values))
        return out[0]

    def consume(self, topic, *args):
        cp = self.server.ctl("consume", topic, *args)
        self.assertCtlOk(cp)
        return kh.json_lines(cp.stdout)

    def test_100k_records_round_trip_in_order(self):
        n = 100000
        topic = self.create()
        values = [{"i": i, "user": "u%d" % (i % 97), "ok": i % 2 == 0,
                   "s": "x" * (i % 13)} for i in range(n)]
        self.produce(topic, values)
        recs = self.consume(topic)
        self.assertEqual(len(recs), n)
        for i, r in enumerate(recs):
            if (r["offset"] != i or r["value"] != values[i]
                    or r["partition"] != 0 or r["topic"] != topic):
                self.fail("record %d: got %r, want offset %d value %r"
                          % (i, r, i, values[i]))
        self.assertEqual(set(recs[0]), {"topic", "partition", "offset", "ts",
                                        "key", "value"})
        self.assertIsNone(recs[0]["key"])
        now = time.time() * 1000
        self.assertTrue(now - 600000 < recs[0]["ts"] <= now + 1000,
                        "server ts %r not near now" % recs[0]["ts"])

    def test_key_field_routes_by_key(self):
        topic = self.create("--partitions", "3")
        values = [{"user": "user-%d" % (i % 30), "n": i} for i in range(3000)]
        self.produce(topic, values, "--key-field", "user")
        recs = self.consume(topic)
        self.assertEqual(len(recs), 3000)
        where = {}
        for r in recs:
            self.assertEqual(r["key"], r["value"]["user"])
            where.setdefault(r["key"], set()).add(r["partition"])
        for key, parts in where.items():
            self.assertEqual(len(parts), 1, "key %s in partitions %s"
                             % (key, parts))
            want = fnv1a32(key.encode()) % 3
            self.assertEqual(parts, {want}, "key %s routed to %s, "
                             "protocol says fnv1a32 %% 3 = %d" % (key, parts, want))
        self.assertEqual({p for ps in where.values() for p in ps}, {0, 1, 2})
        # Per partition: offsets contiguous from 0, input order kept.
        for p in range(3):
            mine = [r for r in recs if r["partition"] == p]
            self.assertEqual([r["offset"] for r in mine], list(range(len(mine))))
            ns = [r["value"]["n"] for r in mine]
            self.assertEqual(ns, sorted(ns))
            one = self.consume(topic, "--partition", str(p))
            self.assertEqual(one, mine)

    def test_ts_field_and_positions(self):
        topic = self.create()
        values = [{"n": i, "t": BASE_TS + i * 1000} for i in range(100)]
        self.produce(topic, values, "--ts-field", "t")
        recs = self.consume(topic)
        self.assertEqual([r["ts"] for r in recs], [v["t"] for v in values])

        def offsets(*args):
            return [r["offset"] for r in self.consume(topic, *args)]

        self.assertEqual(offsets("--from", "@%d" % (BASE_TS + 50000)),
                         list(range(50, 100)))
        self.assertEqual(offsets("--from", "@%d" % (BASE_TS + 49500)),
                         list(range(50, 100)))
        self.assertEqual(offsets("--from", "@2024-01-01T00:01:00Z"),
                         list(range(60, 100)))
        self.assertEqual(offsets("--from", "@2030-01-01T00:00:00Z"), [])
        self.assertEqual(offsets("--from", "90"), list(range(90, 100)))
        self.assertEqual(offsets("--from", "10", "--count", "5"),
                         list(range(10, 15)))
        self.assertEqual(offsets("--count", "3"), [0, 1, 2])
        self.assertEqual(offsets("--from", "earliest", "--count", "1"), [0])
        self.assertEqual(offsets("--from", "latest"), [])

    def test_ts_field_rfc3339(self):
        topic = self.create()
        t = datetime.datetime(2024, 3, 1, 12, 0, 0,
                              tzinfo=datetime.timezone.utc)
        self.produce(topic, [{"t": "2024-03-01T12:00:00Z"},
                             {"t": "2024-03-01T12:00:01.5Z"}], "--ts-field", "t")
        ms = int(t.timestamp() * 1000)
        self.assertEqual([r["ts"] for r in self.consume(topic)],
                         [ms, ms + 1500])

    def test_follow_sees_new_records(self):
        topic = self.create()
        self.produce(topic, [{"n": i} for i in range(5)])
        p = self.server.ctl_popen("consume", topic, "--follow",
                                  stdout=kh.subprocess.PIPE,
                                  stderr=kh.subprocess.PIPE, text=True)
        lines = queue.Queue()

        def reader():
            for line in p.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=reader, daemon=True).start()

        def take(n):
            got = []
            deadline = time.monotonic() + 10 * kh.SLOW
            while len(got) < n:
                try:
                    line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if line is None:
                    break
                got.append(json.loads(line))
            return got

        try:
            first = take(5)
            self.assertEqual([r["value"]["n"] for r in first], list(range(5)))
            time.sleep(0.3)
            self.produce(topic, [{"n": i} for i in range(5, 15)])
            later = take(10)
            self.assertEqual([r["value"]["n"] for r in later], list(range(5, 15)))
            self.assertEqual([r["offset"] for r in later], list(range(5, 15)))
        finally:
            p.terminate()
            try:
                rc = p.wait(10 * kh.SLOW)
            except kh.subprocess.TimeoutExpired:
                p.kill()
                rc = p.wait()
                self.fail("consume --follow ignored SIGTERM")
        self.assertEqual(rc, 0, "consume --follow exit status on SIGTERM; "
                         "stderr: %r" % p.stderr.read())
        self.assertTrue(lines.empty() or lines.get() is None)

    def test_invalid_json_line(self):
        topic = self.create()
        text = '{"n": 1}\n{"n": 2}\n{"n": oops\n{"n": 4}\n\n{"n": 5}\n'
        cp = self.server.ctl("produce", topic, input=text)
        self.assertNotEqual(cp.returncode, 0)
        self.assertIn("line 3", cp.stderr)
        self.assertEqual(len(cp.stderr.splitlines()), 1, cp.stderr)
        out = kh.json_lines(cp.stdout)
        if out:
            self.assertEqual(out[-1].get("acked"), 4)
        self.assertEqual([r["value"] for r in self.consume(topic)],
                         [{"n": 1}, {"n": 2}, {"n": 4}, {"n": 5}])

    def test_topic_admin(self):
        name = kh.unique("admin")
        cp = self.server.ctl("topic", "create", name, "--partitions", "2",
                             "--fsync", "never", "--retention-ms", "3600000",
                             "--retention-bytes", "1000000")
        self.assertCtlOk(cp)
        desc = kh.json_lines(cp.stdout)
        self.assertEqual(len(desc), 1)
        desc = desc[0]
        self.assertEqual(desc["name"], name)
        self.assertEqual(desc["partitions"], 2)
        self.assertEqual(desc["fsync"], "never")
        self.assertEqual(desc["retention_ms"], 3600000)
        self.assertEqual(desc["retention_bytes"], 1000000)

        self.assertCtlFails(self.server.ctl("topic", "create", name))

        listed = kh.json_lines(self.assertCtlOkOut("topic", "list"))
        names = [t["name"] for t in listed]
        self.assertIn(name, names)
        self.assertEqual(names, sorted(names))

        self.produce(name, [{"a": 1}, {"a": 2}, {"a": 3}], "--partition", "1")
        d = kh.json_lines(self.assertCtlOkOut("topic", "describe", name))
        self.assertEqual(len(d), 1)
        d = d[0]
        for field in ("name", "partitions", "fsync", "partition_stats"):
            self.assertIn(field, d)
        self.assertEqual(d["fsync"], "never")
        stats = sorted(d["partition_stats"], key=lambda s: s["partition"])
        self.assertEqual([s["partition"] for s in stats], [0, 1])
        self.assertEqual([s["end_offset"] for s in stats], [0, 3])

        self.assertCtlOk(self.server.ctl("topic", "delete", name))
        listed = kh.json_lines(self.assertCtlOkOut("topic", "list"))
        self.assertNotIn(name, [t["name"] for t in listed])
        self.assertCtlFails(self.server.ctl("topic", "describe", name))
        self.assertCtlFails(self.server.ctl("consume", name))
        self.assertCtlFails(self.server.ctl("topic", "delete", name))
        # The name can be used again, empty.
        self.assertCtlOk(self.server.ctl("topic", "create", name))
        self.assertEqual(self.consume(name), [])

    def test_produce_unknown_topic_fails(self):
        cp = self.server.ctl("produce", kh.unique("nope"), input='{"a":1}\n')
        self.assertNotEqual(cp.returncode, 0)
        self.assertEqual(len(cp.stderr.splitlines()), 1, cp.stderr)

    def assertCtlOkOut(self, *args):
        cp = self.server.ctl(*args)
        self.assertCtlOk(cp)
        return cp.stdout


class AutoCreate(kh.ServerTest):
    server_config = {"auto_create_topics": "true"}

    def test_produce_creates_topic(self):
        topic = kh.unique("auto")
        cp = self.server.ctl("produce", topic, input='{"a":1}\n{"a":2}\n')
        self.assertCtlOk(cp)
        cp = self.server.ctl("consume", topic)
        self.assertCtlOk(cp)
        self.assertEqual([r["value"] for r in kh.json_lines(cp.stdout)],
                         [{"a": 1}, {"a": 2}])


if __name__ == "__main__":
    kh.main()
