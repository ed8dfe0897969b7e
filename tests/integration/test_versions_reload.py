#!/usr/bin/env python3
"""
test_versions_reload.py - hot reload over the raw protocol (proc_reload,
proc_create's watch): a reload that fails (syntax error, init that raises)
keeps the old code running and names file:line; a good reload bumps the
revision, changes the hash and keeps the view; 100 reloads while records
flow lose and duplicate nothing (checked by the outputs' provenance); a C
plugin reloads to another file while records flow; --watch picks up a new
file content and reports a broken one without stopping.
"""

import collections
import os
import shutil
import tempfile
import time

import kappa_harness as kh


def emit_fixture(tag):
    return kh.fixture("versions_emit_%s.lua" % tag)


class VersionsReloadTest(kh.ServerTest):
    class_server = False

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="kappa-vt-reload-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def create(self, c, name, path, inputs, outputs, **kw):
        r = c.call("proc_create", name=name, file=path, inputs=inputs,
                   outputs=outputs, **kw)
        self.assertIs(r.get("ok"), True, repr(r))
        return r["proc"]

    def assertViewEquals(self, c, name, want):
        for user, n in sorted(want.items()):
            r = c.ok("view_get", name=name, key=user)
            self.assertEqual((r["found"], r["value"]), (True, n), user)
        items = c.ok("view_scan", name=name, limit=100000)["items"]
        got = {(it["key"].decode() if isinstance(it["key"], bytes)
                else it["key"]): it["value"] for it in items}
        self.assertEqual(got, dict(want))

    # ------------------------------------------------------------------
    def test_failed_reloads_keep_old_code_good_reload_keeps_view(self):
        s = self.new_server()
        c = s.client()
        self.addCleanup(c.close)
        c.ok("topic_create", topic="events", partitions=2)
        prod = kh.UserProducer(s, "events", partitions=2, users=10)
        prod.produce_many(300)
        st = self.create(c, "cbu", kh.fixture("count_by_user.lua"),
                         ["events"], ["counts"])
        self.assertEqual((st["version"], st["revision"]), (1, 1))
        hash1 = st["hash"]
        kh.wait_lag0(s, "cbu")
        self.assertViewEquals(c, "cbu", prod.count_users())

        # A syntax error: refused, naming file:line; nothing changes.
        bad = kh.fixture("syntax_error.lua")
        r = c.call("proc_reload", name="cbu", file=bad)
        self.assertIs(r.get("ok"), False, repr(r))
        self.assertIn("syntax error: %s:5: " % bad, r.get("message", ""),
                      repr(r))
        st = kh.raw_status(s, "cbu")
        self.assertEqual((st["version"], st["revision"], st["hash"],
                          st["state"], st["file"]),
                         (1, 1, hash1, "running",
                          kh.fixture("count_by_user.lua")))
        # ... and the old code keeps processing.
        prod.produce_many(100)
        kh.wait_lag0(s, "cbu")
        self.assertViewEquals(c, "cbu", prod.count_users())

        # An init that raises: likewise.
        r = c.call("proc_reload", name="cbu",
                   file=kh.fixture("init_raises.lua"))
        self.assertIs(r.get("ok"), False, repr(r))
        self.assertIn("init_raises.lua:6", r.get("message", ""), repr(r))
        st = kh.raw_status(s, "cbu")
        self.assertEqual((st["version"], st["revision"], st["hash"],
                          st["state"]), (1, 1, hash1, "running"))
        # init_raises.lua's init wrote "init" into its state; the failed
        # reload must not leave that in the live view.
        self.assertEqual(c.ok("view_get", name="cbu", key="init")["found"],
                         False)
        prod.produce_many(100)
        kh.wait_lag0(s, "cbu")
        self.assertViewEquals(c, "cbu", prod.count_users())

        # A missing file: refused, nothing changes.
        r = c.call("proc_reload", name="cbu",
                   file=os.path.join(self.tmp, "nope.lua"))
        self.assertIs(r.get("ok"), False, repr(r))
        self.assertEqual(kh.raw_status(s, "cbu")["revision"], 1)

        # A good reload to different code: revision 2, a new hash, same
        # version, and the view carries over (counts continue).
        newer = os.path.join(self.tmp, "count_by_user_v2.lua")
        with open(kh.fixture("count_by_user.lua")) as f:
            src = f.read()
        with open(newer, "w") as f:
            f.write("-- revision 2 of count_by_user (a comment only)\n" + src)
        r = c.ok("proc_reload", name="cbu", file=newer)
        st = r["proc"]
        self.assertEqual((st["version"], st["revision"]), (1, 2))
        self.assertRegex(st["hash"], r"^[0-9a-f]{16}$")
        self.assertNotEqual(st["hash"], hash1)
        self.assertEqual(st["file"], newer)
        self.assertEqual(st["reload_error"], None)
        prod.produce_many(200)
        st = kh.wait_lag0(s, "cbu")
        self.assertEqual(st["revision"], 2)
        self.assertEqual(st["records_processed"], len(prod.sent))
        self.assertViewEquals(c, "cbu", prod.count_users())
        # Still one output per input, all of version 1.
        outs = kh.wait_topic(c, "counts", len(prod.sent))[1]
        kh.assert_one_per_input(self, outs, prod.sent, "cbu", "events",
                                version=1)
        # Reload without a file reads the live file again.
        st = c.ok("proc_reload", name="cbu")["proc"]
        self.assertEqual((st["revision"], st["file"]), (3, newer))
        s.stop_ok(self)

    # ------------------------------------------------------------------
    def test_100_reloads_while_records_flow(self):
        s = self.new_server()
        c = s.client()
        self.addCleanup(c.close)
        c.ok("topic_create", topic="events", partitions=2)
        prod = kh.UserProducer(s, "events", partitions=2, users=15,
                               batch=(20, 50), pause=0.003)
        prod.produce_many(500)
        st = self.create(c, "rl", emit_fixture("a"), ["events"], ["out"])
        hashes = {"a": st["hash"]}
        prod.start()
        try:
            for k in range(100):
                tag = "b" if k % 2 == 0 else "a"
                r = c.call("proc_reload", name="rl", file=emit_fixture(tag))
                self.assertIs(r.get("ok"), True, "reload %d: %r" % (k, r))
                st = r["proc"]
                self.assertEqual(st["revision"], k + 2, "reload %d" % k)
                self.assertEqual(st["version"], 1)
                hashes.setdefault(tag, st["hash"])
                self.assertEqual(st["hash"], hashes[tag], "reload %d" % k)
        finally:
            prod.stop()
        self.assertNotEqual(hashes["a"], hashes["b"])
        self.assertGreater(prod.batches, 20, "the producer hardly ran")
        st = kh.wait_lag0(s, "rl", timeout=60)
        self.assertEqual((st["revision"], st["hash"], st["state"],
                          st["errors"]),
                         (101, hashes["a"], "running", 0))
        self.assertEqual(st["records_processed"], len(prod.sent))

        outs = kh.wait_topic(c, "out", len(prod.sent))[1]
        by_input = kh.assert_one_per_input(self, outs, prod.sent, "rl",
                                           "events", version=1)
        tags = collections.Counter()
        for (p, o), r in by_input.items():
            v = r["value"]
            self.assertEqual((v["p"], v["o"], v["i"]),
                             (p, o, prod.sent[(p, o)]["i"]), repr(r))
            tags[v["tag"]] += 1
        self.assertEqual(set(tags), {"a", "b"}, "both codes ran: %r" % tags)
        # The view carried over every swap: per user, n runs 1..count
        # in output order, and the view holds the count.
        want = prod.count_users()
        seq = collections.defaultdict(list)
        for r in outs:
            seq[r["value"]["user"]].append(r["value"]["n"])
        for user, ns in seq.items():
            self.assertEqual(ns, list(range(1, want[user] + 1)), user)
        self.assertViewEquals(c, "rl", want)
        s.stop_ok(self)

    # ------------------------------------------------------------------
    def test_plugin_reload_while_records_flow(self):
        so = kh.test_plugin("count_by_user")
        if not os.path.exists(so):
            self.skipTest("test plugin %s not built" % so)
        copy = os.path.join(self.tmp, "count_by_user_copy.so")
        shutil.copyfile(so, copy)
        changed = os.path.join(self.tmp, "count_by_user_changed.so")
        shutil.copyfile(so, changed)
        with open(changed, "ab") as f:   # same code, another content hash
            f.write(b"\0kappa reload test\0")

        s = self.new_server()
        c = s.client()
        self.addCleanup(c.close)
        c.ok("topic_create", topic="events", partitions=2)
        prod = kh.UserProducer(s, "events", partitions=2, users=10,
                               batch=(10, 30), pause=0.005)
        prod.produce_many(300)
        st = self.create(c, "cplug", so, ["events"], ["counts"])
        self.assertEqual(st["lang"], "c")
        hash1 = st["hash"]
        prod.start()
        try:
            kh.wait_for(lambda: kh.raw_status(s, "cplug")
                        ["records_processed"] > 300, 10,
                        "the plugin to process")
            st = c.ok("proc_reload", name="cplug", file=copy)["proc"]
            self.assertEqual((st["lang"], st["revision"], st["file"]),
                             ("c", 2, copy))
            self.assertEqual(st["hash"], hash1)   # the same bytes
            before = st["records_processed"]
            kh.wait_for(lambda: kh.raw_status(s, "cplug")
                        ["records_processed"] > before + 100, 10,
                        "records after the first plugin reload")
            st = c.ok("proc_reload", name="cplug", file=changed)["proc"]
            self.assertEqual((st["lang"], st["revision"], st["file"]),
                             ("c", 3, changed))
            self.assertNotEqual(st["hash"], hash1)
            before = st["records_processed"]
            kh.wait_for(lambda: kh.raw_status(s, "cplug")
                        ["records_processed"] > before + 100, 10,
                        "records after the second plugin reload")
        finally:
            prod.stop()
        st = kh.wait_lag0(s, "cplug")
        self.assertEqual((st["state"], st["errors"], st["revision"]),
                         ("running", 0, 3))
        self.assertViewEquals(c, "cplug", prod.count_users())
        outs = kh.wait_topic(c, "counts", len(prod.sent))[1]
        kh.assert_one_per_input(self, outs, prod.sent, "cplug", "events",
                                version=1)
        s.stop_ok(self)

    # ------------------------------------------------------------------
    def test_watch(self):
        path = os.path.join(self.tmp, "watched.lua")
        with open(kh.fixture("count_by_user.lua")) as f:
            src = f.read()

        def write(text):
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, path)

        write(src)
        s = self.new_server()
        c = s.client()
        self.addCleanup(c.close)
        c.ok("topic_create", topic="events", partitions=1)
        prod = kh.UserProducer(s, "events", partitions=1, users=5)
        prod.produce_many(100)
        st = self.create(c, "w", path, ["events"], ["counts"], watch=True)
        self.assertIs(st["watch"], True)
        hash1 = st["hash"]
        kh.wait_lag0(s, "w")

        # New content: picked up within a few seconds.
        write("-- watched, second content\n" + src)
        st = kh.wait_status(s, "w", lambda st: st["revision"] >= 2, 5,
                            "the watched file to be reloaded",
                            interval=0.1)
        self.assertEqual(st["revision"], 2)
        self.assertNotEqual(st["hash"], hash1)
        self.assertIsNone(st["reload_error"])
        hash2 = st["hash"]
        prod.produce_many(50)
        kh.wait_lag0(s, "w")
        self.assertViewEquals(c, "w", prod.count_users())

        # A broken file: the old code keeps running; status says why.
        write(src.replace("ctx.state:incr(user, 1)",
                          "ctx.state:incr(user 1)"))
        line = 1 + src.split("\n").index(
            [l for l in src.split("\n") if "ctx.state:incr(user, 1)" in l][0])
        st = kh.wait_status(s, "w", lambda st: st["reload_error"], 5,
                            "the broken file's reload_error", interval=0.1)
        self.assertIn("watched.lua:%d" % line, st["reload_error"])
        self.assertEqual((st["revision"], st["hash"], st["state"]),
                         (2, hash2, "running"))
        prod.produce_many(50)
        st = kh.wait_lag0(s, "w")
        self.assertEqual((st["revision"], st["hash"]), (2, hash2))
        self.assertViewEquals(c, "w", prod.count_users())

        # Fixed again: reloaded, the error cleared.
        write("-- watched, third content\n" + src)
        st = kh.wait_status(s, "w", lambda st: st["revision"] >= 3, 5,
                            "the repaired file to be reloaded",
                            interval=0.1)
        self.assertIsNone(st["reload_error"])

        # Watching off: a change is not picked up.
        st = c.ok("proc_reload", name="w", watch=False)["proc"]
        self.assertIs(st["watch"], False)
        self.assertEqual(st["revision"], 3)
        write("-- watched, fourth content\n" + src)
        prod.produce_many(20)
        kh.wait_lag0(s, "w")
        time.sleep(1.5)   # three watch periods (500 ms)
        self.assertEqual(kh.raw_status(s, "w")["revision"], 3)
        s.stop_ok(self)


if __name__ == "__main__":
    kh.main()
