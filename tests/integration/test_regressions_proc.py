"""
test_regressions_proc.py - regression tests for processor runtime bugs found
in review (fixed in "Processor runtime fixes from review"). Each test states
the bug it guards against; on the old server each one crashed, duplicated
outputs or lost its progress.

The processors here spin a configurable number of loop iterations per record
(value.spin), so that a batch is still running when the test acts.
"""

import collections
import os
import time

import kappa_harness as H

SLOW_LUA = """
local M = {}
function M.process(ctx, rec)
  local n = 0
  for i = 1, (rec.value.spin or 0) do n = n + 1 end
  ctx.state:incr("count", 1)
  ctx:emit("out", { i = rec.value.i }, tostring(rec.value.i))
end
return M
"""

FAST_LUA = SLOW_LUA.replace("rec.value.spin or 0", "0")

# No outputs: nothing to wait for between batches.
COUNT_LUA = SLOW_LUA.replace(
    '  ctx:emit("out", { i = rec.value.i }, tostring(rec.value.i))\n', "")


def _cpu_busy(pid, window=0.2):
    """CPU seconds kappad used over a short window, divided by the window."""
    a = H.cpu_seconds(pid)
    time.sleep(window)
    return (H.cpu_seconds(pid) - a) / window


class ProcRegressions(H.ServerTest):
    class_server = False

    def outputs(self, client, topic="out"):
        return client.fetch_all(topic)

    def all_outputs(self, client, n, topic="out"):
        """The outputs once every i in range(n) has one (outputs of a
        caught-up processor become visible promptly, not at once)."""
        box = {}

        def check():
            box["outs"] = self.outputs(client, topic)
            got = {r["value"]["i"] for r in box["outs"]}
            return box["outs"] if got >= set(range(n)) else None

        try:
            return H.wait_for(check, 10, "an output for each of %d inputs" % n)
        except AssertionError:
            got = {r["value"]["i"] for r in box["outs"]}
            raise AssertionError("no output for inputs %s"
                                 % sorted(set(range(n)) - got)[:20])

    def test_processor_delete_during_running_batch_keeps_server_up(self):
        """Bug: deleting a processor while its batch job ran freed the
        version and the processor the job's completion then read (use
        after free when the batch returned)."""
        s = self.new_server()
        slow = self.write_code(s, "slow.lua", SLOW_LUA)
        with s.client() as c:
            c.ok("topic_create", topic="in", partitions=1)
            c.ok("proc_create", name="p", file=slow, inputs=["in"],
                 outputs=["out"])
            c.produce("in", [{"i": i, "spin": 3000000} for i in range(100)])
            H.wait_for(lambda: _cpu_busy(s.proc.pid) > 0.3, 10,
                       "the processor's batch to be running")
            st = c.ok("proc_status", name="p")["proc"]
            self.assertLess(st["records_processed"], 100)
            c.ok("proc_delete", name="p")
            self.assertError(c.call("proc_status", name="p"), "NOT_FOUND")
            # The name (and the freed memory) are reused at once, while the
            # deleted processor's batch still runs.
            fast = self.write_code(s, "fast.lua", FAST_LUA)
            c.ok("proc_create", name="p", file=fast, inputs=["in"],
                 outputs=["out"])
            H.wait_lag0(s, "p")
            # The old job returns with its processor gone; wait until it has.
            H.wait_for(lambda: _cpu_busy(s.proc.pid) < 0.2, 30,
                       "the deleted processor's batch to return")
            self.assertTrue(s.alive(), s.log_tail())
            self.assertIs(c.call("ping").get("ok"), True)
            H.wait_lag0(s, "p")
            self.assertEqual(c.ok("view_get", name="p", key="count")["value"],
                             100)
        s.stop_ok(self)

    def test_rollback_to_version_finishing_its_batch_is_refused_until_idle(self):
        """Bug: rolling back to a retired version still finishing its last
        batch started it a second time (the server crashed), and a rollback
        kept the version's cursors where it stopped while restoring its view
        from the checkpoint, so records were counted twice or skipped."""
        s = self.new_server()
        slow = self.write_code(s, "slow.lua", SLOW_LUA)
        fast = self.write_code(s, "fast.lua", FAST_LUA)
        n = 200
        with s.client() as c:
            c.ok("topic_create", topic="in", partitions=1)
            c.ok("proc_create", name="p", file=slow, inputs=["in"],
                 outputs=["out"])
            c.produce("in", [{"i": i, "spin": 3000000} for i in range(n)])
            H.wait_for(lambda: _cpu_busy(s.proc.pid) > 0.3, 10,
                       "v1's batch to be running")
            self.assertEqual(c.ok("proc_replay", name="p",
                                  file=fast)["version"], 2)

            def cut_over():
                vs = H.raw_versions(s, "p")
                return vs.get(2, {}).get("role") == "live" and vs

            H.wait_for(cut_over, 30, "v2 to cut over")
            # v1 is retired but its batch (~64 records of ~10 ms) runs on.
            first = c.call("proc_rollback", name="p")
            self.assertTrue(s.alive(), "rollback while v1 was busy:\n%s"
                            % s.log_tail())
            if first.get("ok") is not True:
                self.assertError(first, "BAD_STATE")
                self.assertIn("finishing", first["message"])

                def rolled_back():
                    r = c.call("proc_rollback", name="p")
                    if r.get("ok") is True:
                        return r
                    self.assertError(r, "BAD_STATE")
                    return None

                H.wait_for(rolled_back, 30, "rollback to be accepted",
                           interval=0.1)
            H.wait_lag0(s, "p", timeout=60, version=1)
            self.assertEqual(c.ok("view_get", name="p", key="count")["value"],
                             n, "v1's count after the rollback")
            outs = self.all_outputs(c, n)
            cnt = collections.Counter(r["value"]["i"] for r in outs)
            self.assertEqual(sorted(cnt), list(range(n)))
            self.assertEqual([i for i, k in cnt.items() if k > 1], [],
                             "duplicated outputs after the rollback")
        s.stop_ok(self)

    def test_restart_during_replayed_tail_after_crash_does_not_duplicate(self):
        """Bug: after a crash, a checkpoint taken while the replayed tail
        was still passing outputs already written (here: a graceful
        restart) claimed them all, so records between the cursor and the
        end of those outputs were processed again and emitted twice."""
        s = self.new_server()
        slow = self.write_code(s, "slow.lua", SLOW_LUA)
        n = 400
        with s.client() as c:
            c.ok("topic_create", topic="in", partitions=1)
            c.ok("proc_create", name="p", file=slow, inputs=["in"],
                 outputs=["out"])
            c.produce("in", [{"i": i, "spin": 2000000} for i in range(n)])
            H.wait_for(lambda: len(self.outputs(c)) >= 128, 60,
                       "128 outputs")
        s.kill()
        s.start()
        # The replayed tail is passing the outputs written before the
        # crash: a graceful restart checkpoints in the middle of it.
        s.restart()
        H.wait_lag0(s, "p", timeout=120)
        with s.client() as c:
            outs = self.all_outputs(c, n)
        cnt = collections.Counter(r["value"]["i"] for r in outs)
        dups = sorted(i for i, k in cnt.items() if k > 1)
        self.assertEqual((dups[:10], len(dups)), ([], 0),
                         "inputs with duplicated outputs")
        self.assertEqual(sorted(cnt), list(range(n)))
        s.stop_ok(self)

    def test_outputs_to_many_partitions_in_one_batch(self):
        """Bug: a batch emitting to more than 8 output partitions grew the
        array of per-partition builders while each held a pointer into
        it: the builders then wrote through freed memory."""
        s = self.new_server()
        code = self.write_code(s, "fan.lua", """
local M = {}
function M.process(ctx, rec)
  for i = 1, 4 do
    ctx:emit("wide", { i = rec.value.i, n = i }, rec.value.i .. "-" .. i)
  end
end
return M
""")
        with s.client() as c:
            c.ok("topic_create", topic="in", partitions=1)
            c.ok("topic_create", topic="wide", partitions=16)
            c.ok("proc_create", name="fan", file=code, inputs=["in"],
                 outputs=["wide"])
            c.produce("in", [{"i": i} for i in range(300)])
            H.wait_lag0(s, "fan")

            def outputs():
                got = []
                for part in range(16):
                    got += [(r["value"]["i"], r["value"]["n"])
                            for r in c.fetch_all("wide", partition=part)]
                return got if len(got) >= 1200 else None

            # Visible once their fsync is done, a moment after lag 0.
            got = H.wait_for(outputs, 30, "1200 outputs")
        self.assertEqual(sorted(got),
                         [(i, n) for i in range(300) for n in range(1, 5)])
        self.assertEqual(s.sanitizer_reports(), [], s.log_tail())
        s.stop_ok(self)

    def test_processor_with_backlog_checkpoints_while_catching_up(self):
        """Bug: a processor with a backlog was never idle at a tick, so it
        never checkpointed until it caught up: a crash during a long
        catch-up restarted it from the very beginning."""
        s = self.new_server()
        code = self.write_code(s, "count.lua", COUNT_LUA)
        with s.client() as c:
            c.ok("topic_create", topic="in", partitions=1)
            c.ok("proc_create", name="p", file=code, inputs=["in"],
                 outputs=[])
            # Running: its first checkpoint (the init job's) is written.
            H.wait_lag0(s, "p")

            def stamp():
                return c.ok("proc_status", name="p")["proc"]["checkpoint"][
                    "at_ms"]

            self.assertGreater(stamp(), 0, "no first checkpoint")
            first = stamp()
            # ~12 s of work (plain build): far more than the 1 s interval.
            c.produce("in", [{"i": i, "spin": 1000000} for i in range(3000)])

            def checkpointed_or_caught_up():
                # Lag read after the file changed: still > 0 proves the
                # checkpoint came during the backlog.
                changed = stamp() != first
                lag = c.ok("proc_status", name="p")["proc"]["lag"]
                if lag == 0:
                    return "caught up"
                return "checkpoint" if changed else None

            self.assertEqual(
                H.wait_for(checkpointed_or_caught_up, 10,
                           "a checkpoint during the backlog"),
                "checkpoint", "no checkpoint while catching up a backlog")
        s.kill()
        s.start()
        st = H.raw_status(s, "p")
        self.assertGreater(st["inputs"][0]["offset"], 0,
                           "restarted from the beginning after a crash "
                           "during the backlog")
        with s.client() as c:
            c.ok("proc_delete", name="p")
        s.stop_ok(self)


if __name__ == "__main__":
    H.main()
