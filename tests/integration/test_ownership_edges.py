"""
test_ownership_edges.py - the edges of "a processor writes only topics it
owns" (issue 9, "Ownership"; docs/PROCESSORS.md, "Which topics a processor
may emit to"), over the protocol:

- a processor created with --output X that emits to an existing topic Y it
  did not declare fails that record (a dead letter whose message says how
  to declare Y) and Y's producers go on as before;
- an emit to its own NAME.dlq, or to a physical version topic (X.v1, the
  name version 1 of X has beside its logical one), fails the record, with
  --output and without;
- clients cannot produce to NAME.dlq or X.v1, over the protocol and
  through kappactl;
- a processor without --output cannot take a name of the form X.vN (its
  own next version's physical topic: what it wrote there showed up in X
  after a replay), and when several such processors emit to the same new
  topic at once, one gets it and the others' records fail (they were
  dropped, with no output and no dead letter).
"""

import collections
import time

import kappa_harness as H

# Emits {i} to the topic the record names (value.to).
ROUTER_LUA = """
local M = {}
function M.process(ctx, rec)
  ctx.state:incr("seen", 1)
  ctx:emit(rec.value.to, { i = rec.value.i }, tostring(rec.value.i))
end
return M
"""


class OwnershipEdges(H.ServerTest):
    class_server = False

    def router(self, s, name, outputs=None):
        code = self.write_code(s, "router.lua", ROUTER_LUA)
        kw = {} if outputs is None else {"outputs": outputs}
        with s.client() as c:
            c.ok("proc_create", name=name, file=code, inputs=["in"], **kw)

    def settle(self, c, name, n_out, topics, n_dead):
        """Waits until name's outputs (over topics) and dead letters reach
        the counts; returns ({topic: [i]}, [dead letter records])."""
        def check():
            outs = {t: [r["value"]["i"] for r in c.fetch_all(t)]
                    for t in topics}
            dead = [r for r in c.fetch_all(name + ".dlq")]
            if sum(map(len, outs.values())) >= n_out and len(dead) >= n_dead:
                return outs, dead
            return None
        return H.wait_for(check, 10, "%d outputs and %d dead letters"
                          % (n_out, n_dead))

    def test_undeclared_existing_topic_fails_the_record(self):
        s = self.new_server()
        with s.client() as c:
            c.ok("topic_create", topic="in", partitions=1)
            c.ok("topic_create", topic="orders", partitions=2)
            c.produce("orders", [{"id": 1}], partition=0)
        self.router(s, "r", outputs=["x"])
        with s.client() as c:
            c.produce("in", [{"to": "x", "i": 1}, {"to": "orders", "i": 2},
                             {"to": "x", "i": 3}])
        H.wait_lag0(s, "r")
        with s.client() as c:
            outs, dead = self.settle(c, "r", 2, ["x"], 1)
            self.assertEqual(outs["x"], [1, 3])
            self.assertEqual(len(dead), 1, dead)
            d = dead[0]
            self.assertEqual((d["value"]["offset"], d["value"]["value"]["i"]),
                             (1, 2))
            self.assertIn("'orders'", d["value"]["error"])
            self.assertIn("declare it with --output", d["value"]["error"])
            self.assertEqual(d["headers"]["proc"], "r")
            # Nothing of the processor reached orders; its state change for
            # the failed record was undone.
            self.assertEqual([r["value"] for r in c.fetch_all("orders", 0)]
                             + [r["value"] for r in c.fetch_all("orders", 1)],
                             [{"id": 1}])
            self.assertEqual(c.ok("view_get", name="r", key="seen")["value"],
                             2)
            # Producers of orders are not affected, by key and by partition.
            c.produce("orders", [{"id": 2}], partition=1)
            c.produce("orders", [{"id": 3}], partition=None, keys=["k"])
            n = len(c.fetch_all("orders", 0)) + len(c.fetch_all("orders", 1))
            self.assertEqual(n, 3)
        st = H.proc_status(s, "r")
        self.assertEqual(st["state"], "running")
        self.assertEqual(st["outputs"], ["x"])
        self.assertEqual(st["dead_lettered"], 1)
        # Deleting orders is still the producers' business.
        self.assertCtlOk(s.ctl("topic", "delete", "orders"))
        s.stop_ok(self)

    def check_reserved_emits(self, s, name, outputs):
        """Emits to name.dlq and to x.v1 fail; the good ones go to x."""
        with s.client() as c:
            c.ok("topic_create", topic="in", partitions=1)
        self.router(s, name, outputs=outputs)
        bad = [name + ".dlq", "x.v1", name + ".dlq.v1"]
        recs = [{"to": "x", "i": 0}]
        recs += [{"to": t, "i": 1 + k} for k, t in enumerate(bad)]
        recs += [{"to": "x", "i": 9}]
        with s.client() as c:
            c.produce("in", recs)
        H.wait_lag0(s, name)
        with s.client() as c:
            outs, dead = self.settle(c, name, 2, ["x"], len(bad))
            self.assertEqual(outs["x"], [0, 9])
            self.assertEqual(len(dead), len(bad), dead)
            by_i = {d["value"]["value"]["i"]: d["value"]["error"]
                    for d in dead}
            self.assertEqual(sorted(by_i), [1, 2, 3])
            for k, t in enumerate(bad):
                self.assertIn("emit to '%s' failed" % t, by_i[1 + k])
            # Only the host's dead letters are in the DLQ: none of the
            # processor's own emits landed there or in x.v1.
            for d in dead:
                self.assertIn("error", d["value"])
            self.assertEqual([r["value"]["i"] for r in c.fetch_all("x.v1")],
                             [0, 9])
        st = H.proc_status(s, name)
        self.assertEqual(st["state"], "running")
        self.assertEqual(st["outputs"], ["x"])
        self.assertEqual(st["dead_lettered"], len(bad))

    def test_emit_to_own_dlq_or_version_topic_fails_with_output(self):
        s = self.new_server()
        self.check_reserved_emits(s, "d", ["x"])
        s.stop_ok(self)

    def test_emit_to_own_dlq_or_version_topic_fails_without_output(self):
        s = self.new_server()
        self.check_reserved_emits(s, "o", None)
        s.stop_ok(self)

    def test_clients_cannot_produce_to_dlq_or_version_topic(self):
        s = self.new_server()
        with s.client() as c:
            c.ok("topic_create", topic="in", partitions=1)
        self.router(s, "p", outputs=["x"])
        with s.client() as c:
            c.produce("in", [{"to": "x", "i": 1}, {"to": "nope", "i": 2}])
        H.wait_lag0(s, "p")
        targets = ["p.dlq", "x.v1", "p.dlq.v1", "x"]
        with s.client() as c:
            self.settle(c, "p", 1, ["x"], 1)
            for t in targets:
                for part in (0, None):
                    r = c.call("produce", topic=t, records=[
                        {"value": {"planted": t}, "key": "k"}],
                        **({} if part is None else {"partition": part}))
                    self.assertError(r, "BAD_REQUEST")
                    self.assertIn("processor", r["message"])
        for t in targets:
            cp = s.ctl("produce", t, input='{"planted": "%s"}\n' % t)
            self.assertCtlFails(cp, "processor")
        with s.client() as c:
            for t in targets:
                vals = [r["value"] for r in c.fetch_all(t)]
                self.assertFalse([v for v in vals if "planted" in v],
                                 "%s: %r" % (t, vals))
            self.assertEqual(len(c.fetch_all("p.dlq")), 1)
        # Also after a restart (ownership is kept with the definition).
        s.restart()
        with s.client() as c:
            for t in targets:
                r = c.call("produce", topic=t, partition=0,
                           records=[{"value": {"planted": t}}])
                self.assertError(r, "BAD_REQUEST")
        s.stop_ok(self)

    def test_clients_cannot_create_a_future_version_topic(self):
        # x.v3 and p.dlq.v2 would become the topics of p's future
        # versions; a client's would then mix into them after a replay.
        s = self.new_server()
        with s.client() as c:
            c.ok("topic_create", topic="in", partitions=1)
        self.router(s, "p", outputs=["x"])
        with s.client() as c:
            for t in ("x.v3", "p.dlq.v2", "x.v1"):
                r = c.call("topic_create", topic=t)
                self.assertIn(r.get("error"), ("BAD_REQUEST", "TOPIC_EXISTS"),
                              r)
                if r["error"] == "BAD_REQUEST":
                    self.assertIn("reserved", r["message"])
                    self.assertIn("processor p", r["message"])
            r = c.call("produce", topic="x.v7", records=[{"value": 1}])
            self.assertError(r, "BAD_REQUEST")
            self.assertIn("processor p's output", r["message"])
            # A name like it of no processor's is a topic like any other.
            c.ok("topic_create", topic="y.v3")
            names = [t["name"] for t in c.ok("topic_list")["topics"]]
        self.assertNotIn("x.v3", names)
        self.assertNotIn("p.dlq.v2", names)
        s.stop_ok(self)

    def test_open_output_cannot_take_a_future_version_name(self):
        s = self.new_server()
        with s.client() as c:
            c.ok("topic_create", topic="in", partitions=1)
        self.router(s, "o")
        with s.client() as c:
            c.produce("in", [{"to": "x", "i": 0}])
            H.wait_lag0(s, "o")
            # Separate batches: x is the processor's by now.
            c.produce("in", [{"to": "x.v2", "i": 1}])
            H.wait_lag0(s, "o")
            c.produce("in", [{"to": "x", "i": 2}])
            H.wait_lag0(s, "o")
            outs, dead = self.settle(c, "o", 2, ["x"], 1)
            self.assertEqual(outs["x"], [0, 2])
            self.assertEqual([d["value"]["value"]["i"] for d in dead], [1])
            self.assertIn("emit to 'x.v2' failed", dead[0]["value"]["error"])
        self.assertEqual(H.proc_status(s, "o")["outputs"], ["x"])
        # A replay writes x.v2 itself; x then holds the replay's outputs to
        # x and nothing else.
        self.assertCtlOk(s.ctl("proc", "replay", "o", "--wait"))
        with s.client() as c:
            recs = H.wait_for(lambda: (lambda r: r if len(r) >= 2 else None)(
                c.fetch_all("x")), 10, "the replay's outputs")
            self.assertEqual([(r["value"]["i"], r["headers"]["version"])
                              for r in recs], [(0, 2), (2, 2)])
            self.assertEqual(len(c.fetch_all("o.dlq")), 1)
        s.stop_ok(self)

    def test_racing_open_outputs_fail_instead_of_dropping(self):
        """Processors without --output, each emitting record r to a new
        topic shared<r>: every record of every processor ends as exactly
        one output or one dead letter, and each topic has one owner."""
        slow = """
local M = {}
function M.process(ctx, rec)
  for k = 1, 20000 do ctx.state:incr("spin", 1) end
  ctx:emit("shared" .. rec.value.r, { r = rec.value.r })
end
return M
"""
        s = self.new_server()
        code = self.write_code(s, "race.lua", slow)
        names = ["p%d" % k for k in range(4)]
        rounds = 8
        with s.client() as c:
            c.ok("topic_create", topic="in", partitions=1)
            for n in names:
                c.ok("proc_create", name=n, file=code, inputs=["in"])
            for n in names:
                H.wait_status(s, n, lambda st: st["state"] == "running")
            for r in range(rounds):
                c.produce("in", [{"r": r}])
                time.sleep(0.2)
        for n in names:
            H.wait_lag0(s, n)
        owners = collections.defaultdict(list)
        with s.client() as c:
            for n in names:
                st = H.proc_status(s, n)
                self.assertEqual(st["records_processed"], rounds)
                for t in st["outputs"]:
                    owners[t].append(n)
                def check():
                    outs = sum(len(c.fetch_all(t)) for t in st["outputs"])
                    dead = c.fetch_all(n + ".dlq")
                    return (outs, dead) if outs + len(dead) >= rounds \
                        else None
                try:
                    outs, dead = H.wait_for(check, 5, n)
                except AssertionError:
                    self.fail("processor %s: %d records, outputs and dead "
                              "letters short (dropped): %r"
                              % (n, rounds, check()))
                self.assertEqual(outs + len(dead), rounds, n)
                self.assertEqual(st["dead_lettered"], len(dead), n)
                for d in dead:
                    self.assertIn("failed: the topic exists",
                                  d["value"]["error"])
            self.assertEqual(sorted(owners),
                             sorted("shared%d" % r for r in range(rounds)))
            for t, who in owners.items():
                self.assertEqual(len(who), 1, "%s owned by %s" % (t, who))
                recs = c.fetch_all(t)
                self.assertEqual({r["headers"]["proc"] for r in recs},
                                 set(who), t)
                self.assertEqual(len(recs), 1, t)
        s.stop_ok(self)


if __name__ == "__main__":
    H.main()
