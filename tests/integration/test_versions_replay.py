#!/usr/bin/env python3
"""
test_versions_replay.py - blue/green replay over the raw protocol
(proc_replay, proc_versions, proc_rollback, proc_gc and logical output
topics): a processor with a bug runs live while producers keep producing;
a replay with the fixed code shows its progress, then cuts over: the view
answers the corrected values, the logical output resolves to the new
version (TOPIC_SWITCHED for readers of the old generation), the old
version's outputs stay readable; a rollback brings the old version back;
gc removes retired versions and their topics. Also: a rate-limited replay
takes its time, a replay whose init raises leaves the live version alone,
and a parked long-poll on the logical output returns at the cut-over.
"""

import os
import threading
import time

import kappa_harness as kh

HALF = kh.fixture("versions_count_half.lua")
FIXED = kh.fixture("versions_count_fixed.lua")


def is_even(v):
    return v["i"] % 2 == 0


class VersionsReplayTest(kh.ServerTest):
    class_server = False

    def setup_proc(self, file=HALF, partitions=2, preload=4000, users=20,
                   name="cnt"):
        s = self.new_server()
        c = s.client()
        self.addCleanup(c.close)
        c.ok("topic_create", topic="events", partitions=partitions)
        prod = kh.UserProducer(s, "events", partitions=partitions,
                               users=users, batch=(10, 30), pause=0.02)
        prod.produce_many(preload)
        r = c.call("proc_create", name=name, file=file, inputs=["events"],
                   outputs=["counts"])
        self.assertIs(r.get("ok"), True, repr(r))
        kh.wait_lag0(s, name)
        return s, c, prod

    def assertView(self, c, name, want, what):
        for user, n in sorted(want.items()):
            r = c.ok("view_get", name=name, key=user)
            self.assertEqual((r["found"], r["value"]), (True, n),
                             "%s: view_get %s" % (what, user))
        items = c.ok("view_scan", name=name, limit=100000)["items"]
        got = {(it["key"].decode() if isinstance(it["key"], bytes)
                else it["key"]): it["value"] for it in items}
        self.assertEqual(got, dict(want), what)

    def topics(self, c):
        return {t["name"] for t in c.ok("topic_list")["topics"]}

    # ------------------------------------------------------------------
    def test_replay_cut_over_rollback_gc(self):
        # 12000 records at 4000/s: progress can be watched for ~3 s.
        s, c, prod = self.setup_proc(preload=12000)
        st = kh.raw_status(s, "cnt")
        hash_half = st["hash"]
        self.assertEqual((st["version"], st["versions"], st["replay"]),
                         (1, 1, None))
        # The bug is visible: only even records are counted.
        self.assertView(c, "cnt", prod.count_users(is_even), "v1 before")

        prod.start()
        try:
            r = c.ok("proc_replay", name="cnt", file=FIXED, rate=4000)
            self.assertEqual(r["version"], 2)
            self.assertEqual(r["proc"]["version"], 1)
            rep = r["proc"]["replay"]
            self.assertIsInstance(rep, dict, repr(r["proc"]))
            self.assertEqual(rep["version"], 2)
            self.assertEqual(rep["rate_limit"], 4000)

            # Progress: records done and to go while v1 keeps serving.
            st = kh.wait_status(
                s, "cnt", lambda st: st["replay"] is not None
                and st["replay"]["records_done"] > 0
                and st["replay"]["records_to_go"] > 0, 10,
                "replay progress")
            rep = st["replay"]
            self.assertEqual(st["version"], 1)
            self.assertIn(rep["state"], ("starting", "running"), repr(rep))
            self.assertEqual(rep["version"], 2)
            self.assertIsNone(rep["reason"])
            self.assertEqual(st["versions"], 2)
            vs = kh.raw_versions(s, "cnt")
            self.assertEqual((vs[1]["role"], vs[2]["role"]),
                             ("live", "building"))
            self.assertEqual(vs[2]["outputs"], ["counts.v2", "cnt.dlq.v2"])
            self.assertEqual(vs[2]["rate"], 4000)
            # The live view still answers v1's values meanwhile.
            # (v1 counts only even records; the fixed count is twice that)
            got = c.ok("view_get", name="cnt", key="u1")["value"]
            self.assertLessEqual(got, prod.count_users(is_even)["u1"])
            self.assertEqual(c.ok("fetch", topic="counts", offset=0,
                                  max_bytes=1)["generation"], 1)

            st = kh.wait_status(s, "cnt", lambda st: st["version"] == 2, 30,
                                "the cut-over to v2")
            self.assertIsNone(st["replay"])
            self.assertEqual(st["hash"], kh.raw_versions(s, "cnt")[2]["hash"])
            time.sleep(0.2)   # producers still going after the cut-over
        finally:
            prod.stop()

        st = kh.wait_lag0(s, "cnt", version=2)
        hash_fixed = st["hash"]
        self.assertNotEqual(hash_fixed, hash_half)
        self.assertEqual(st["file"], FIXED)
        vs = kh.raw_versions(s, "cnt")
        self.assertEqual(sorted(vs), [1, 2])
        self.assertEqual((vs[1]["role"], vs[1]["hash"], vs[1]["file"]),
                         ("retired", hash_half, HALF))
        self.assertEqual((vs[2]["role"], vs[2]["hash"], vs[2]["file"]),
                         ("live", hash_fixed, FIXED))
        self.assertEqual(vs[2]["state"], "running")
        self.assertEqual(vs[1]["outputs"], ["counts", "cnt.dlq"])
        total = len(prod.sent)
        self.assertEqual(vs[2]["records_processed"], total)

        # The view answers the corrected values for every key.
        self.assertView(c, "cnt", prod.count_users(), "v2 after cut-over")

        # The logical output: generation 2, v2's records, one per input.
        gen, outs = kh.wait_topic(c, "counts", len(prod.sent))
        self.assertEqual(gen, 2)
        kh.assert_one_per_input(self, outs, prod.sent, "cnt", "events",
                                version=2, msg="counts (logical, v2)")
        self.assertTrue(all(r["value"]["fixed"] is True for r in outs))
        _, outs2 = kh.wait_topic(c, "counts.v2", len(prod.sent))
        self.assertEqual([r["value"] for r in outs2],
                         [r["value"] for r in outs])
        # A reader still on generation 1 is told about the switch.
        r = c.call("fetch", topic="counts", offset=0, generation=1)
        self.assertError(r, "TOPIC_SWITCHED")
        self.assertEqual(r.get("generation"), 2, repr(r))
        # ... and a reader of generation 2 is not.
        r = c.ok("fetch", topic="counts", offset=0, generation=2,
                 max_bytes=1)
        self.assertEqual(r["generation"], 2)
        # v1's outputs stay readable under counts.v1: all written by v1,
        # with v1's buggy values; v1 stopped at the cut-over.
        _, outs1 = kh.fetch_topic(c, "counts.v1")
        self.assertGreater(len(outs1), 0)
        for r in outs1:
            self.assertEqual(r["headers"]["version"], 1, repr(r))
            self.assertIs(r["value"]["fixed"], False, repr(r))
        self.assertLessEqual(len(outs1), total)

        # Rollback: v1 is live again, catches up from where it stopped,
        # and answers its (buggy) values over everything.
        st = c.ok("proc_rollback", name="cnt")["proc"]
        self.assertEqual(st["version"], 1)
        prod.produce_many(300)
        st = kh.wait_lag0(s, "cnt", version=1)
        self.assertEqual((st["hash"], st["file"]), (hash_half, HALF))
        self.assertView(c, "cnt", prod.count_users(is_even),
                        "v1 after rollback")
        vs = kh.raw_versions(s, "cnt")
        self.assertEqual((vs[1]["role"], vs[2]["role"]), ("live", "retired"))
        gen, outs = kh.wait_topic(c, "counts", len(prod.sent))
        self.assertEqual(gen, 1)
        kh.assert_one_per_input(self, outs, prod.sent, "cnt", "events",
                                version=1, msg="counts (logical, v1 again)")
        r = c.call("fetch", topic="counts", offset=0, generation=2)
        self.assertError(r, "TOPIC_SWITCHED")
        self.assertEqual(r.get("generation"), 1, repr(r))

        # Replay again (v3), then gc: the retired v1 and v2 go, with
        # their checkpoints and physical topics.
        r = c.ok("proc_replay", name="cnt", file=FIXED)
        self.assertEqual(r["version"], 3)
        kh.wait_status(s, "cnt", lambda st: st["version"] == 3, 30,
                       "the cut-over to v3")
        vs = kh.raw_versions(s, "cnt")
        self.assertEqual({n: v["role"] for n, v in vs.items()},
                         {1: "retired", 2: "retired", 3: "live"})
        self.assertIn("counts.v2", self.topics(c))
        self.assertIn("counts.v3", self.topics(c))
        r = c.ok("proc_gc", name="cnt")
        self.assertEqual(r["removed"], 2)
        vs = kh.raw_versions(s, "cnt")
        self.assertEqual(list(vs), [3])
        st = kh.raw_status(s, "cnt")
        self.assertEqual((st["version"], st["versions"]), (3, 1))
        names = self.topics(c)
        for gone in ("counts.v2", "cnt.dlq.v2"):
            self.assertNotIn(gone, names)
        r = c.call("fetch", topic="counts.v2", offset=0)
        self.assertError(r, "UNKNOWN_TOPIC")
        self.assertIn("counts.v3", names)
        # The logical name still resolves to the live v3 after v1 (whose
        # physical topic carried the logical name) was removed.
        prod.produce_many(100)
        kh.wait_lag0(s, "cnt", version=3)
        gen, outs = kh.wait_topic(c, "counts", len(prod.sent))
        self.assertEqual(gen, 3)
        kh.assert_one_per_input(self, outs, prod.sent, "cnt", "events",
                                version=3, msg="counts (logical, v3)")
        self.assertView(c, "cnt", prod.count_users(), "v3")
        self.assertEqual(c.ok("proc_gc", name="cnt")["removed"], 0)
        s.stop_ok(self)

    # ------------------------------------------------------------------
    def test_replay_rate_limit(self):
        s, c, prod = self.setup_proc(file=FIXED, partitions=1,
                                     preload=10000)
        t0 = time.monotonic()
        r = c.ok("proc_replay", name="cnt", rate=2000)
        self.assertEqual(r["version"], 2)
        st = kh.wait_status(s, "cnt", lambda st: st["replay"] is not None
                            and st["replay"]["records_done"] >= 2000, 10,
                            "the rate-limited replay to make progress")
        rep = st["replay"]
        self.assertEqual(rep["rate_limit"], 2000)
        self.assertGreater(rep["records_to_go"], 0)
        # The replay's worker yields the CPU to live work (SCHED_IDLE)
        # where kappad may take it back at the cut-over (root here).
        if os.geteuid() == 0:
            self.assertEqual(rep["scheduling"], "idle")
        kh.wait_status(s, "cnt", lambda st: st["version"] == 2, 30,
                       "the rate-limited replay to cut over",
                       interval=0.05)
        elapsed = time.monotonic() - t0
        # Live now: every thread of its worker is scheduled normally.
        pid = kh.raw_status(s, "cnt")["worker"]["pid"]
        self.assertGreater(pid, 0)
        self.assertEqual(set(sched_policies(pid)), {0},   # SCHED_OTHER
                         "policies of the live worker's threads")
        # 10000 records at 2000/s: about 5 s; a generous lower bound.
        self.assertGreaterEqual(elapsed, 3.5,
                                "10000 records at 2000/s took %.2f s"
                                % elapsed)
        st = kh.wait_lag0(s, "cnt", version=2)
        self.assertView(c, "cnt", prod.count_users(), "after rated replay")
        s.stop_ok(self)

    # ------------------------------------------------------------------
    def test_replay_whose_init_raises(self):
        s, c, prod = self.setup_proc(preload=1000)
        prod.start()
        try:
            r = c.call("proc_replay", name="cnt",
                       file=kh.fixture("init_raises.lua"))
            if r.get("ok") is True:
                st = kh.wait_status(
                    s, "cnt", lambda st: st["replay"] is not None
                    and st["replay"]["state"] == "failed", 10,
                    "the replay to fail")
                self.assertIn("init_raises.lua:6",
                              st["replay"]["reason"] or "")
            else:
                self.assertIn("init_raises.lua:6", r.get("message", ""),
                              repr(r))
            # The live version is untouched and keeps processing.
            before = kh.raw_status(s, "cnt")["records_processed"]
            kh.wait_for(lambda: kh.raw_status(s, "cnt")
                        ["records_processed"] > before + 50, 10,
                        "v1 to keep processing")
        finally:
            prod.stop()
        st = kh.wait_lag0(s, "cnt", version=1)
        self.assertEqual((st["state"], st["file"]), ("running", HALF))
        self.assertView(c, "cnt", prod.count_users(is_even),
                        "v1 after a failed replay")
        gen, outs = kh.wait_topic(c, "counts", len(prod.sent))
        self.assertEqual(gen, 1)
        kh.assert_one_per_input(self, outs, prod.sent, "cnt", "events",
                                version=1)
        # gc removes the failed replay (if one was left); then a good
        # replay still works.
        c.ok("proc_gc", name="cnt")
        self.assertIsNone(kh.raw_status(s, "cnt")["replay"])
        self.assertEqual(list(kh.raw_versions(s, "cnt")), [1])
        r = c.ok("proc_replay", name="cnt", file=FIXED)
        kh.wait_status(s, "cnt", lambda st: st["version"] == r["version"],
                       30, "a good replay to cut over")
        kh.wait_lag0(s, "cnt")
        self.assertView(c, "cnt", prod.count_users(), "after the good replay")
        s.stop_ok(self)

    # ------------------------------------------------------------------
    def test_parked_long_poll_returns_at_cut_over(self):
        s, c, prod = self.setup_proc(file=FIXED, partitions=1, preload=6000)
        end = len(kh.wait_topic(c, "counts", 6000)[1])
        self.assertEqual(end, 6000)
        box = {}

        def poll():
            with s.client(timeout=60) as lc:
                t = time.monotonic()
                box["resp"] = lc.call("fetch", topic="counts", offset=end,
                                      generation=1, max_wait_ms=30000)
                box["t"] = time.monotonic()
                box["took"] = box["t"] - t

        th = threading.Thread(target=poll, daemon=True)
        th.start()
        time.sleep(0.3)
        self.assertNotIn("resp", box, "the fetch did not park: %r" % box)
        # A replay of 6000 records at 3000/s: the cut-over in about 2 s.
        c.ok("proc_replay", name="cnt", rate=3000)
        kh.wait_status(s, "cnt", lambda st: st["version"] == 2, 30,
                       "the cut-over", interval=0.01)
        t_cut = time.monotonic()
        th.join(5 * kh.SLOW)
        self.assertIn("resp", box, "the parked fetch did not return within "
                      "5 s of the cut-over")
        self.assertLess(box["t"] - t_cut, 1.0 * kh.SLOW,
                        "parked fetch returned %.2f s after the cut-over"
                        % (box["t"] - t_cut))
        self.assertLess(box["took"], 20)
        # The reader's next fetch with its generation learns the switch.
        r = c.call("fetch", topic="counts", offset=end, generation=1)
        self.assertError(r, "TOPIC_SWITCHED")
        self.assertEqual(r.get("generation"), 2, repr(r))
        s.stop_ok(self)
        # The woken fetch itself must not claim the old generation: it
        # answers TOPIC_SWITCHED (or records of) generation 2, since a
        # logical topic's fetch "returns its generation (the version it
        # resolves to)" and the name resolves to v2 by then.
        r = box["resp"]
        self.assertEqual(r.get("generation"), 2,
                         "the parked fetch (generation 1) woken by the "
                         "cut-over answered %r" % (r,))
        if r.get("ok") is not True:
            self.assertError(r, "TOPIC_SWITCHED")


def sched_policies(pid):
    """The scheduling policy of each thread of pid (/proc stat field 41)."""
    out = []
    task = "/proc/%d/task" % pid
    for tid in os.listdir(task):
        with open(os.path.join(task, tid, "stat")) as f:
            stat = f.read()
        fields = stat[stat.rindex(")") + 2:].split()
        out.append(int(fields[41 - 3]))
    return out


if __name__ == "__main__":
    kh.main()
