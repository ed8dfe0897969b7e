#!/usr/bin/env python3
"""
test_regressions_issue9.py - regression tests for the processor bugs of
issue 9. Each test states the bug it guards against:

- `proc verify` of a processor that had not emitted anything yet passed
  NULL to qsort (the sanitizer build of kappad died);
- max_error_rate acted only after a whole batch: a processor whose every
  record failed dead-lettered its whole backlog before it paused. Now the
  rate is judged as soon as error_window_min records (a proc_create field,
  a kappactl flag and a server setting, default 20) were seen;
- `proc replay --rate N` ran in bursts faster than N and its progress
  reported a rate above N and an ETA computed from it.
"""

import os
import subprocess
import time

import kappa_harness as H

# Only view changes: a processor that never emits.
INCR_LUA = """
local M = {}
function M.process(ctx, rec)
  ctx.state:incr("n", 1)
end
return M
"""

# Every record fails.
ALWAYS_FAILS_LUA = """
local M = {}
function M.process(ctx, rec)
  ctx.state:incr("n", 1)
  error("always fails " .. tostring(rec.value.i))
end
return M
"""

COUNT_LUA = """
local M = {}
function M.process(ctx, rec)
  ctx.state:incr("u:" .. rec.value.user, 1)
end
return M
"""


