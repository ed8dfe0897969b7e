#!/usr/bin/env python3
"""
test_proc_admin.py - the processor admin verbs through kappactl: proc
create / status / list / pause / resume / delete, view get / scan, the
create errors (unknown topic, syntax error, init that raises, wrong ABI,
missing file, duplicate name), --from latest / @TIME and --config.
"""

import collections
import os
import random
import re
import time

import kappa_harness as kh


def user_records(n, users=10, seed=1, start=0):
    rng = random.Random(seed)
    return [{"user": "u%d" % rng.randrange(users), "i": start + i}
            for i in range(n)]


def wait_outputs(server, topic, n, timeout=10.0):
    """The records of topic once it holds n (fails if it holds more)."""
    def check():
        out = kh.consume_all(server, topic)
        if len(out) > n:
            raise AssertionError("%s holds %d records, want %d"
                                 % (topic, len(out), n))
        return out if len(out) == n else None
    return kh.wait_for(check, timeout, "%d records in %s" % (n, topic))


class ProcAdminTest(kh.ServerTest):

    def create(self, server, name, path, inputs, *extra):
        cp = server.ctl("proc", "create", name, "--file", path,
                        "--input", inputs, *extra)
        self.assertCtlOk(cp)
        st = kh.json_lines(cp.stdout)[0]
        self.assertEqual(st["name"], name)
        return st

    def topic_names(self, server):
        return {t["name"] for t in kh.ctl_json(server, "topic", "list")}

    def proc_names(self, server):
        return [p["name"] for p in kh.ctl_json(server, "proc", "list")]

    # ------------------------------------------------------------------
    def test_lifecycle(self):
        s = self.new_server()
        kh.create_topic(s, "events", partitions=2)
        recs = user_records(1000)
        with s.client() as c:
            kh.produce_keyed(c, "events", recs)
        want = collections.Counter(r["user"] for r in recs)

        st = self.create(s, "cbu", kh.fixture("count_by_user.lua"), "events",
                         "--output", "counts")
        self.assertEqual(st["lang"], "lua")
        self.assertEqual(st["version"], 1)
        self.assertEqual(st["dlq"], "cbu.dlq")
        st = kh.wait_caught_up(s, "cbu")
        self.assertEqual(st["state"], "running")
        self.assertIsNone(st["reason"])
        self.assertEqual(st["version"], 1)
        self.assertRegex(st["hash"], r"^[0-9a-f]{16}$")
        self.assertEqual(st["file"], kh.fixture("count_by_user.lua"))
        self.assertEqual(st["outputs"], ["counts"])
        self.assertEqual(sorted(i["partition"] for i in st["inputs"]), [0, 1])
        for i in st["inputs"]:
            self.assertEqual(i["topic"], "events")
            self.assertEqual(i["offset"], i["end_offset"])
            self.assertEqual(i["lag"], 0)
        self.assertEqual(sum(i["end_offset"] for i in st["inputs"]), 1000)
        self.assertEqual(st["lag"], 0)
        self.assertEqual(st["records_processed"], 1000)
        self.assertEqual(st["errors"], 0)
        self.assertEqual(st["dead_lettered"], 0)
        self.assertEqual(st["view_keys"], len(want))

        # The view, by key and by scan.
        for user, n in want.items():
            cp = s.ctl("view", "get", "cbu", user)
            self.assertCtlOk(cp)
            self.assertEqual(kh.json_lines(cp.stdout), [n], user)
        cp = s.ctl("view", "get", "cbu", "nobody")
        self.assertCtlOk(cp)
        self.assertEqual(kh.json_lines(cp.stdout), [None])
        items = kh.ctl_json(s, "view", "scan", "cbu")
        self.assertEqual([it["key"] for it in items], sorted(want))
        self.assertEqual({it["key"]: it["value"] for it in items}, dict(want))
        items = kh.ctl_json(s, "view", "scan", "cbu", "--prefix", "u1")
        self.assertEqual({it["key"]: it["value"] for it in items},
                         {k: v for k, v in want.items() if k.startswith("u1")})
        items = kh.ctl_json(s, "view", "scan", "cbu", "--limit", "3")
        self.assertEqual([it["key"] for it in items], sorted(want)[:3])

        # The output topic: one record per input; per user n runs 1..count.
        out = wait_outputs(s, "counts", 1000)
        self.assertEqual(len(out), 1000)
        last = {}
        seq = collections.defaultdict(list)
        for r in out:
            self.assertEqual(r["key"], r["value"]["user"])
            seq[r["key"]].append(r["value"]["n"])
            last[r["key"]] = r["value"]["n"]
        self.assertEqual(last, dict(want))
        for user, ns in seq.items():
            self.assertEqual(ns, list(range(1, want[user] + 1)), user)

        # Pause: new records wait, the counters stand still.
        st = kh.ctl_json(s, "proc", "pause", "cbu")[0]
        self.assertEqual(st["state"], "paused")
        more = user_records(100, seed=2, start=1000)
        with s.client() as c:
            kh.produce_keyed(c, "events", more)
        st = kh.wait_proc(s, "cbu", lambda st: st["lag"] == 100)
        self.assertEqual(st["state"], "paused")
        time.sleep(0.5 * kh.SLOW)
        st = kh.proc_status(s, "cbu")
        self.assertEqual(st["state"], "paused")
        self.assertEqual(st["lag"], 100)
        self.assertEqual(st["records_processed"], 1000)
        self.assertEqual(kh.view_scan(s, "cbu"), dict(want))

        st = kh.ctl_json(s, "proc", "resume", "cbu")[0]
        self.assertIn(st["state"], ("running", "starting"))
        st = kh.wait_caught_up(s, "cbu")
        self.assertEqual(st["state"], "running")
        self.assertEqual(st["records_processed"], 1100)
        want.update(r["user"] for r in more)
        self.assertEqual(kh.view_scan(s, "cbu"), dict(want))
        wait_outputs(s, "counts", 1100)

        # proc list: sorted by name, one status per line.
        self.create(s, "acount", kh.fixture("count_by_user.lua"), "events",
                    "--output", "counts")
        self.assertEqual(self.proc_names(s), ["acount", "cbu"])
        kh.wait_caught_up(s, "acount")

        # Delete: status fails, the view is gone, outputs and dlq stay.
        self.assertEqual(kh.ctl_json(s, "proc", "delete", "cbu"),
                         [{"deleted": "cbu"}])
        self.assertCtlFails(s.ctl("proc", "status", "cbu"))
        self.assertCtlFails(s.ctl("view", "get", "cbu", "u1"))
        self.assertCtlFails(s.ctl("view", "scan", "cbu"))
        self.assertCtlFails(s.ctl("proc", "delete", "cbu"))
        self.assertEqual(self.proc_names(s), ["acount"])
        self.assertTrue({"counts", "cbu.dlq"} <= self.topic_names(s))
        # The other processor is untouched.
        self.assertEqual(kh.view_scan(s, "acount"), dict(want))

        # A new processor of the same name starts afresh.
        self.create(s, "cbu", kh.fixture("count_by_user.lua"), "events",
                    "--output", "counts")
        st = kh.wait_caught_up(s, "cbu")
        self.assertEqual(st["records_processed"], 1100)
        self.assertEqual(kh.view_scan(s, "cbu"), dict(want))
        s.stop_ok(self)

    def test_outputs_visible_when_caught_up(self):
        # Once proc status says every input record was processed, the
        # outputs of those records are (promptly) readable: a consumer
        # that waits for lag 0 and then reads the output topic sees them
        # all, not only the part whose fsync happened to cover them.
        s = self.new_server()
        kh.create_topic(s, "events", partitions=2)
        self.create(s, "cbu", kh.fixture("count_by_user.lua"), "events",
                    "--output", "counts")
        total = 0
        for round in range(5):
            kh.ctl_json(s, "proc", "pause", "cbu")
            with s.client() as c:
                kh.produce_keyed(c, "events",
                                 user_records(200, seed=round, start=total))
            total += 200
            kh.ctl_json(s, "proc", "resume", "cbu")
            st = kh.wait_caught_up(s, "cbu")
            self.assertEqual(st["records_processed"], total)
            time.sleep(0.4 * kh.SLOW)
            self.assertEqual(len(kh.consume_all(s, "counts")), total,
                             "round %d: outputs readable 0.4 s after the "
                             "processor caught up" % round)
        s.stop_ok(self)

    # ------------------------------------------------------------------
    def assertCreateFails(self, name, path, inputs, contains=None, *extra):
        s = self.server
        before = self.topic_names(s)
        cp = s.ctl("proc", "create", name, "--file", path, "--input", inputs,
                   *extra)
        self.assertCtlFails(cp, contains)
        self.assertNotIn(name, self.proc_names(s))
        self.assertCtlFails(s.ctl("proc", "status", name))
        return cp.stderr.strip()

    def test_create_unknown_input_topic(self):
        name = kh.unique("p")
        msg = self.assertCreateFails(name, kh.fixture("count_by_user.lua"),
                                     "no-such-topic")
        self.assertIn("no-such-topic", msg)

    def test_create_syntax_error(self):
        topic = kh.unique("in")
        kh.create_topic(self.server, topic)
        name = kh.unique("p")
        path = kh.fixture("syntax_error.lua")
        msg = self.assertCreateFails(name, path, topic)
        # Reported as a syntax error, naming the path the client gave.
        self.assertIn("syntax error: %s:5: " % path, msg)
        self.assertNotIn("init failed", msg)
        # kappactl sends the absolute path; its message names the file as
        # the user gave it.
        given = os.path.join(os.path.dirname(path), ".",
                             os.path.basename(path))
        r = kh.run_ctl(["proc", "create", name, "--file", given, "--input",
                        topic], addr=self.server.addr)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("syntax error: %s:5: " % given, r.stderr)
        # Offline too: `kappactl run` says the same, not "init failed".
        events = os.path.join(self.server.root, "none.jsonl")
        open(events, "w").close()
        r = kh.run_ctl(["run", path, "--input", events])
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("syntax error: ", r.stderr)
        self.assertIn("syntax_error.lua:5: ", r.stderr)
        self.assertNotIn("init failed", r.stderr)

    def test_create_syntax_error_leaves_no_dlq_topic(self):
        # PROTOCOL.md: on failure "nothing of the processor remains".
        topic = kh.unique("in")
        kh.create_topic(self.server, topic)
        name = kh.unique("p")
        self.assertCreateFails(name, kh.fixture("syntax_error.lua"), topic)
        self.assertNotIn(name + ".dlq", self.topic_names(self.server))

    def test_create_init_raises(self):
        topic = kh.unique("in")
        kh.create_topic(self.server, topic)
        name = kh.unique("p")
        msg = self.assertCreateFails(name, kh.fixture("init_raises.lua"),
                                     topic)
        self.assertIn("init_raises.lua:6", msg)
        self.assertIn("init refuses to start", msg)
        # The name is free again: a good processor can take it.
        self.create(self.server, name, kh.fixture("config_echo.lua"), topic)
        self.assertEqual(kh.view_scan(self.server, name),
                         {"config:tag": "none"})

    def test_create_bad_abi(self):
        topic = kh.unique("in")
        kh.create_topic(self.server, topic)
        name = kh.unique("p")
        msg = self.assertCreateFails(name, kh.test_plugin("bad_abi"), topic)
        self.assertIn("99.3", msg)
        with open(os.path.join(kh.REPO, "plugins", "kappa_processor.h")) as f:
            header = f.read()
        major = re.search(r"#define KP_PROC_ABI_MAJOR (\d+)", header).group(1)
        minor = re.search(r"#define KP_PROC_ABI_MINOR (\d+)", header).group(1)
        self.assertIn("%s.%s" % (major, minor), msg)

    def test_create_missing_file(self):
        topic = kh.unique("in")
        kh.create_topic(self.server, topic)
        name = kh.unique("p")
        msg = self.assertCreateFails(name, kh.fixture("no_such_file.lua"),
                                     topic)
        self.assertIn("no_such_file.lua", msg)

    def test_create_duplicate_name(self):
        s = self.server
        topic = kh.unique("in")
        kh.create_topic(s, topic)
        name = kh.unique("p")
        first = self.create(s, name, kh.fixture("config_echo.lua"), topic,
                            "--config", '{"tag":"first"}')
        cp = s.ctl("proc", "create", name, "--file",
                   kh.fixture("count_by_user.lua"), "--input", topic)
        self.assertCtlFails(cp)
        self.assertIn(name, cp.stderr)
        st = kh.proc_status(s, name)
        self.assertEqual(st["hash"], first["hash"])
        self.assertEqual(kh.view_scan(s, name), {"config:tag": "first"})
        self.assertEqual(self.proc_names(s).count(name), 1)

    # ------------------------------------------------------------------
    def ts_topic(self):
        """A topic with 10 records, ts 1_000_000 + 1000 * i."""
        topic = kh.unique("ts")
        kh.create_topic(self.server, topic)
        with self.server.client() as c:
            c.produce(topic, [{"i": i} for i in range(10)],
                      ts=[1000000 + 1000 * i for i in range(10)])
        return topic

    def test_from_latest(self):
        s = self.server
        topic = self.ts_topic()
        name = kh.unique("p")
        st = self.create(s, name, kh.fixture("config_echo.lua"), topic,
                         "--from", "latest")
        self.assertEqual(st["inputs"][0]["offset"], 10)
        with s.client() as c:
            c.produce(topic, [{"i": 10}], ts=[2000000])
        kh.wait_proc(s, name, lambda st: st["records_processed"] == 1
                     and st["lag"] == 0)
        self.assertEqual(kh.view_scan(s, name, prefix="o:"),
                         {"o:0:10": {"tag": "none", "ts": 2000000}})

    def test_from_time(self):
        s = self.server
        topic = self.ts_topic()
        name = kh.unique("p")
        # 1004500 falls between records 4 and 5: start at 5.
        st = self.create(s, name, kh.fixture("config_echo.lua"), topic,
                         "--from", "@1004500")
        self.assertEqual(st["inputs"][0]["offset"], 5)
        st = kh.wait_caught_up(s, name)
        self.assertEqual(st["records_processed"], 5)
        self.assertEqual(kh.view_scan(s, name, prefix="o:"),
                         {"o:0:%d" % i: {"tag": "none",
                                         "ts": 1000000 + 1000 * i}
                          for i in range(5, 10)})
        # Exactly on a record's ts: that record is the first.
        name2 = kh.unique("p")
        st = self.create(s, name2, kh.fixture("config_echo.lua"), topic,
                         "--from", "@1007000")
        self.assertEqual(st["inputs"][0]["offset"], 7)
        kh.wait_caught_up(s, name2)
        self.assertEqual(sorted(kh.view_scan(s, name2, prefix="o:")),
                         ["o:0:7", "o:0:8", "o:0:9"])

    def test_config_reaches_ctx(self):
        s = self.server
        topic = self.ts_topic()
        name = kh.unique("p")
        self.create(s, name, kh.fixture("config_echo.lua"), topic,
                    "--config", '{"tag":"T","nested":{"a":[1,2,3],"b":"x"}}')
        kh.wait_caught_up(s, name)
        view = kh.view_scan(s, name)
        self.assertEqual(view["config:tag"], "T")
        self.assertEqual(view["config:nested"], {"a": [1, 2, 3], "b": "x"})
        self.assertEqual(view["o:0:3"], {"tag": "T", "ts": 1003000})
        # A config that is not JSON is refused before anything is created.
        name2 = kh.unique("p")
        self.assertCreateFails(name2, kh.fixture("config_echo.lua"), topic,
                               None, "--config", "{not json")


if __name__ == "__main__":
    kh.main()
