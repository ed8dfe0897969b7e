#!/usr/bin/env python3
"""
test_versions_crash.py - blue/green replay across a kill -9: killed in the
middle of a replay, the restarted server resumes the replay from its
checkpoint (not from the start) and still cuts over, with the right view
and exactly one output of the new version per input (by provenance);
killed right after a cut-over, the restarted server still has the new
version live.
"""

import signal
import time

import kappa_harness as kh

HALF = kh.fixture("versions_count_half.lua")
FIXED = kh.fixture("versions_count_fixed.lua")


class VersionsCrashTest(kh.ServerTest):
    class_server = False

    def setup_proc(self, preload, partitions=2):
        self.partitions = partitions
        s = self.new_server()
        with s.client() as c:
            c.ok("topic_create", topic="events", partitions=partitions)
        prod = kh.UserProducer(s, "events", partitions=partitions, users=25)
        prod.produce_many(preload, chunk=1000)
        with s.client() as c:
            c.ok("proc_create", name="cnt", file=HALF, inputs=["events"],
                 outputs=["counts"])
        kh.wait_lag0(s, "cnt")
        return s, prod

    def assertView(self, s, want, what):
        with s.client() as c:
            items = c.ok("view_scan", name="cnt", limit=100000)["items"]
        got = {(it["key"].decode() if isinstance(it["key"], bytes)
                else it["key"]): it["value"] for it in items}
        self.assertEqual(got, dict(want), what)

    def assertOutputs(self, s, prod, version):
        with s.client() as c:
            gen, outs = kh.wait_topic(c, "counts", len(prod.sent))
        self.assertEqual(gen, version)
        kh.assert_one_per_input(self, outs, prod.sent, "cnt", "events",
                                version=version,
                                msg="v%d after kill -9" % version)
        if self.partitions != 1:
            # With several input partitions the records after the
            # checkpoint may be processed again in another interleaving
            # than before the crash, so the counts carried by outputs
            # written before and after it need not form one sequence.
            return
        # One input partition: per user, n runs 1..count in output order
        # (nothing was counted twice or skipped across the crash).
        seqs = {}
        for r in outs:
            seqs.setdefault(r["value"]["user"], []).append(r["value"]["n"])
        want = prod.count_users()
        for user, ns in seqs.items():
            self.assertEqual(ns, list(range(1, want[user] + 1)), user)

    # ------------------------------------------------------------------
    def test_kill_during_replay(self):
        # 40000 records at 4000/s: a replay of about 10 s.
        s, prod = self.setup_proc(preload=40000)
        t0 = time.monotonic()
        with s.client() as c:
            r = c.ok("proc_replay", name="cnt", file=FIXED, rate=4000)
        self.assertEqual(r["version"], 2)
        # Past at least one checkpoint (the server checkpoints every
        # second) but not done.
        st = kh.wait_status(s, "cnt", lambda st: st["replay"] is not None
                            and st["replay"]["records_done"] >= 3000
                            and time.monotonic() - t0 > 1.6, 20,
                            "the replay to make progress", interval=0.05)
        self.assertEqual(st["version"], 1, "cut over too early to test")
        done_before = st["replay"]["records_done"]
        s.kill()

        s.start()
        st = kh.raw_status(s, "cnt")
        vs = kh.raw_versions(s, "cnt")
        self.assertEqual(st["version"], 1, repr(st))
        self.assertIn(2, vs, repr(vs))
        if st["version"] == 1:
            self.assertEqual(vs[2]["role"], "building")
            self.assertIsNotNone(st["replay"], "the replay did not resume")
            self.assertGreater(
                st["replay"]["records_done"], 0,
                "the replay restarted from 0 (had done %d before the kill)"
                % done_before)
            self.assertGreater(vs[2]["records_processed"], 0)
        # More input after the restart: the replay must catch up with it.
        prod.produce_many(500)
        st = kh.wait_status(s, "cnt", lambda st: st["version"] == 2, 40,
                            "the resumed replay to cut over", interval=0.05)
        kh.wait_lag0(s, "cnt", version=2)
        vs = kh.raw_versions(s, "cnt")
        self.assertEqual((vs[1]["role"], vs[2]["role"]), ("retired", "live"))
        self.assertEqual(vs[2]["records_processed"], len(prod.sent))
        self.assertView(s, prod.count_users(), "v2 view after kill -9")
        self.assertOutputs(s, prod, 2)
        s.stop_ok(self)

    # ------------------------------------------------------------------
    def test_kill_right_after_cut_over(self):
        s, prod = self.setup_proc(preload=3000, partitions=1)
        with s.client() as c:
            c.ok("proc_replay", name="cnt", file=FIXED)
        kh.wait_status(s, "cnt", lambda st: st["version"] == 2, 20,
                       "the cut-over", interval=0.005)
        s.kill()

        s.start()
        st = kh.raw_status(s, "cnt")
        self.assertEqual((st["version"], st["file"]), (2, FIXED))
        vs = kh.raw_versions(s, "cnt")
        self.assertEqual((vs[1]["role"], vs[2]["role"]), ("retired", "live"))
        with s.client() as c:
            r = c.ok("fetch", topic="counts", offset=0, max_bytes=1)
            self.assertEqual(r["generation"], 2)
        prod.produce_many(400)
        kh.wait_lag0(s, "cnt", version=2)
        self.assertView(s, prod.count_users(), "v2 view after kill -9")
        self.assertOutputs(s, prod, 2)
        # Rollback still works after the restart.
        with s.client() as c:
            self.assertEqual(c.ok("proc_rollback", name="cnt")["proc"]
                             ["version"], 1)
        kh.wait_lag0(s, "cnt", version=1)
        self.assertView(s, prod.count_users(lambda v: v["i"] % 2 == 0),
                        "v1 view after rollback")
        s.stop_ok(self)

    # ------------------------------------------------------------------
    def test_sigterm_during_replay(self):
        # A graceful restart in the middle of a replay: same outcome.
        s, prod = self.setup_proc(preload=12000, partitions=1)
        with s.client() as c:
            c.ok("proc_replay", name="cnt", file=FIXED, rate=4000)
        kh.wait_status(s, "cnt", lambda st: st["replay"] is not None
                       and st["replay"]["records_done"] > 0, 20,
                       "the replay to make progress", interval=0.05)
        s.stop_ok(self, signal.SIGTERM)
        s.start()
        kh.wait_status(s, "cnt", lambda st: st["version"] == 2, 40,
                       "the resumed replay to cut over", interval=0.05)
        kh.wait_lag0(s, "cnt", version=2)
        self.assertView(s, prod.count_users(), "v2 view after SIGTERM")
        self.assertOutputs(s, prod, 2)
        s.stop_ok(self)


if __name__ == "__main__":
    kh.main()
