#!/usr/bin/env python3
"""
test_pipelines.py - processors that read other processors' logical outputs
(docs/PROCESSORS.md, "Pipelines"): `totals` counts events per user into
`user-totals`, `alert` reads `user-totals` and writes `alerts`, one output
per input record (tests/integration/fixtures/count_emit_offset.lua), so
the provenance of `alerts` says exactly which `user-totals` records
`alert` processed, and how often.

- the two-stage pipeline runs, and proc_graph / `kappactl proc graph`
  show it (processors, topics with their physical topic and generation,
  edges, versions);
- `proc replay totals` (no cascade): `alert` follows `user-totals` onto
  the new physical topic from the cut-over point on (the offsets the
  graph reports), keeps processing, and processes every record after the
  switch point exactly once (also while events keep coming);
- the same when kappad is SIGKILLed right after the cut-over;
- a cascade replay killed while it builds still cuts over together after
  the restart;
- `proc replay totals --cascade` replays totals and alert together (the
  new alert reads the new totals' physical output from its start) and
  cuts both over in one step; `proc rollback totals --cascade` brings
  both back; every output is consistent with its input;
- a downstream that cannot follow (its input names a version's topic
  that is retired, or deleted) is reported: `stalled` in proc status,
  `processor_stalled` on /health, kappa_processor_stalled on /metrics.
"""

import collections
import json
import time

import kappa_harness as kh

COUNT = kh.fixture("count_emit_offset.lua")