class Issue9Regressions(H.ServerTest):
    class_server = False

    def assertNoSanitizerReports(self, server):
        self.assertTrue(server.alive(), "kappad died:\n%s" % server.log_tail())
        self.assertEqual(server.sanitizer_reports(), [], server.log_tail())

    # ------------------------------------------------------------------
    # 1. verify with nothing emitted

    def test_verify_of_processor_that_never_emitted_is_identical(self):
        """Bug: proc verify of a processor with no output yet sorted an
        empty side with qsort(NULL, 0, ...): UBSan stopped kappad
        ("null pointer passed as argument 1") in kp_proc_verify_finish."""
        s = self.new_server()
        code = self.write_code(s, "incr.lua", INCR_LUA)
        with s.client() as c:
            c.ok("topic_create", topic="in", partitions=1)
            c.produce("in", [{"i": i} for i in range(3)])
            # No outputs at all (emits would make topics outputs) ...
            c.ok("proc_create", name="open", file=code, inputs=["in"])
            # ... and a declared output it never writes to.
            c.ok("proc_create", name="declared", file=code, inputs=["in"],
                 outputs=["never"])
        for name in ("open", "declared"):
            H.wait_lag0(s, name)
            cp = s.ctl("proc", "verify", name)
            self.assertCtlOk(cp, "verify %s:" % name)
            self.assertEqual(cp.stdout, "identical\n",
                             "verify %s: %r" % (name, cp.stderr))
            self.assertNoSanitizerReports(s)
            self.assertEqual(H.view_scan(s, name), {"n": 3})
        # A range with no records at all compares two empty sides too.
        with s.client() as c:
            r = c.ok("proc_verify", name="open", **{"from": {"offset": 3}})
            self.assertIs(r["identical"], True, repr(r))
            self.assertEqual((r["records"], r["outputs"]), (0, 0), repr(r))
        self.assertNoSanitizerReports(s)
        s.stop_ok(self)

    # ------------------------------------------------------------------
    # 2. max_error_rate within its first window

    def failing_backlog(self, server, n=100):
        with server.client() as c:
            c.ok("topic_create", topic="in", partitions=1)
            c.produce("in", [{"i": i} for i in range(n)])

    def wait_paused(self, server, name):
        st = H.wait_proc(server, name, lambda st: st["state"] == "paused",
                         what="processor %s to pause" % name)
        self.assertIn("error rate", st["reason"] or "")
        self.assertIn("max_error_rate", st["reason"] or "")
        self.assertEqual(st["errors"], st["dead_lettered"])
        return st

    def test_error_rate_pauses_within_error_window_min_default(self):
        """Bug: with max_error_rate 0.5, a processor whose 100 backlog
        records all failed dead-lettered all 100 before it paused (the rate
        was judged only after the batch). With the default
        error_window_min of 20 it pauses after at most 20."""
        s = self.new_server()
        code = self.write_code(s, "fails.lua", ALWAYS_FAILS_LUA)
        self.failing_backlog(s)
        with s.client() as c:
            c.ok("proc_create", name="p", file=code, inputs=["in"],
                 outputs=[], max_error_rate=0.5)
        st = self.wait_paused(s, "p")
        self.assertGreater(st["dead_lettered"], 0)
        self.assertLessEqual(st["dead_lettered"], 20, st)
        self.assertLessEqual(st["records_processed"], 20, st)
        # Paused means paused: nothing more is dead-lettered.
        time.sleep(0.3 * H.SLOW)
        st2 = H.proc_status(s, "p")
        self.assertEqual(st2["state"], "paused")
        self.assertEqual(st2["dead_lettered"], st["dead_lettered"])
        dlq = H.wait_for(
            lambda: (lambda o: o if len(o) >= st["dead_lettered"] else None)(
                H.consume_all(s, "p.dlq")), 10, "dead letters")
        self.assertEqual(len(dlq), st["dead_lettered"])
        s.stop_ok(self)

    def test_error_window_min_flag_is_kept_across_a_restart(self):
        """kappactl proc create --error-window-min N: the processor pauses
        after at most N failing records, and again after at most N more
        once resumed after a restart (the setting is persisted)."""
        s = self.new_server()
        code = self.write_code(s, "fails.lua", ALWAYS_FAILS_LUA)
        self.failing_backlog(s)
        cp = s.ctl("proc", "create", "p", "--file", code, "--input", "in",
                   "--max-error-rate", "0.5", "--error-window-min", "5")
        self.assertCtlOk(cp)
        st = self.wait_paused(s, "p")
        self.assertGreater(st["dead_lettered"], 0)
        self.assertLessEqual(st["dead_lettered"], 5, st)
        first = st["dead_lettered"]
        s.restart()
        st = H.proc_status(s, "p")
        self.assertEqual(st["state"], "paused")
        self.assertEqual(st["dead_lettered"], first)
        H.ctl_json(s, "proc", "resume", "p")
        st = H.wait_proc(s, "p", lambda st: st["state"] == "paused"
                         and st["dead_lettered"] > first,
                         what="p to pause again after the resume")
        self.assertLessEqual(st["dead_lettered"] - first, 5, st)
        # A bad value is refused by kappactl and by the server.
        self.assertCtlFails(s.ctl("proc", "create", "q", "--file", code,
                                  "--input", "in", "--error-window-min",
                                  "x"), "--error-window-min")
        with s.client() as c:
            self.assertError(c.call("proc_create", name="q", file=code,
                                    inputs=["in"], error_window_min=0),
                             "BAD_REQUEST")
        s.stop_ok(self)

    def test_error_window_min_server_setting(self):
        """The server's error_window_min setting applies to processors
        created without the field; the request's field overrides it."""
        s = self.new_server(config={"error_window_min": 8})
        code = self.write_code(s, "fails.lua", ALWAYS_FAILS_LUA)
        self.failing_backlog(s)
        with s.client() as c:
            c.ok("proc_create", name="cfg", file=code, inputs=["in"],
                 outputs=[])
            c.ok("proc_create", name="req", file=code, inputs=["in"],
                 outputs=[], error_window_min=3)
        st = self.wait_paused(s, "cfg")
        self.assertGreater(st["dead_lettered"], 3)  # not the request's 3
        self.assertLessEqual(st["dead_lettered"], 8, st)
        st = self.wait_paused(s, "req")
        self.assertLessEqual(st["dead_lettered"], 3, st)
        s.stop_ok(self)

    def test_error_window_min_config_is_checked(self):
        s = self.new_server(config={"error_window_min": 0}, start=False)
        with self.assertRaises(AssertionError) as cm:
            s.start(timeout=5)
        self.assertIn("error_window_min", str(cm.exception))

    # ------------------------------------------------------------------
    # 3. replay --rate: the pace and its progress

    def test_replay_rate_is_honoured_by_pace_and_progress(self):
        """Bug: `proc replay --rate 100 --wait` printed 383 rec/s and an ETA
        computed from it: the replay ran the limit's worth of records in a
        burst at the start of each second (twice in the first), and the
        rate shown was measured over the first burst."""
        s = self.new_server()
        code = self.write_code(s, "count.lua", COUNT_LUA)
        n, limit = 1000, 200
        with s.client() as c:
            c.ok("topic_create", topic="in", partitions=1)
            c.produce("in", [{"user": "u%d" % (i % 7), "i": i}
                             for i in range(n)])
            c.ok("proc_create", name="p", file=code, inputs=["in"],
                 outputs=[])
        H.wait_lag0(s, "p")
        t0 = time.monotonic()
        cp = s.ctl("proc", "replay", "p", "--rate", str(limit), "--wait",
                   timeout=120 * H.SLOW)
        elapsed = time.monotonic() - t0
        self.assertCtlOk(cp)
        lines = H.json_lines(cp.stdout)
        progress = [x for x in lines if "records_per_second" in x]
        final = lines[-1]
        self.assertEqual(final["version"], 2, cp.stdout)
        # 1000 records at 200/s: 5 s; a generous lower bound.
        self.assertGreaterEqual(elapsed, 0.8 * n / limit,
                                "%d records at %d/s took %.2f s; lines: %r"
                                % (n, limit, elapsed, progress))
        known = [x for x in progress if x["records_per_second"] > 0]
        self.assertGreaterEqual(len(known), 2, cp.stdout)
        for x in known:
            rps = x["records_per_second"]
            self.assertLessEqual(rps, 1.5 * limit,
                                 "reported rate above --rate: %r" % x)
            if x["records_to_go"] > 0:
                want = x["records_to_go"] * 1000.0 / rps
                self.assertLessEqual(abs(x["eta_ms"] - want), 1000,
                                     "ETA not from the rate: %r" % x)
                self.assertGreaterEqual(
                    x["eta_ms"], x["records_to_go"] * 1000.0 / (1.5 * limit),
                    "ETA faster than --rate allows: %r" % x)
        self.assertEqual(H.view_scan(s, "p"),
                         {"u:u%d" % k: len(range(k, n, 7)) for k in range(7)})
        s.stop_ok(self)


if __name__ == "__main__":
    H.main()
