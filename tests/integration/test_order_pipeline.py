#!/usr/bin/env python3
"""
test_order_pipeline.py - the recorded order of a processor over several
input partitions when those partitions are another processor's logical
output and that processor is replayed (docs/PROCESSORS.md, "Order across
partitions" and "Pipelines").

`up` reads `ev` (one partition) and writes each event to `u-out` (three
partitions, keyed by the event's number); `down` reads `u-out` and keeps a
count per user over all three partitions, emitting the running count with
each record (tests/integration/fixtures/count_emit_offset.lua): any change
in the order it took across the partitions shows as another count.

After `proc replay up` cuts over, `down` reads `u-out` (v1's physical topic)
to its end and then `u-out.v2` from the switch point:

- `proc verify down` over its whole history would compare a run over two
  physical topics with one over `u-out.v2` alone: verify says so and names
  the switch, instead of reporting a difference; from a time after the
  switch it follows the recorded order and answers identical (also for
  `solo`, which reads u-one, up's one-partition output);
- kappad SIGKILLed around the follow and restarted: every input once, and
  the counts per user exactly 1..N (recovery followed its recorded order,
  the step that moved each input included);
- `proc replay down` (same code) over `u-out.v2`, which up's replay of the
  same code made record for record like `u-out`, gives every input the
  count the live run gave it;
- the same after a replay of up with other code (u-out.v2's offsets are
  not u-out's): verify from after the switch is identical, and a replay
  of down processes u-out.v2 once, with consistent counts.
"""

import collections
import random
import threading
import time

import kappa_harness as kh

COUNT = kh.fixture("count_emit_offset.lua")
UP = """
local M = {}
function M.process(ctx, rec)
  local v = { user = rec.value.user, i = rec.value.i }
  ctx:emit("u-out", v, tostring(rec.value.i))
  ctx:emit("u-one", v, rec.value.user)
end
return M
"""
# up's other code: drops every third event, so that u-out.v2's offsets are
# not u-out's.
UP_FEWER = UP.replace("  local v", "  if rec.value.i % 3 == 0 then return end\n"
                      "  local v")
T_NEW = 5000000000000     # event time of the events after the cut-over


class Events:
    """Produces {user, i} to ev with explicit event times; i counts up."""

    def __init__(self, server):
        self.server = server
        self.i = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = None
        self.error = None

    def produce(self, c, n, prefix="u", ts=1000, users=10):
        with self.lock:
            recs = [{"value": {"user": "%s%d" % (prefix, (self.i + k) % users),
                               "i": self.i + k},
                     "ts": ts + self.i + k} for k in range(n)]
            self.i += n
        c.ok("produce", topic="ev", partition=0, records=recs)

    def produce_many(self, n, chunk=40, pause=0.0, **kw):
        with self.server.client() as c:
            while n > 0:
                self.produce(c, min(chunk, n), **kw)
                n -= chunk
                if pause:
                    time.sleep(pause)

    def _run(self):
        """Produces until stop(); a kappad killed meanwhile is waited for
        (a batch it may have taken before the kill is sent again: ev may
        hold an event twice, which is fine here)."""
        while not self.stopping.is_set():
            try:
                with self.server.client(timeout=2.0) as c:
                    while not self.stopping.is_set():
                        self.produce(c, 25)
                        self.stopping.wait(0.01)
            except (OSError, EOFError, kh.ProtocolError):
                self.stopping.wait(0.05)
            except Exception as e:      # reported by stop()
                self.error = e
                return

    def start(self):
        self.stopping.clear()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def stop(self):
        if self.thread is not None:
            self.stopping.set()
            self.thread.join(30)
            self.thread = None
        if self.error is not None:
            raise AssertionError("producer failed: %r" % (self.error,))


