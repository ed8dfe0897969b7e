"""
test_worker_input.py - a processor's worker process reads its input
batches from the segment files itself (server/proc/wk_input.c), and must
check them exactly as kappad's reader does:

- damaged batches in the input (flipped bits in headers and in records) are
  stepped over as a consumer steps over them: every other record is
  processed exactly once, no damaged record reaches the processor, the log
  reports each damaged batch, and the processor keeps running;
- a worker that cannot open the log files (the kpfault shim refuses
  read-only opens of .log files) is sent its input instead: every record is
  still processed once, and the log says why;
- segments deleted by retention, or swapped by compaction, while a slow
  processor is still reading the topic: nothing is processed twice,
  nothing still in the log is missed, and the processor keeps reading the
  files itself (no warning that its worker cannot read them). Whether a
  file goes between kappad naming it and the worker opening it is up to
  the scheduler; these tests check the outcome under churn.
"""

import os
import random

import kappa_harness as kh
import test_integrity as ti

# About 0.5 ms of work per record, so that the producer runs ahead of it.
SLOW_EMIT = """local M = {}
function M.process(ctx, rec)
  local x = 0
  for i = 1, 1000000 do x = x + i end
  ctx:emit("out", { o = rec.offset, n = rec.value.n, x = x > 0 })
end
return M
"""

EMIT = """local M = {}
function M.process(ctx, rec)
  ctx:emit("out", { o = rec.offset, n = rec.value.n })
end
return M
"""


