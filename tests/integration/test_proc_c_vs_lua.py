#!/usr/bin/env python3
"""
test_proc_c_vs_lua.py - the C plugin tests/plugins/count_by_user.so and the
Lua fixture fixtures/count_by_user.lua implement the same processor: over
the same input they must produce the same output records (keys and values,
in order per key, and so per input partition) and the same view, in the
server and in the offline runner (`kappactl run`).

Both emit to the fixed topic "counts", so each runs in its own server.
"""

import collections
import os
import random
import tempfile

import kappa_harness as kh

N = 2000


def records():
    rng = random.Random(7)
    users = ["ann", "bob", "cy", "dee", "eve", "a-much-longer-user-name-%d" % 1,
             "zoë"]
    return [{"user": rng.choice(users), "i": i} for i in range(N)]


def per_key(outputs):
    seq = collections.defaultdict(list)
    for r in outputs:
        seq[r["key"]].append(r["value"])
    return dict(seq)


class CVsLuaTest(kh.ServerTest):
    class_server = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.recs = records()
        cls.tmp = tempfile.mkdtemp(prefix="kappa-cvl-")
        cls.events = kh.write_jsonl(os.path.join(cls.tmp, "events.jsonl"),
                                    cls.recs)
        cls.want = collections.Counter(r["user"] for r in cls.recs)

    @classmethod
    def tearDownClass(cls):
        import shutil
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def run_in_server(self, path):
        s = self.new_server()
        kh.create_topic(s, "events", partitions=2)
        with s.client() as c:
            kh.produce_keyed(c, "events", self.recs, batch=250)
        cp = s.ctl("proc", "create", "cbu", "--file", path,
                   "--input", "events", "--output", "counts")
        self.assertCtlOk(cp)
        st = kh.wait_caught_up(s, "cbu")
        self.assertEqual(st["records_processed"], N)
        self.assertEqual(st["errors"], 0)
        view = kh.view_scan(s, "cbu")
        out = kh.wait_for(
            lambda: (lambda o: o if len(o) >= N else None)(
                kh.consume_all(s, "counts")), 10, "%d outputs" % N)
        s.stop_ok(self)
        return st, view, out

    def run_offline(self, path, view):
        args = ["run", path, "--input", self.events, "--key-field", "user"]
        if view:
            args.append("--view")
        cp = kh.run_ctl(args)
        self.assertCtlOk(cp)
        return kh.json_lines(cp.stdout)

    def test_server_c_equals_lua(self):
        st_c, view_c, out_c = self.run_in_server(
            kh.test_plugin("count_by_user"))
        st_l, view_l, out_l = self.run_in_server(
            kh.fixture("count_by_user.lua"))
        self.assertEqual(st_c["lang"], "c")
        self.assertEqual(st_l["lang"], "lua")
        self.assertNotEqual(st_c["hash"], st_l["hash"])
        self.assertEqual(view_c, dict(self.want))
        self.assertEqual(view_l, view_c)
        self.assertEqual(len(out_c), N)
        self.assertEqual(len(out_l), N)
        # In order per key (each key lives in one input partition).
        self.assertEqual(per_key(out_c), per_key(out_l))
        self.assertEqual(
            sorted((r["key"], r["value"]["n"]) for r in out_c),
            sorted((r["key"], r["value"]["n"]) for r in out_l))
        for user, values in per_key(out_c).items():
            self.assertEqual(values, [{"user": user, "n": n}
                                      for n in range(1, self.want[user] + 1)])

    def test_offline_c_equals_lua_equals_server(self):
        emits_c = self.run_offline(kh.test_plugin("count_by_user"), False)
        emits_l = self.run_offline(kh.fixture("count_by_user.lua"), False)
        self.assertEqual(len(emits_c), N)
        # One input partition offline: the whole sequence is ordered.
        self.assertEqual(emits_c, emits_l)
        counts = collections.Counter()
        for rec, e in zip(self.recs, emits_c):
            counts[rec["user"]] += 1
            self.assertEqual(e, {"topic": "counts", "ts": 0, "key": rec["user"],
                                 "value": {"user": rec["user"],
                                           "n": counts[rec["user"]]}})
        # --view: the same emits, then the view as the last line.
        view_c = self.run_offline(kh.test_plugin("count_by_user"), True)
        view_l = self.run_offline(kh.fixture("count_by_user.lua"), True)
        self.assertEqual(view_c, emits_c + [{"view": dict(self.want)}])
        self.assertEqual(view_l, view_c)
        view_c = view_c[-1]["view"]

        # And the same as the server (Lua there).
        _, view_s, out_s = self.run_in_server(kh.fixture("count_by_user.lua"))
        self.assertEqual(view_s, view_c)
        self.assertEqual(per_key(out_s),
                         per_key([{"key": e["key"], "value": e["value"]}
                                  for e in emits_c]))

    def test_failing_record_same_in_both(self):
        # A value without "user" fails in both; the others still count.
        bad = [{"user": "ann"}, {"nouser": 1}, {"user": "ann"}]
        path = kh.write_jsonl(os.path.join(self.tmp, "bad.jsonl"), bad)
        for plugin in (kh.test_plugin("count_by_user"),
                       kh.fixture("count_by_user.lua")):
            cp = kh.run_ctl(["run", plugin, "--input", path, "--view"])
            self.assertCtlFails(cp, "line 2")
            self.assertEqual(kh.json_lines(cp.stdout)[-1],
                             {"view": {"ann": 2}}, plugin)


if __name__ == "__main__":
    kh.main()