class OrderPipeline(kh.ServerTest):
    class_server = False

    def setup_chain(self, preload, solo=False):
        """up, down and (solo) `solo`, which reads u-one (one partition)."""
        self.solo = solo
        s = self.new_server()
        up = self.write_code(s, "up.lua", UP)
        with s.client() as c:
            c.ok("topic_create", topic="ev", partitions=1)
            c.ok("topic_create", topic="u-out", partitions=3)
            c.ok("topic_create", topic="u-one", partitions=1)
            c.ok("topic_create", topic="d-out", partitions=1)
        ev = Events(s)
        ev.produce_many(preload)
        with s.client() as c:
            c.ok("proc_create", name="up", file=up, inputs=["ev"],
                 outputs=["u-out", "u-one"])
            c.ok("proc_create", name="down", file=COUNT, inputs=["u-out"],
                 outputs=["d-out"], config={"output": "d-out"})
            if solo:
                c.ok("proc_create", name="solo", file=COUNT,
                     inputs=["u-one"], outputs=["s-out"],
                     config={"output": "s-out"})
        self.settle(s)
        return s, ev

    def settle(self, s, up=None, down=None):
        kh.wait_lag0(s, "up", version=up)
        kh.wait_lag0(s, "down", version=down)
        if self.solo:
            kh.wait_lag0(s, "solo")
        kh.wait_for(lambda: self.quiet(s), 10, "the pipeline to settle",
                    interval=0.1)

    def quiet(self, s):
        a = kh.raw_status(s, "down")
        time.sleep(0.15)
        b = kh.raw_status(s, "down")
        return (a["records_processed"] == b["records_processed"] and
                b["lag"] == 0 and b["state"] == "running")

    def ends(self, c, topic):
        t = c.ok("topic_describe", topic=topic)["topic"]
        return [p["end_offset"] for p in t["partition_stats"]]

    def records(self, c, topic, partitions=3):
        out = []
        for p in range(partitions):
            out.extend(kh.fetch_topic(c, topic, partition=p)[1])
        return out

    def replay_up(self, s, code=None):
        kw = {} if code is None else {"file": self.write_code(s, "up2.lua",
                                                               code)}
        with s.client() as c:
            self.assertEqual(c.ok("proc_replay", name="up", **kw)["version"],
                             2)
        kh.wait_status(s, "up", lambda st: st["version"] == 2, 30,
                       "up to cut over to v2", interval=0.005)

    def switch(self, c):
        g = c.ok("proc_graph")["graph"]
        t = {x["name"]: x for x in g["topics"]}["u-out"]
        self.assertEqual(t["physical"], "u-out.v2", repr(t))
        return t["switch"]["offsets"]

    def down_outputs(self, c, version):
        """{(input topic, partition, offset): output value} of one version
        of down, asserting one output per input."""
        out = {}
        for r in kh.fetch_topic(c, "d-out.v%d" % version if version > 1
                                else "d-out")[1]:
            h = r["headers"]
            self.assertEqual((h["proc"], h["version"]), ("down", version))
            k = (h["topic"], h["partition"], h["offset"])
            self.assertNotIn(k, out, "input %r processed twice" % (k,))
            out[k] = r["value"]
        return out

    def assert_inputs_once(self, c, outs):
        """down's outputs cover u-out to its end and u-out.v2 from the
        switch point, once each; returns (old ends, switch, new ends)."""
        old, new, sw = self.ends(c, "u-out.v1"), self.ends(c, "u-out.v2"), \
            self.switch(c)
        want = ({("u-out", p, o) for p in range(3) for o in range(old[p])} |
                {("u-out.v2", p, o) for p in range(3)
                 for o in range(sw[p], new[p])})
        missing, extra = sorted(want - set(outs)), sorted(set(outs) - want)
        self.assertEqual((missing[:5], extra[:5]), ([], []),
                         "%d missing, %d unexpected of %d"
                         % (len(missing), len(extra), len(want)))
        return old, sw, new

    def assert_counts_exact(self, c, outs):
        """Each user's emitted counts are exactly 1..N, once each."""
        users = {}
        for name, topic in (("u-out.v1", "u-out"), ("u-out.v2", "u-out.v2")):
            for p in range(3):
                for r in kh.fetch_topic(c, name, partition=p)[1]:
                    users[(topic, p, r["offset"])] = r["value"]["user"]
        per = collections.defaultdict(list)
        for k, v in outs.items():
            self.assertEqual(v["user"], users[k], repr(k))
            per[v["user"]].append(v["n"])
        for user, ns in sorted(per.items()):
            dup = [n for n, k in collections.Counter(ns).items() if k > 1]
            self.assertEqual(sorted(ns), list(range(1, len(ns) + 1)),
                             "user %s: counts repeated %s" % (user, dup[:5]))

    # ------------------------------------------------------------------
    def test_verify_and_replay_after_the_follow(self):
        s, ev = self.setup_chain(preload=1500, solo=True)
        self.replay_up(s)
        # Events of new users after the cut-over, in small batches: down
        # interleaves u-out.v2's partitions in many steps.
        ev.produce_many(900, chunk=15, pause=0.005, prefix="x", ts=T_NEW)
        self.settle(s, up=2, down=1)
        c = s.client()
        self.addCleanup(c.close)
        st = kh.raw_status(s, "down")
        self.assertEqual(sorted({i["topic"] for i in st["inputs"]}),
                         ["u-out.v2"])
        live = self.down_outputs(c, 1)
        old, sw, new = self.assert_inputs_once(c, live)
        # up's replay of the same code rebuilt u-out record for record.
        self.assertEqual(sw, old)
        self.assertEqual(sum(new), 2400)
        self.assert_counts_exact(c, live)

        # (1) The whole history read two physical topics: said so.
        r = c.call("proc_verify", name="down")
        self.assertIs(r.get("ok"), False, repr(r))
        self.assertEqual(r["error"], "BAD_STATE", repr(r))
        for word in ("u-out.v2", "switch", "--from"):
            self.assertIn(word, r["message"])
        cp = s.ctl("proc", "verify", "down")
        self.assertCtlFails(cp, "u-out.v2")
        # From a time after the switch: the recorded order, identical.
        r = c.ok("proc_verify", name="down", **{"from": T_NEW})
        self.assertEqual((r["identical"], r["records"], r["outputs"],
                          r["difference"]), (True, 900, 900, None), repr(r))
        cp = s.ctl("proc", "verify", "down", "--from", "@%d" % T_NEW)
        self.assertCtlOk(cp)
        self.assertEqual(cp.stdout.strip(), "identical")
        # The same for a processor with one input partition (no order).
        self.assertEqual(kh.raw_status(s, "solo")["inputs"][0]["topic"],
                         "u-one.v2")
        r = c.call("proc_verify", name="solo")
        self.assertEqual(r.get("error"), "BAD_STATE", repr(r))
        self.assertIn("u-one.v2", r["message"])
        r = c.ok("proc_verify", name="solo", **{"from": T_NEW})
        self.assertEqual((r["identical"], r["records"], r["difference"]),
                         (True, 900, None), repr(r))

        # (3) A replay of down reads u-out.v2 from its start and follows
        # the live order: every input gets the count the live run gave it.
        cp = s.ctl("proc", "replay", "down", "--wait")
        self.assertCtlOk(cp)
        self.settle(s, up=2, down=2)
        replayed = self.down_outputs(c, 2)
        self.assertEqual(len(replayed), 2400)
        by_pos = {(p, o): v["n"] for (t, p, o), v in live.items()}
        diff = [(k, by_pos.get((k[1], k[2])), v["n"])
                for k, v in sorted(replayed.items())
                if by_pos.get((k[1], k[2])) != v["n"]]
        self.assertEqual(diff[:5], [], "%d inputs got another count in the "
                         "replay" % len(diff))
        # down v2 never followed: its whole history verifies.
        r = c.ok("proc_verify", name="down")
        self.assertEqual((r["identical"], r["records"], r["difference"]),
                         (True, 2400, None), repr(r))
        s.stop_ok(self)

    # ------------------------------------------------------------------
    def test_verify_and_replay_after_a_replay_of_other_code(self):
        """up's replay writes fewer records: the steps down took in u-out
        name offsets that mean other records in u-out.v2."""
        s, ev = self.setup_chain(preload=1500)
        self.replay_up(s, UP_FEWER)
        ev.produce_many(900, chunk=15, pause=0.005, prefix="x", ts=T_NEW)
        self.settle(s, up=2, down=1)
        c = s.client()
        self.addCleanup(c.close)
        live = self.down_outputs(c, 1)
        old, sw, new = self.assert_inputs_once(c, live)
        self.assertEqual((sum(old), sum(sw), sum(new)), (1500, 1000, 1600))
        self.assert_counts_exact(c, live)
        r = c.call("proc_verify", name="down")
        self.assertEqual(r.get("error"), "BAD_STATE", repr(r))
        r = c.ok("proc_verify", name="down", **{"from": T_NEW})
        self.assertEqual((r["identical"], r["records"], r["difference"]),
                         (True, 600, None), repr(r))
        # A replay of down reads u-out.v2 from its start: every record once,
        # each user's counts 1..N (the live order taken by offset where it
        # was u-out's, the same history after the switch).
        self.assertCtlOk(s.ctl("proc", "replay", "down", "--wait"))
        self.settle(s, up=2, down=2)
        replayed = self.down_outputs(c, 2)
        self.assertEqual(sorted(replayed),
                         [("u-out.v2", p, o) for p in range(3)
                          for o in range(new[p])])
        self.assert_counts_exact(c, replayed)
        r = c.ok("proc_verify", name="down")
        self.assertEqual((r["identical"], r["records"], r["difference"]),
                         (True, 1600, None), repr(r))
        s.stop_ok(self)

    # ------------------------------------------------------------------
    def test_recovery_across_the_follow(self):
        s, ev = self.setup_chain(preload=3000)
        rnd = random.Random(11)
        ev.start()
        try:
            self.replay_up(s)
            time.sleep(rnd.uniform(0.05, 0.3))
            s.kill()
            s.start()
            for _ in range(3):
                time.sleep(rnd.uniform(0.1, 0.6))
                s.kill()
                s.start()
        finally:
            ev.stop()
        # Then new users only, with a kill in the middle.
        ev.produce_many(300, chunk=15, pause=0.005, prefix="x", ts=T_NEW)
        s.kill()
        s.start()
        ev.produce_many(300, chunk=15, pause=0.005, prefix="x", ts=T_NEW)
        self.settle(s, up=2, down=1)
        c = s.client()
        self.addCleanup(c.close)
        live = self.down_outputs(c, 1)
        self.assert_inputs_once(c, live)
        self.assert_counts_exact(c, live)
        st = kh.raw_status(s, "down")
        self.assertEqual(st["records_processed"], len(live))
        r = c.ok("proc_verify", name="down", **{"from": T_NEW})
        self.assertEqual((r["identical"], r["records"], r["difference"]),
                         (True, 600, None), repr(r))
        with open(s.log_path, "rb") as f:
            log = f.read().decode("utf-8", "replace")
        self.assertNotIn("a recorded step names input records that are gone",
                         log)
        s.stop_ok(self)


if __name__ == "__main__":
    kh.main()
