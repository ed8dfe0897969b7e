#!/usr/bin/env python3
"""
test_versions_revisions.py - the revisions of a processor's versions and
rollback along them (proc_versions' "revisions", proc_rollback with
to_version / to_revision, kappactl proc rollback --to), and the dead
letters of every version (kappactl consume NAME.dlq --all-versions):

- reloaded twice while records flow, `proc rollback` steps back one
  revision at a time (the code of each revision runs again, the view
  carries over, exactly one output per input), then says there is nothing
  left to roll back;
- `proc rollback --to 1.1` goes to a named revision; the rollback is
  recorded (status and versions show the revision live, across a
  restart); unknown versions and revisions are clear errors;
- after a cut-over, rollback returns to the previous version at its last
  live revision with its view, and from there on steps back through that
  version's revisions;
- proc_versions lists every revision of every version with its hash, file
  and time, and the listing survives a restart (graceful or kill -9);
  each revision's code stays loadable from the server's copies even once
  the files are gone and after `proc gc`;
- NAME.dlq shows the live version's dead letters, after a replay and a
  rollback alike, and `consume --all-versions` shows every version's, in
  version order, with their provenance (also for an output topic).
"""

import itertools
import os
import shutil
import tempfile
import time

import kappa_harness as kh

HALF = kh.fixture("versions_count_half.lua")
FIXED = kh.fixture("versions_count_fixed.lua")

# Dead letters: records whose i is a multiple of EVERY fail; the others
# emit {i} to "totals".
DLQ_LUA = """
local M = {}
function M.process(ctx, rec)
  if rec.value.i %% %d == 0 then error("bad record " .. rec.value.i) end
  ctx.state:incr("n", 1)
  ctx:emit("totals", { i = rec.value.i })
end
return M
"""


def now_ms():
    return int(time.time() * 1000)


def is_even(v):
    return v["i"] % 2 == 0