class WorkerInput(kh.ServerTest):
    class_server = False

    def run_processor(self, s, topic, timeout=60):
        """Runs EMIT over topic from earliest until it catches up; returns
        the offsets it emitted (each one's `n` checked) and its status."""
        code = self.write_code(s, "emit.lua", EMIT)
        with s.client() as c:
            c.ok("proc_create", name="p", file=code, inputs=[topic],
                 outputs=["out"])
        st = kh.wait_caught_up(s, "p", timeout)
        with s.client() as c:
            outs = c.fetch_all("out")
        seen = []
        for r in outs:
            self.assertEqual(r["value"]["n"], r["value"]["o"], r)
            seen.append(r["value"]["o"])
        return seen, st

    def test_damaged_input_is_stepped_over(self):
        s = self.new_server()
        t = kh.unique("dmg")
        n = 4000
        with s.client() as c:
            c.ok("topic_create", topic=t, segment_bytes=32768, fsync="never")
            c.ok("topic_create", topic="out", fsync="never")
            ti.produce_known(c, t, n, 20)
        s.stop_ok(self)
        files = ti.segment_files(ti.part_dir(s, t))
        sealed = [b for path in files[:-1] for b in ti.batches(path)]
        self.assertGreaterEqual(len(sealed), 150, "want many sealed batches")
        rng = random.Random(77)
        damaged = [sealed[i] for i in sorted(rng.sample(range(1, len(sealed), 2), 16))]
        for j, b in enumerate(damaged):
            if j % 4 == 0:     # a header field (kappad finds these)
                pos = b.pos + rng.randrange(b.header)
            else:              # a record (the worker finds these)
                pos = rng.randrange(b.pos + b.header, b.pos + b.length)
            ti.flip_bit(b.path, pos, rng.randrange(8))
        log_start = len(ti.log_text(s))
        s.start()
        seen, st = self.run_processor(s, t)
        lost = set()
        for b in damaged:
            lost.update(range(b.base, b.next))
        want = [o for o in range(n) if o not in lost]
        self.assertEqual(sorted(o for o in seen if o in lost)[:10], [],
                         "damaged records reached the processor")
        self.assertEqual(sorted(seen), want,
                         "every readable record processed exactly once")
        self.assertEqual(st["state"], "running", st)
        self.assertEqual(st["records_processed"], len(want), st)
        reported = {(m.group(2) + ".log", int(m.group(1))) for m in
                    ti.DAMAGE_LINE.finditer(ti.log_text(s)[log_start:])}
        self.assertEqual(reported, {(b.path, b.pos) for b in damaged},
                         "the log reports each damaged batch")

    def test_worker_that_cannot_read_the_log_is_sent_its_input(self):
        s = kh.FaultServer(name=type(self).__name__,
                           preload=kh.shim_path("kpfault"))
        flag = os.path.join(s.root, "refuse-open")
        s.env["KP_FAULT_OPEN_RO_FLAG"] = flag
        self.addCleanup(lambda: s.cleanup(keep=self.failed()))
        s.start()
        t = kh.unique("ro")
        n = 3000
        with s.client() as c:
            c.ok("topic_create", topic=t, segment_bytes=65536, fsync="never")
            c.ok("topic_create", topic="out", fsync="never")
            ti.produce_known(c, t, n, 50)
        open(flag, "w").close()
        seen, st = self.run_processor(s, t)
        self.assertEqual(sorted(seen), list(range(n)))
        self.assertEqual(st["state"], "running", st)
        self.assertIn("its worker cannot read the log files", ti.log_text(s))
        self.assertIn("Permission denied", ti.log_text(s))
        os.unlink(flag)
        s.stop_ok(self)

    def churn(self, cleanup, keys):
        """Produces 8000 records (keys: that many distinct) into a topic of
        16 KiB segments with the given cleanup while SLOW_EMIT reads it from
        earliest; returns the offsets it emitted, the log's records at the
        end, its status and the server's log since the start."""
        s = self.new_server({"retention_check_ms": 100})
        t = kh.unique("churn")
        n = 8000
        opts = {"cleanup": cleanup}
        if cleanup == "delete":
            opts["retention_bytes"] = 49152
        log_start = len(ti.log_text(s))
        code = self.write_code(s, "slow.lua", SLOW_EMIT)
        with s.client() as c:
            c.ok("topic_create", topic=t, segment_bytes=16384, fsync="never",
                 **opts)
            c.ok("topic_create", topic="out", fsync="never")
            c.ok("proc_create", name="p", file=code, inputs=[t],
                 outputs=["out"])
            for first in range(0, n, 20):
                idx = range(first, first + 20)
                c.produce(t, [ti.value_of(i) for i in idx],
                          keys=[("k%d" % (i % keys)).encode() for i in idx])
        st = kh.wait_caught_up(s, "p", 120)
        with s.client() as c:
            outs = c.fetch_all("out")
            first = c.call("fetch", topic=t, partition=0, offset=0)
            left = c.fetch_all(t, start=first.get("start_offset", 0))
        seen = []
        for r in outs:
            self.assertEqual(r["value"]["n"], r["value"]["o"], r)
            seen.append(r["value"]["o"])
        return seen, [r["offset"] for r in left], st, ti.log_text(s)[log_start:]

    def assert_churn_ok(self, seen, left, st, log):
        self.assertEqual(len(seen), len(set(seen)), "an input processed twice")
        missed = sorted(set(left) - set(seen))
        self.assertEqual(missed[:10], [], "records still in the log missed")
        self.assertEqual(st["state"], "running", st)
        self.assertNotIn("its worker cannot read the log files", log)

    def test_retention_deletes_segments_under_a_slow_reader(self):
        seen, left, st, log = self.churn("delete", 8000)
        self.assert_churn_ok(seen, left, st, log)
        self.assertGreater(left[0], 0, "retention removed nothing")
        self.assertIn("removed by retention; skipping them", log,
                      "the processor never fell behind retention")
        self.assertLess(len(seen), 8000)

    def test_compaction_swaps_segments_under_a_slow_reader(self):
        seen, left, st, log = self.churn("compact", 40)
        self.assert_churn_ok(seen, left, st, log)
        self.assertLess(len(left), 4000, "compaction removed nothing")


if __name__ == "__main__":
    kh.main()