class PipelineTest(kh.ServerTest):
    class_server = False

    def setup_chain(self, preload=2000):
        s = self.new_server()
        c = s.client()
        self.addCleanup(c.close)
        c.ok("topic_create", topic="events", partitions=2)
        c.ok("topic_create", topic="user-totals", partitions=2)
        prod = kh.UserProducer(s, "events", partitions=2, users=15,
                               batch=(10, 30), pause=0.01)
        prod.produce_many(preload)
        c.ok("proc_create", name="totals", file=COUNT, inputs=["events"],
             outputs=["user-totals"], config={"output": "user-totals"})
        c.ok("proc_create", name="alert", file=COUNT, inputs=["user-totals"],
             outputs=["alerts"], config={"output": "alerts"})
        self.settle(s)
        return s, c, prod

    def settle(self, s, totals=None, alert=None):
        kh.wait_lag0(s, "totals", version=totals)
        kh.wait_lag0(s, "alert", version=alert)
        # Once totals has caught up, its last outputs are visible to alert
        # after their fsync: wait until alert sees no more.
        kh.wait_for(lambda: self.quiet(s), 10, "the pipeline to settle",
                    interval=0.1)

    def quiet(self, s):
        a = kh.raw_status(s, "alert")
        time.sleep(0.15)
        b = kh.raw_status(s, "alert")
        return (a["records_processed"] == b["records_processed"] and
                b["lag"] == 0 and b["state"] == "running")

    def graph(self, c):
        return c.ok("proc_graph")["graph"]

    def ends(self, c, topic):
        t = c.ok("topic_describe", topic=topic)["topic"]
        return [p["end_offset"] for p in t["partition_stats"]]

    def records(self, c, topic):
        n = c.ok("topic_describe", topic=topic)["topic"]["partitions"]
        out = []
        for p in range(n):
            out.extend(kh.fetch_topic(c, topic, partition=p)[1])
        return out

    def alert_inputs(self, c, topic="alerts", version=None):
        """Counter of (topic, partition, offset) of the user-totals records
        that alert's outputs in topic came from."""
        seen = collections.Counter()
        for r in self.records(c, topic):
            h = r["headers"]
            self.assertEqual(h["proc"], "alert", repr(r))
            if version is not None:
                self.assertEqual(h["version"], version, repr(r))
            seen[(h["topic"], h["partition"], h["offset"])] += 1
        return seen

    def assertExactlyOnce(self, seen, want, what):
        dups = sorted(k for k, n in seen.items() if n > 1)
        missing = sorted(set(want) - set(seen))
        extra = sorted(set(seen) - set(want))
        self.assertEqual((dups[:5], missing[:5], extra[:5]), ([], [], []),
                         "%s: %d duplicated, %d missing, %d unexpected of %d"
                         % (what, len(dups), len(missing), len(extra),
                            len(want)))

    @staticmethod
    def span(topic, starts, ends):
        return {(topic, p, o) for p in range(len(ends))
                for o in range(starts[p], ends[p])}

    def versions(self, c):
        """(alert's, totals') live versions, from one proc_graph."""
        return tuple(p["version"] for p in sorted(
            self.graph(c)["processors"], key=lambda p: p["name"]))

    def switch_point(self, c, topic, generation):
        t = {x["name"]: x for x in self.graph(c)["topics"]}[topic]
        self.assertEqual(t["generation"], generation, repr(t))
        sw = t["switch"]
        self.assertIsInstance(sw, dict, repr(t))
        self.assertEqual((sw["generation"], sw["physical"]),
                         (generation, t["physical"]), repr(t))
        return sw["offsets"]

    # ------------------------------------------------------------------
    def test_two_stage_pipeline_and_graph(self):
        s, c, prod = self.setup_chain()
        ut = self.ends(c, "user-totals")
        self.assertEqual(sum(ut), len(prod.sent))
        self.assertExactlyOnce(self.alert_inputs(c),
                               self.span("user-totals", [0, 0], ut),
                               "alert over user-totals")
        st = kh.raw_status(s, "alert")
        self.assertIsNone(st["stalled"])
        self.assertEqual(st["records_processed"], len(prod.sent))

        g = self.graph(c)
        self.assertEqual(sorted(g), ["edges", "processors", "topics"])
        self.assertEqual(g["edges"], [{"from": "totals", "to": "alert",
                                       "topic": "user-totals"}])
        procs = {p["name"]: p for p in g["processors"]}
        self.assertEqual(sorted(procs), ["alert", "totals"])
        a = procs["alert"]
        self.assertEqual((a["version"], a["state"], a["inputs"],
                          a["outputs"], a["stalled"]),
                         (1, "running", ["user-totals"], ["alerts"], None))
        self.assertEqual([(v["version"], v["role"], v["inputs"],
                           v["outputs"]) for v in a["versions"]],
                         [(1, "live", ["user-totals"],
                           ["alerts", "alert.dlq"])])
        topics = {t["name"]: t for t in g["topics"]}
        self.assertEqual(sorted(topics), ["alerts", "events", "user-totals"])
        ev = topics["events"]
        self.assertEqual((ev["physical"], ev["generation"], ev["producer"],
                          ev["consumers"]), ("events", None, None, ["totals"]))
        u = topics["user-totals"]
        self.assertEqual((u["physical"], u["generation"], u["producer"],
                          u["consumers"]),
                         ("user-totals", 1, "totals", ["alert"]))
        self.assertEqual(topics["alerts"]["producer"], "alert")

        # kappactl prints the same graph, and knows the verb.
        out = kh.ctl_json(s, "proc", "graph")
        self.assertEqual(len(out), 1)
        self.assertEqual(out[0]["edges"], g["edges"])
        self.assertEqual(sorted(p["name"] for p in out[0]["processors"]),
                         ["alert", "totals"])
        self.assertIn("proc graph", s.ctl("--help").stdout)
        s.stop_ok(self)

    # ------------------------------------------------------------------
    def test_replay_upstream_downstream_follows(self):
        s, c, prod = self.setup_chain(preload=3000)
        # Events keep coming before, during and after the cut-over.
        prod.start()
        try:
            r = c.ok("proc_replay", name="totals")
            self.assertEqual(r["version"], 2)
            kh.wait_status(s, "totals", lambda st: st["version"] == 2, 30,
                           "totals to cut over to v2")
            time.sleep(0.5)
        finally:
            prod.stop()
        prod.produce_many(700)
        self.settle(s, totals=2, alert=1)

        # alert left v1's physical topic for v2's and kept processing.
        old = self.ends(c, "user-totals.v1")     # v1's, final
        new = self.ends(c, "user-totals.v2")
        st = kh.raw_status(s, "alert")
        self.assertEqual(sorted((i["topic"], i["partition"], i["offset"])
                                for i in st["inputs"]),
                         [("user-totals.v2", p, new[p]) for p in range(2)])
        e = self.switch_point(c, "user-totals", 2)
        # The switch point is the end of v2's rebuilt history at the
        # cut-over: at least the preloaded events, not past the end.
        self.assertGreaterEqual(sum(e), 3000)
        for p in range(2):
            self.assertLessEqual(e[p], new[p])
        self.assertGreaterEqual(sum(new) - sum(e), 700)

        self.assertEqual((st["version"], st["state"], st["stalled"]),
                         (1, "running", None))
        want = (self.span("user-totals", [0, 0], old) |
                self.span("user-totals.v2", e, new))
        self.assertExactlyOnce(self.alert_inputs(c, version=1), want,
                               "alert across totals' cut-over")
        self.assertEqual(st["records_processed"], len(want))
        s.stop_ok(self)

    # ------------------------------------------------------------------
    def test_follow_survives_sigkill_after_cut_over(self):
        s, c, prod = self.setup_chain(preload=4000)
        c.ok("proc_replay", name="totals")
        kh.wait_status(s, "totals", lambda st: st["version"] == 2, 30,
                       "totals to cut over to v2", interval=0.005)
        s.kill()
        c.close()
        s.start()
        c = s.client()
        self.addCleanup(c.close)
        prod.produce_many(500)
        self.settle(s, totals=2, alert=1)

        old = self.ends(c, "user-totals.v1")
        self.assertEqual(sum(old), 4000)
        new = self.ends(c, "user-totals.v2")
        self.assertEqual(sum(new), 4500)
        st = kh.raw_status(s, "alert")
        self.assertEqual(sorted((i["topic"], i["partition"], i["offset"])
                                for i in st["inputs"]),
                         [("user-totals.v2", p, new[p]) for p in range(2)])
        e = self.switch_point(c, "user-totals", 2)
        self.assertEqual(sum(e), 4000)      # v2 rebuilt the 4000 events
        want = (self.span("user-totals", [0, 0], old) |
                self.span("user-totals.v2", e, new))
        self.assertExactlyOnce(self.alert_inputs(c, version=1), want,
                               "alert across a kill -9 after the cut-over")
        self.assertEqual(st["records_processed"], 4500)
        self.assertIsNone(st["stalled"])
        s.stop_ok(self)

    # ------------------------------------------------------------------
    def test_cascade_replay_and_rollback(self):
        s, c, prod = self.setup_chain(preload=3000)
        r = c.ok("proc_replay", name="totals", cascade=True)
        self.assertEqual(r["version"], 2)
        self.assertEqual(r["cascade"], [{"name": "totals", "version": 2},
                                        {"name": "alert", "version": 2}])
        vs = kh.raw_versions(s, "alert")
        self.assertEqual(vs[2]["role"], "building")
        self.assertEqual(sorted({i["topic"] for i in vs[2]["inputs"]}),
                         ["user-totals.v2"])

        # Both cut over in one step: no graph shows one without the other.
        def versions():
            return self.versions(c)

        seen = set()

        def both_v2():
            v = versions()
            seen.add(v)
            return v == (2, 2)

        kh.wait_for(both_v2, 30, "the chain to cut over", interval=0.005)
        self.assertLessEqual(seen, {(1, 1), (2, 2)}, seen)

        prod.produce_many(400)
        self.settle(s, totals=2, alert=2)
        new = self.ends(c, "user-totals.v2")
        self.assertEqual(sum(new), 3400)
        self.assertExactlyOnce(
            self.alert_inputs(c, "alerts", version=2),
            self.span("user-totals.v2", [0, 0], new),
            "alert v2 over totals v2 (logical alerts)")
        with s.client() as c2:
            self.assertEqual(c2.ok("fetch", topic="alerts", offset=0,
                                   max_bytes=1)["generation"], 2)
        g = self.graph(c)
        self.assertEqual({t["name"]: t["physical"] for t in g["topics"]},
                         {"events": "events", "user-totals": "user-totals.v2",
                          "alerts": "alerts.v2"})

        # Rollback of the chain: both v1 again, together.
        r = c.ok("proc_rollback", name="totals", cascade=True)
        self.assertEqual(r["proc"]["version"], 1)
        self.assertEqual(r["cascade"], [{"name": "totals", "version": 1},
                                        {"name": "alert", "version": 1}])
        self.assertEqual(versions(), (1, 1))
        prod.produce_many(300)
        self.settle(s, totals=1, alert=1)
        old = self.ends(c, "user-totals")
        self.assertEqual(sum(old), 3700)
        self.assertExactlyOnce(
            self.alert_inputs(c, "alerts", version=1),
            self.span("user-totals", [0, 0], old),
            "alert v1 over totals v1 after the rollback")
        self.assertIsNone(kh.raw_status(s, "alert")["stalled"])

        # kappactl: replay --cascade --wait, rollback --cascade (both to
        # the version live before v3: v1).
        cp = s.ctl("proc", "replay", "totals", "--cascade", "--wait")
        self.assertCtlOk(cp)
        self.assertEqual(kh.json_lines(cp.stdout)[-1]["version"], 3)
        self.assertEqual(versions(), (3, 3))
        cp = s.ctl("proc", "rollback", "totals", "--cascade")
        self.assertCtlOk(cp)
        out = kh.json_lines(cp.stdout)
        self.assertEqual(out[0]["cascade"], [{"name": "totals", "version": 1},
                                             {"name": "alert", "version": 1}])
        self.assertEqual(versions(), (1, 1))
        s.stop_ok(self)

    # ------------------------------------------------------------------
    def test_cascade_replay_survives_sigkill(self):
        s, c, prod = self.setup_chain(preload=9000)
        # 9000 records at 3000/s: killed while both new versions build.
        c.ok("proc_replay", name="totals", cascade=True, rate=3000)
        time.sleep(1.0)
        self.assertEqual(self.versions(c), (1, 1))
        s.kill()
        c.close()
        s.start()
        c = s.client()
        self.addCleanup(c.close)
        seen = set()

        def both_v2():
            v = self.versions(c)
            seen.add(v)
            return v == (2, 2)

        kh.wait_for(both_v2, 60, "the chain to cut over after the restart",
                    interval=0.005)
        self.assertLessEqual(seen, {(1, 1), (2, 2)}, seen)
        prod.produce_many(300)
        self.settle(s, totals=2, alert=2)
        new = self.ends(c, "user-totals.v2")
        self.assertEqual(sum(new), 9300)
        self.assertExactlyOnce(
            self.alert_inputs(c, "alerts", version=2),
            self.span("user-totals.v2", [0, 0], new),
            "alert v2 over totals v2 after a kill -9 in the cascade")
        s.stop_ok(self)

    # ------------------------------------------------------------------
    def test_stalled_downstream_is_reported(self):
        s, c, prod = self.setup_chain(preload=500)
        # pinned reads version 1's output by name, so it does not follow
        # totals to a new version; frozen reads version 2's.
        c.ok("proc_create", name="pinned", file=COUNT,
             inputs=["user-totals.v1"], outputs=["pinned-out"],
             config={"output": "pinned-out"})
        kh.wait_lag0(s, "pinned")
        self.assertIsNone(kh.raw_status(s, "pinned")["stalled"])
        self.assertEqual(s.http_get("/health")[0], 200)
        self.assertEqual(s.metric("kappa_processor_stalled",
                                  {"processor": "pinned", "version": "1"}), 0)

        c.ok("proc_replay", name="totals")
        kh.wait_status(s, "totals", lambda st: st["version"] == 2, 30,
                       "totals to cut over to v2")
        prod.produce_many(200)
        st = kh.wait_status(s, "pinned", lambda st: st["stalled"], 10,
                            "pinned to be reported stalled")
        self.assertIn("user-totals", st["stalled"])
        self.assertIn("totals", st["stalled"])
        self.assertIn("user-totals.v2", st["stalled"])
        self.assertEqual(st["state"], "running")
        status, _, body = s.http_get("/health")
        self.assertEqual(status, 503, body)
        reasons = [x for x in json.loads(body)["reasons"]
                   if x["kind"] == "processor_stalled"]
        self.assertEqual([x["processor"] for x in reasons], ["pinned"], body)
        self.assertIn("user-totals", reasons[0]["message"])
        self.assertEqual(s.metric("kappa_processor_stalled",
                                  {"processor": "pinned", "version": "1"}), 1)
        self.assertEqual(s.metric("kappa_processor_stalled",
                                  {"processor": "alert", "version": "1"}), 0)
        g = {p["name"]: p for p in self.graph(c)["processors"]}
        self.assertEqual(g["pinned"]["stalled"], st["stalled"])
        self.assertIsNone(g["alert"]["stalled"])

        # frozen reads totals v2's physical output by name; a rollback of
        # totals frees pinned and stalls frozen; gc deletes its topic.
        c.ok("proc_create", name="frozen", file=COUNT,
             inputs=["user-totals.v2"], outputs=["frozen-out"],
             config={"output": "frozen-out"})
        kh.wait_lag0(s, "frozen")
        self.assertIsNone(kh.raw_status(s, "frozen")["stalled"])
        c.ok("proc_rollback", name="totals")
        prod.produce_many(100)
        kh.wait_status(s, "pinned", lambda st: st["stalled"] is None, 10,
                       "pinned to be fine again")
        st = kh.wait_status(s, "frozen", lambda st: st["stalled"], 10,
                            "frozen to be reported stalled")
        self.assertIn("user-totals.v2", st["stalled"])
        c.ok("proc_gc", name="totals")
        st = kh.wait_status(s, "frozen", lambda st: st["stalled"] and
                            "deleted" in st["stalled"], 10,
                            "frozen's deleted input to be reported")
        self.assertIn("user-totals.v2", st["stalled"])
        status, _, body = s.http_get("/health")
        self.assertEqual(status, 503)
        self.assertEqual([x["processor"] for x in json.loads(body)["reasons"]
                          if x["kind"] == "processor_stalled"], ["frozen"])
        self.assertEqual(s.metric("kappa_processor_stalled",
                                  {"processor": "frozen", "version": "1"}), 1)
        # alert followed the rollback and is fine.
        self.settle(s, totals=1, alert=1)
        self.assertIsNone(kh.raw_status(s, "alert")["stalled"])
        s.stop_ok(self)


if __name__ == "__main__":
    kh.main()
