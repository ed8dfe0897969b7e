#!/usr/bin/env python3
"""
test_proc_faults.py - processors that fail: records that raise go to the
dead-letter topic NAME.dlq (error text with file and line, source topic,
partition and offset) and are counted while processing continues; past
max_error_rate the processor pauses (and resumes on request); a processor
that loops past its time budget or allocates past its memory limit is
stopped (state "failed", with the reason), while the server and the other
processors carry on.
"""

import collections
import time

import kappa_harness as kh


def raise_line():
    """The line of fixtures/raise_on_bad.lua that raises."""
    with open(kh.fixture("raise_on_bad.lua")) as f:
        for n, line in enumerate(f, 1):
            if "RAISE_LINE" in line:
                return n
    raise AssertionError("no RAISE_LINE marker in raise_on_bad.lua")


class ProcFaultsTest(kh.ServerTest):

    def create(self, server, name, path, inputs, *extra):
        cp = server.ctl("proc", "create", name, "--file", path,
                        "--input", inputs, *extra)
        self.assertCtlOk(cp)
        return kh.json_lines(cp.stdout)[0]

    def assertServerServes(self, server):
        """produce and fetch still work on a fresh topic."""
        topic = kh.unique("alive")
        kh.create_topic(server, topic)
        with server.client() as c:
            c.produce(topic, [{"x": i} for i in range(10)])
            got = c.fetch_all(topic)
        self.assertEqual([r["value"] for r in got],
                         [{"x": i} for i in range(10)])
        # The server is up; /health answers (503 while a processor is
        # stopped for a budget: that is a reason it must report).
        self.assertIn(server.http_get("/health")[0], (200, 503))

    def count_elsewhere(self, server, n=300):
        """Another processor over another topic: processes n records."""
        topic = kh.unique("other")
        name = kh.unique("other")
        kh.create_topic(server, topic)
        self.create(server, name, kh.fixture("config_echo.lua"), topic)
        with server.client() as c:
            c.produce(topic, [{"i": i} for i in range(n)])
        st = kh.wait_caught_up(server, name)
        self.assertEqual(st["state"], "running")
        self.assertEqual(st["records_processed"], n)
        self.assertEqual(len(kh.view_scan(server, name, prefix="o:")), n)

    # ------------------------------------------------------------------
    def test_dead_letters(self):
        s = self.server
        topic = kh.unique("in")
        name = kh.unique("dl")
        out = kh.unique("counts")
        kh.create_topic(s, topic, partitions=2)
        recs = [{"user": "u%d" % (i % 4), "i": i, "bad": i % 10 == 3}
                for i in range(200)]
        with s.client() as c:
            kh.produce_keyed(c, topic, recs)
        self.create(s, name, kh.fixture("raise_on_bad.lua"), topic,
                    "--output", out, "--config",
                    '{"output":"%s"}' % out)
        st = kh.wait_caught_up(s, name)
        nbad = sum(r["bad"] for r in recs)
        self.assertEqual(st["state"], "running")
        self.assertEqual(st["records_processed"], 200)
        self.assertEqual(st["errors"], nbad)
        self.assertEqual(st["dead_lettered"], nbad)
        self.assertEqual(st["dlq"], name + ".dlq")
        self.assertIn("raise_on_bad.lua:%d" % raise_line(), st["last_error"])

        # The good ones counted; the bad ones' view changes undone.
        good = collections.Counter(r["user"] for r in recs if not r["bad"])
        self.assertEqual(kh.view_scan(s, name), dict(good))
        # ... and their emits too.
        outs = kh.wait_for(
            lambda: (lambda o: o if len(o) >= 200 - nbad else None)(
                kh.consume_all(s, out)), 10, "outputs")
        self.assertEqual(len(outs), 200 - nbad)
        self.assertEqual(sorted(o["value"]["i"] for o in outs),
                         sorted(r["i"] for r in recs if not r["bad"]))

        # The dead letters: error with file:line, where the record was.
        with s.client() as c:
            where = {}
            for p in (0, 1):
                for r in c.fetch_all(topic, partition=p):
                    key = r["key"]
                    if isinstance(key, bytes):
                        key = key.decode()
                    where[r["value"]["i"]] = (p, r["offset"], key)
        dlq = kh.wait_for(
            lambda: (lambda o: o if len(o) >= nbad else None)(
                kh.consume_all(s, name + ".dlq")), 10, "dead letters")
        self.assertEqual(len(dlq), nbad)
        seen = set()
        for d in dlq:
            v = d["value"]
            i = v["value"]["i"]
            seen.add(i)
            self.assertTrue(v["value"]["bad"])
            self.assertIn("raise_on_bad.lua:%d" % raise_line(), v["error"])
            self.assertIn("bad record %d" % i, v["error"])
            self.assertEqual(v["topic"], topic)
            self.assertEqual((v["partition"], v["offset"]), where[i][:2])
            self.assertEqual(d["key"], where[i][2])
        self.assertEqual(seen, {r["i"] for r in recs if r["bad"]})

    # ------------------------------------------------------------------
    def test_error_rate_pauses(self):
        s = self.server
        topic = kh.unique("in")
        name = kh.unique("er")
        out = kh.unique("counts")
        kh.create_topic(s, topic)
        recs = [{"user": "u", "i": i, "bad": i % 4 != 0} for i in range(200)]
        with s.client() as c:
            c.produce(topic, recs)
        # The rate is judged once error_window_min records were seen: a
        # window of the whole backlog, so that the pause comes after it and
        # the resume below runs into good records only.
        self.create(s, name, kh.fixture("raise_on_bad.lua"), topic,
                    "--output", out, "--config", '{"output":"%s"}' % out,
                    "--max-error-rate", "0.1", "--error-window-min", "200")
        st = kh.wait_proc(s, name, lambda st: st["state"] == "paused")
        self.assertEqual(st["records_processed"], 200)
        self.assertIn("error rate", st["reason"])
        self.assertGreater(st["errors"], 0)
        self.assertEqual(st["errors"], st["dead_lettered"])
        processed = st["records_processed"]
        # Paused: new records wait.
        with s.client() as c:
            c.produce(topic, [{"user": "u", "i": 1000 + i, "bad": False}
                              for i in range(50)])
        st = kh.wait_proc(s, name, lambda st: st["lag"] >= 50)
        time.sleep(0.3 * kh.SLOW)
        st = kh.proc_status(s, name)
        self.assertEqual(st["state"], "paused")
        self.assertEqual(st["records_processed"], processed)

        # Resume: it runs again and takes the new (good) records.
        st = kh.ctl_json(s, "proc", "resume", name)[0]
        self.assertIn(st["state"], ("running", "starting"))
        st = kh.wait_caught_up(s, name)
        self.assertEqual(st["records_processed"], 250)
        self.assertEqual(st["state"], "running")
        self.assertEqual(kh.view_scan(s, name), {"u": 50 + 50})

        # A processor with a generous rate keeps running over the same input.
        name2 = kh.unique("er")
        self.create(s, name2, kh.fixture("raise_on_bad.lua"), topic,
                    "--output", out, "--config", '{"output":"%s"}' % out,
                    "--max-error-rate", "0.9")
        st = kh.wait_caught_up(s, name2)
        self.assertEqual(st["state"], "running")
        self.assertEqual(st["errors"], 150)

    # ------------------------------------------------------------------
    def spin_server(self):
        s = self.new_server()
        topic = kh.unique("in")
        kh.create_topic(s, topic)
        with s.client() as c:
            c.produce(topic, [{"i": 1}, {"i": 2}, {"spin": True}, {"i": 3}])
        name = kh.unique("spin")
        st = self.create(s, name, kh.fixture("spin.lua"), topic,
                         "--time-budget-ms", "300")
        st = kh.wait_proc(s, name, lambda st: st["state"] == "failed")
        return s, name, st

    def test_time_budget(self):
        s, name, st = self.spin_server()
        self.assertIn("time budget", st["reason"])
        self.assertLess(st["inputs"][0]["offset"], 4)
        # It stays failed.
        time.sleep(0.3 * kh.SLOW)
        self.assertEqual(kh.proc_status(s, name)["state"], "failed")
        self.assertTrue(s.alive())
        self.assertServerServes(s)
        self.count_elsewhere(s)
        # It can be deleted.
        self.assertEqual(kh.ctl_json(s, "proc", "delete", name),
                         [{"deleted": name}])
        self.assertServerServes(s)

    def test_time_budget_stops_the_loop(self):
        # "Stopped" means stopped: once the processor is failed (and then
        # deleted), kappad must not keep burning a core on its loop.
        s, name, st = self.spin_server()
        kh.ctl_json(s, "proc", "delete", name)
        time.sleep(0.2)
        before = kh.cpu_seconds(s.proc.pid)
        time.sleep(1.0)
        used = kh.cpu_seconds(s.proc.pid) - before
        self.assertLess(used, 0.5, "kappad used %.2f s of CPU in 1 s with no "
                        "processor left (the looping call still runs: %s)"
                        % (used, st["reason"]))

    # ------------------------------------------------------------------
    def test_memory_budget(self):
        s = self.new_server()
        topic = kh.unique("in")
        kh.create_topic(s, topic)
        with s.client() as c:
            c.produce(topic, [{"i": 1}, {"i": 2}, {"hog": True}, {"i": 3}])
        name = kh.unique("hog")
        self.create(s, name, kh.fixture("hog.lua"), topic,
                    "--memory-limit", "20000000")
        st = kh.wait_proc(s, name, lambda st: st["state"] == "failed")
        self.assertIn("memory", st["reason"])
        self.assertEqual(kh.view_scan(s, name), {"seen": 2})
        self.assertTrue(s.alive())
        with open("/proc/%d/status" % s.proc.pid) as f:
            rss = [l for l in f if l.startswith("VmRSS:")][0]
        # The limit is 20 MB; allow generously for the rest of the server
        # (and ASan's shadow memory).
        self.assertLess(int(rss.split()[1]) * 1024,
                        (200 if kh.SLOW > 1 else 100) * 1000 * 1000, rss)
        self.assertServerServes(s)
        self.count_elsewhere(s)
        s.stop_ok(self)


if __name__ == "__main__":
    kh.main()