class VersionsRevisionsTest(kh.ServerTest):
    class_server = False

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="kappa-vt-rev-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def emit_code(self, tag):
        """A copy of versions_emit_a.lua whose outputs carry tag."""
        with open(kh.fixture("versions_emit_a.lua")) as f:
            src = f.read()
        path = os.path.join(self.tmp, "emit_%s.lua" % tag)
        with open(path, "w") as f:
            f.write(src.replace('tag = "a"', 'tag = "%s"' % tag))
        return path

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def create(self, c, name, path, inputs, outputs, **kw):
        r = c.call("proc_create", name=name, file=path, inputs=inputs,
                   outputs=outputs, **kw)
        self.assertIs(r.get("ok"), True, repr(r))
        return r["proc"]

    def assertView(self, c, name, want, what=""):
        items = c.ok("view_scan", name=name, limit=100000)["items"]
        got = {(it["key"].decode() if isinstance(it["key"], bytes)
                else it["key"]): it["value"] for it in items}
        self.assertEqual(got, dict(want), what)

    def wait_progress(self, s, name, more=60):
        """Waits until the live version processed `more` further records."""
        before = kh.raw_status(s, name)["records_processed"]
        kh.wait_status(s, name,
                       lambda st: st["records_processed"] >= before + more,
                       20, "%d more records processed" % more)

    def revisions(self, s, name):
        """{version: [(revision, previous, hash, file)]} of proc_versions."""
        return {n: [(r["revision"], r["previous"], r["hash"], r["file"])
                    for r in v["revisions"]]
                for n, v in kh.raw_versions(s, name).items()}

    def rollback(self, c, name, **kw):
        """proc_rollback (which waits up to 10 s for a version still
        finishing its last batch), retried if that was not enough."""
        def attempt():
            r = c.call("proc_rollback", name=name, **kw)
            if r.get("ok") is True:
                return r["proc"]
            self.assertError(r, "BAD_STATE")
            self.assertIn("finishing its last batch", r["message"])
            return None

        return kh.wait_for(attempt, 30, "rollback of %s %r" % (name, kw),
                           interval=0.05)

    def ctl_fails(self, s, args, contains, code=1):
        cp = s.ctl(*args)
        self.assertCtlFails(cp, contains)
        self.assertEqual(cp.returncode, code, cp.stderr)
        return cp

    # ------------------------------------------------------------------
    def test_rollback_steps_back_one_revision_at_a_time(self):
        s = self.new_server()
        c = s.client()
        self.addCleanup(c.close)
        c.ok("topic_create", topic="events", partitions=2)
        prod = kh.UserProducer(s, "events", partitions=2, users=15,
                               batch=(10, 30), pause=0.005)
        prod.produce_many(300)
        files = {t: self.emit_code(t) for t in "abc"}
        st = self.create(c, "rv", files["a"], ["events"], ["out"])
        hashes = {"a": st["hash"]}
        prod.start()
        try:
            self.wait_progress(s, "rv")
            for tag, rev in (("b", 2), ("c", 3)):
                st = c.ok("proc_reload", name="rv", file=files[tag])["proc"]
                self.assertEqual((st["version"], st["revision"]), (1, rev))
                hashes[tag] = st["hash"]
                self.wait_progress(s, "rv")
            self.assertEqual(len(set(hashes.values())), 3, hashes)
            # Back one revision at a time: the code that ran before each
            # reload runs again (its hash and file), in the same version.
            for tag, rev in (("b", 2), ("a", 1)):
                st = c.ok("proc_rollback", name="rv")["proc"]
                self.assertEqual((st["version"], st["revision"], st["hash"],
                                  st["file"], st["state"]),
                                 (1, rev, hashes[tag], files[tag],
                                  "running"))
                self.wait_progress(s, "rv")
            r = c.call("proc_rollback", name="rv")
            self.assertError(r, "BAD_STATE")
            self.assertIn("nothing to roll back", r["message"])
        finally:
            prod.stop()
        st = kh.wait_lag0(s, "rv", timeout=60)
        self.assertEqual((st["version"], st["revision"], st["hash"],
                          st["state"], st["errors"]),
                         (1, 1, hashes["a"], "running", 0))
        self.assertEqual(st["records_processed"], len(prod.sent))

        # Exactly one output per input; each revision's code ran in turn,
        # swapped between batches (the tags in output order).
        outs = kh.wait_topic(c, "out", len(prod.sent))[1]
        kh.assert_one_per_input(self, outs, prod.sent, "rv", "events",
                                version=1)
        runs = [t for t, _ in itertools.groupby(r["value"]["tag"]
                                                 for r in outs)]
        self.assertEqual(runs, ["a", "b", "c", "b", "a"])
        # The view carried over every swap: per user, n counts 1, 2, ...
        want = prod.count_users()
        seq = {}
        for r in outs:
            seq.setdefault(r["value"]["user"], []).append(r["value"]["n"])
        for user, ns in seq.items():
            self.assertEqual(ns, list(range(1, want[user] + 1)), user)
        self.assertView(c, "rv", want)

        # Rollbacks made no new revision: the three are listed, each
        # loaded over the one before, and revision 1 is current.
        self.assertEqual(self.revisions(s, "rv"), {1: [
            (1, None, hashes["a"], files["a"]),
            (2, 1, hashes["b"], files["b"]),
            (3, 2, hashes["c"], files["c"])]})
        self.assertEqual(kh.raw_versions(s, "rv")[1]["revision"], 1)
        self.ctl_fails(s, ["proc", "rollback", "rv"], "nothing to roll back")
        s.stop_ok(self)

    # ------------------------------------------------------------------
    def test_rollback_to_a_named_revision(self):
        s = self.new_server()
        c = s.client()
        self.addCleanup(c.close)
        c.ok("topic_create", topic="events", partitions=2)
        prod = kh.UserProducer(s, "events", partitions=2, users=10)
        prod.produce_many(200)
        files = {t: self.emit_code(t) for t in "abc"}
        hashes = {"a": self.create(c, "rv", files["a"], ["events"],
                                   ["out"])["hash"]}
        for tag in "bc":
            prod.produce_many(100)
            hashes[tag] = c.ok("proc_reload", name="rv",
                               file=files[tag])["proc"]["hash"]
        prod.produce_many(100)
        kh.wait_lag0(s, "rv")

        st = kh.ctl_json(s, "proc", "rollback", "rv", "--to", "1.1")[0]
        self.assertEqual((st["version"], st["revision"], st["hash"],
                          st["file"]), (1, 1, hashes["a"], files["a"]))
        prod.produce_many(200)
        st = kh.wait_lag0(s, "rv")
        self.assertEqual((st["revision"], st["hash"]), (1, hashes["a"]))
        outs = kh.wait_topic(c, "out", len(prod.sent))[1]
        kh.assert_one_per_input(self, outs, prod.sent, "rv", "events",
                                version=1)
        self.assertEqual(outs[-1]["value"]["tag"], "a")
        self.assertView(c, "rv", prod.count_users())
        # Recorded: the versions listing shows revision 1 current and
        # still lists all three; so does a restarted server.
        for restarted in (False, True):
            if restarted:
                c.close()
                s.restart()
                c = s.client()
                self.addCleanup(c.close)
            v1 = kh.raw_versions(s, "rv")[1]
            self.assertEqual((v1["role"], v1["revision"], v1["hash"]),
                             ("live", 1, hashes["a"]), restarted)
            self.assertEqual([r["revision"] for r in v1["revisions"]],
                             [1, 2, 3], restarted)
            st = kh.raw_status(s, "rv")
            self.assertEqual((st["revision"], st["hash"], st["file"]),
                             (1, hashes["a"], files["a"]), restarted)
        prod.produce_many(50)
        kh.wait_lag0(s, "rv")
        self.assertView(c, "rv", prod.count_users(), "after the restart")

        # Forward to 1.3, then a plain rollback goes to what 3 was
        # loaded over (2).
        st = kh.ctl_json(s, "proc", "rollback", "rv", "--to", "1.3")[0]
        self.assertEqual((st["revision"], st["hash"]), (3, hashes["c"]))
        st = kh.ctl_json(s, "proc", "rollback", "rv")[0]
        self.assertEqual((st["revision"], st["hash"]), (2, hashes["b"]))

        # Errors: one line from kappactl, codes from the protocol.
        self.ctl_fails(s, ["proc", "rollback", "rv", "--to", "1.9"],
                       "v1 has no revision 9")
        self.ctl_fails(s, ["proc", "rollback", "rv", "--to", "5"],
                       "has no version 5")
        self.ctl_fails(s, ["proc", "rollback", "rv", "--to", "1.2"],
                       "v1.2 is already live")
        for bad in ("x", "1.0", "0", "1.", "1.2.3"):
            self.ctl_fails(s, ["proc", "rollback", "rv", "--to", bad],
                           "--to", code=2)
        self.ctl_fails(s, ["proc", "rollback", "nope"], "no processor")
        self.assertError(c.call("proc_rollback", name="rv", to_version=1,
                                to_revision=9), "NOT_FOUND")
        self.assertError(c.call("proc_rollback", name="rv", to_version=5),
                         "NOT_FOUND")
        self.assertError(c.call("proc_rollback", name="rv", to_version=1,
                                to_revision=2), "BAD_STATE")
        self.assertError(c.call("proc_rollback", name="rv", to_revision=1),
                         "BAD_REQUEST")
        self.assertError(c.call("proc_rollback", name="rv", to_version=0),
                         "BAD_REQUEST")
        self.assertError(c.call("proc_rollback", name="rv", to_version="1"),
                         "BAD_REQUEST")
        self.assertEqual(kh.raw_status(s, "rv")["revision"], 2)
        s.stop_ok(self)

    # ------------------------------------------------------------------
    def test_rollback_after_cut_over_then_through_revisions(self):
        s = self.new_server()
        c = s.client()
        self.addCleanup(c.close)
        c.ok("topic_create", topic="events", partitions=2)
        prod = kh.UserProducer(s, "events", partitions=2, users=20)
        prod.produce_many(2000)
        self.create(c, "cnt", HALF, ["events"], ["counts"])
        with open(HALF) as f:
            half2 = self.write("count_half_rev2.lua",
                               "-- revision 2: a comment only\n" + f.read())
        st = c.ok("proc_reload", name="cnt", file=half2)["proc"]
        self.assertEqual(st["revision"], 2)
        hash_half2 = st["hash"]
        hash_half = kh.raw_versions(s, "cnt")[1]["revisions"][0]["hash"]
        prod.produce_many(200)
        kh.wait_lag0(s, "cnt")

        self.assertEqual(c.ok("proc_replay", name="cnt", file=FIXED)
                         ["version"], 2)
        kh.wait_status(s, "cnt", lambda st: st["version"] == 2, 30,
                       "the cut-over to v2")
        st = kh.wait_lag0(s, "cnt", version=2)
        hash_fixed = st["hash"]
        self.assertView(c, "cnt", prod.count_users(), "v2")
        vs = kh.raw_versions(s, "cnt")
        self.assertEqual((vs[2]["previous_version"], vs[2]["revision"]),
                         (1, 1))
        self.assertIsNone(vs[1]["previous_version"])
        self.assertEqual(self.revisions(s, "cnt")[2],
                         [(1, None, hash_fixed, FIXED)])

        # Rollback undoes the cut-over: v1 at its last live revision (2),
        # with its view, catching up from where it stopped.
        st = self.rollback(c, "cnt")
        self.assertEqual((st["version"], st["revision"], st["hash"],
                          st["file"]), (1, 2, hash_half2, half2))
        prod.produce_many(300)
        kh.wait_lag0(s, "cnt", version=1)
        self.assertView(c, "cnt", prod.count_users(is_even),
                        "v1.2 after the rollback")
        gen, outs = kh.wait_topic(c, "counts", len(prod.sent))
        self.assertEqual(gen, 1)
        kh.assert_one_per_input(self, outs, prod.sent, "cnt", "events",
                                version=1, msg="counts of v1")

        # Then the reload of v1 is undone: revision 1, same view.
        st = c.ok("proc_rollback", name="cnt")["proc"]
        self.assertEqual((st["version"], st["revision"], st["hash"],
                          st["file"]), (1, 1, hash_half, HALF))
        prod.produce_many(300)
        kh.wait_lag0(s, "cnt", version=1)
        self.assertView(c, "cnt", prod.count_users(is_even),
                        "v1.1 after the second rollback")
        gen, outs = kh.wait_topic(c, "counts", len(prod.sent))
        kh.assert_one_per_input(self, outs, prod.sent, "cnt", "events",
                                version=1, msg="counts of v1.1")
        vs = kh.raw_versions(s, "cnt")
        self.assertEqual({n: (v["role"], v["revision"])
                          for n, v in vs.items()},
                         {1: ("live", 1), 2: ("retired", 1)})

        # Nothing older: a clear error; v2 is still there by name.
        r = c.call("proc_rollback", name="cnt")
        self.assertError(r, "BAD_STATE")
        self.assertIn("nothing to roll back", r["message"])
        st = self.rollback(c, "cnt", to_version=2)
        self.assertEqual((st["version"], st["revision"], st["hash"]),
                         (2, 1, hash_fixed))
        kh.wait_lag0(s, "cnt", version=2)
        self.assertView(c, "cnt", prod.count_users(), "v2 again")
        s.stop_ok(self)

    # ------------------------------------------------------------------
    def test_versions_listing_survives_restart_and_gc(self):
        s = self.new_server()
        c = s.client()
        self.addCleanup(c.close)
        c.ok("topic_create", topic="events", partitions=1)
        prod = kh.UserProducer(s, "events", partitions=1, users=5)
        prod.produce_many(100)
        t0 = now_ms()
        files = {t: self.emit_code(t) for t in "abc"}
        hashes = {"a": self.create(c, "rv", files["a"], ["events"],
                                   ["out"])["hash"]}
        for tag in "bc":
            time.sleep(0.01)
            hashes[tag] = c.ok("proc_reload", name="rv",
                               file=files[tag])["proc"]["hash"]
        kh.wait_lag0(s, "rv")
        # v2 from the same code as v1.1, then reloaded to b.
        c.ok("proc_replay", name="rv", file=files["a"])
        kh.wait_status(s, "rv", lambda st: st["version"] == 2, 30,
                       "the cut-over to v2")
        kh.wait_lag0(s, "rv", version=2)
        st = c.ok("proc_reload", name="rv", file=files["b"])["proc"]
        self.assertEqual((st["version"], st["revision"], st["hash"]),
                         (2, 2, hashes["b"]))
        t1 = now_ms()

        vs = kh.raw_versions(s, "rv")
        self.assertEqual(self.revisions(s, "rv"), {
            1: [(1, None, hashes["a"], files["a"]),
                (2, 1, hashes["b"], files["b"]),
                (3, 2, hashes["c"], files["c"])],
            2: [(1, None, hashes["a"], files["a"]),
                (2, 1, hashes["b"], files["b"])]})
        for n, v in vs.items():
            times = [r["created_ms"] for r in v["revisions"]]
            self.assertEqual(times, sorted(times), n)
            self.assertTrue(all(t0 - 5 <= t <= t1 + 5 for t in times),
                            (t0, times, t1))
            self.assertEqual(v["revisions"][0]["created_ms"],
                             v["created_ms"])
        self.assertEqual((vs[1]["role"], vs[1]["revision"]), ("retired", 3))
        self.assertEqual((vs[2]["role"], vs[2]["revision"],
                          vs[2]["previous_version"]), ("live", 2, 1))

        def stable(vs):
            return {n: (v["role"], v["revision"], v["hash"], v["file"],
                        v["created_ms"], v["previous_version"],
                        v["revisions"]) for n, v in vs.items()}

        want = stable(vs)
        c.close()
        s.restart()
        self.assertEqual(stable(kh.raw_versions(s, "rv")), want,
                         "after a graceful restart")
        s.kill()
        s.start()
        self.assertEqual(stable(kh.raw_versions(s, "rv")), want,
                         "after kill -9")
        c = s.client()
        self.addCleanup(c.close)

        # The files are gone: every revision still runs from the server's
        # copies (another version's at a named revision, then v2's own).
        for f in files.values():
            os.remove(f)
        st = self.rollback(c, "rv", to_version=1, to_revision=2)
        self.assertEqual((st["version"], st["revision"], st["hash"]),
                         (1, 2, hashes["b"]))
        prod.produce_many(50)
        kh.wait_lag0(s, "rv", version=1)
        st = self.rollback(c, "rv", to_version=2, to_revision=1)
        self.assertEqual((st["version"], st["revision"], st["hash"]),
                         (2, 1, hashes["a"]))
        kh.wait_lag0(s, "rv", version=2)

        # gc removes v1 (retired), not the code v2's revisions share with
        # it: v2.1 runs it after a restart, and v2.2 can come back.
        self.assertEqual(c.ok("proc_gc", name="rv")["removed"], 1)
        self.assertEqual(list(kh.raw_versions(s, "rv")), [2])
        c.close()
        s.restart()
        c = s.client()
        self.addCleanup(c.close)
        prod.produce_many(50)
        st = kh.wait_lag0(s, "rv", version=2)
        self.assertEqual((st["revision"], st["hash"], st["state"]),
                         (1, hashes["a"], "running"))
        st = c.ok("proc_rollback", name="rv", to_version=2,
                  to_revision=2)["proc"]
        self.assertEqual((st["revision"], st["hash"]), (2, hashes["b"]))
        prod.produce_many(50)
        st = kh.wait_lag0(s, "rv", version=2)
        self.assertEqual((st["state"], st["errors"]), ("running", 0))
        self.assertEqual(kh.wait_topic(c, "out", len(prod.sent))[1][-1]
                         ["value"]["tag"], "b")
        # v1 is gone: nothing before v2.1 to roll back to.
        c.ok("proc_rollback", name="rv")
        r = c.call("proc_rollback", name="rv")
        self.assertError(r, "BAD_STATE")
        self.assertIn("removed by proc gc", r["message"])
        s.stop_ok(self)

    # ------------------------------------------------------------------
    def test_dlq_shows_live_version_and_all_versions(self):
        s = self.new_server()
        c = s.client()
        self.addCleanup(c.close)
        c.ok("topic_create", topic="events", partitions=1)
        c.produce("events", [{"i": i} for i in range(1010)])
        every10 = self.write("every10.lua", DLQ_LUA % 10)
        every20 = self.write("every20.lua", DLQ_LUA % 20)
        self.create(c, "totals", every10, ["events"], ["totals"])
        st = kh.wait_lag0(s, "totals")
        self.assertEqual(st["dead_lettered"], 101)

        def dead(*args):
            lines = kh.ctl_json(s, "consume", "totals.dlq", *args)
            return [(r["topic"], r["provenance"]["version"],
                     r["provenance"]["offset"], r["value"]["offset"])
                    for r in lines]

        v1 = [("totals.dlq", 1, i, i) for i in range(0, 1010, 10)]
        # Lag 0 says the inputs were read; the dead letters become visible
        # once their batch is durable, a moment later.
        kh.wait_for(lambda: len(dead()) == len(v1), 10 * kh.SLOW,
                    "the dead letters visible")
        self.assertEqual(dead(), v1)

        c.ok("proc_replay", name="totals", file=every20)
        kh.wait_status(s, "totals", lambda st: st["version"] == 2, 30,
                       "the cut-over to v2")
        kh.wait_lag0(s, "totals", version=2)
        # The logical name shows the live version's dead letters ...
        v2 = [("totals.dlq", 2, i, i) for i in range(0, 1010, 20)]
        kh.wait_for(lambda: len(dead()) == len(v2), 10 * kh.SLOW,
                    "v2's dead letters visible")
        self.assertEqual(dead(), v2)
        # ... and --all-versions every version's, in version order.
        every = ([("totals.dlq.v1", 1, i, i) for i in range(0, 1010, 10)] +
                 [("totals.dlq.v2", 2, i, i) for i in range(0, 1010, 20)])
        self.assertEqual(dead("--all-versions"), every)
        lines = kh.ctl_json(s, "consume", "totals.dlq", "--all-versions")
        self.assertIn("bad record 0", lines[0]["value"]["error"])
        self.assertEqual(lines[0]["provenance"],
                         {"proc": "totals", "version": 1, "topic": "events",
                          "partition": 0, "offset": 0})
        self.assertEqual(dead("--all-versions", "--count", "3"), every[:3])
        self.assertEqual(dead("--all-versions", "--from", "100"),
                         [r for r in every if r[0].endswith("v1")][100:])

        # Any logical output of a processor, not only its DLQ.
        outs = kh.ctl_json(s, "consume", "totals", "--all-versions")
        self.assertEqual([(r["topic"], r["provenance"]["version"],
                           r["value"]["i"]) for r in outs],
                         [("totals.v1", 1, i) for i in range(1010)
                          if i % 10] +
                         [("totals.v2", 2, i) for i in range(1010)
                          if i % 20])

        # A rollback: the logical DLQ is v1's again; all versions stay.
        self.assertEqual(self.rollback(c, "totals")["version"], 1)
        kh.wait_lag0(s, "totals", version=1)
        self.assertEqual(dead(), v1)
        self.assertEqual(dead("--all-versions"), every)

        self.ctl_fails(s, ["consume", "events", "--all-versions"],
                       "not an output or dead-letter topic")
        self.ctl_fails(s, ["consume", "totals.dlq", "--all-versions",
                           "--follow"], "--all-versions", code=2)
        self.ctl_fails(s, ["consume", "totals.dlq", "--all-versions",
                           "--group", "g"], "--all-versions", code=2)
        s.stop_ok(self)


if __name__ == "__main__":
    kh.main()
