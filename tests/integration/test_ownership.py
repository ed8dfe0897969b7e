"""
test_ownership.py - a processor writes only the topics it owns, and the
topics a processor uses cannot be deleted under it (issue 9, "Ownership").

Each test is a way a user lost data before: a deleted output whose emits
were dropped silently, a user topic taken over by a processor created
without --output, records planted in a version's physical topic, and emits
to invalid names that "succeeded" and vanished.
"""

import os

import kappa_harness as H

# Emits each record's value to the topic it names (value.to).
ROUTER_LUA = """
local M = {}
function M.process(ctx, rec)
  ctx.state:incr("seen", 1)
  ctx:emit(rec.value.to, { i = rec.value.i }, tostring(rec.value.i))
end
return M
"""

COUNT_LUA = """
local M = {}
function M.process(ctx, rec)
  local n = ctx.state:incr("n", 1)
  ctx:emit("counts", { n = n })
end
return M
"""


class Ownership(H.ServerTest):
    class_server = False

    def code(self, server, name, text):
        path = os.path.join(server.root, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def dead_letters(self, client, name):
        return [r["value"] for r in client.fetch_all(name + ".dlq")]

    def test_topics_in_use_cannot_be_deleted(self):
        s = self.new_server()
        code = self.code(s, "count.lua", COUNT_LUA)
        with s.client() as c:
            c.ok("topic_create", topic="in", partitions=1)
            c.ok("proc_create", name="totals", file=code, inputs=["in"],
                 outputs=["counts"])
            c.produce("in", [{"i": 1}])
        H.wait_lag0(s, "totals")
        for topic in ("counts", "in", "totals.dlq"):
            cp = s.ctl("topic", "delete", topic)
            self.assertCtlFails(cp, "processor 'totals'")
            self.assertIn("TOPIC_IN_USE", cp.stderr + cp.stdout)
        with s.client() as c:
            resp = c.call("topic_delete", topic="counts")
            self.assertError(resp, "TOPIC_IN_USE")
            # Still written: the processor keeps its output.
            c.produce("in", [{"i": 2}])
            H.wait_for(lambda: len(c.fetch_all("counts")) == 2, 10 * H.SLOW,
                       "the second output")
        self.assertCtlOk(s.ctl("proc", "delete", "totals"))
        self.assertCtlOk(s.ctl("topic", "delete", "counts"))
        self.assertCtlOk(s.ctl("topic", "delete", "in"))

    def test_physical_version_and_dlq_topics_refuse_produce(self):
        s = self.new_server()
        code = self.code(s, "count.lua", COUNT_LUA)
        with s.client() as c:
            c.ok("topic_create", topic="in", partitions=1)
            c.ok("proc_create", name="counter", file=code, inputs=["in"],
                 outputs=["counts"])
            c.produce("in", [{"i": 1}, {"i": 2}])
        H.wait_lag0(s, "counter")
        self.assertCtlOk(s.ctl("proc", "replay", "counter", "--wait"))
        with s.client() as c:
            names = {t["name"] for t in c.ok("topic_list")["topics"]}
            physical = sorted(n for n in names if n.endswith(".v2"))
            self.assertTrue(physical, names)
            for topic in physical + ["counter.dlq", "counts"]:
                resp = c.call("produce", topic=topic, partition=0,
                              records=[{"value": {"planted": True}}])
                self.assertError(resp, "BAD_REQUEST")
                self.assertIn("processor", resp["message"])
        outs = [r["value"] for r in c_fetch(s, "counts")]
        self.assertNotIn({"planted": True}, outs)

    def test_open_outputs_do_not_take_over_existing_topics(self):
        s = self.new_server()
        code = self.code(s, "router.lua", ROUTER_LUA)
        with s.client() as c:
            c.ok("topic_create", topic="in", partitions=1)
            c.ok("topic_create", topic="orders", partitions=1)
            c.ok("proc_create", name="router", file=code, inputs=["in"])
            c.produce("in", [{"to": "mine", "i": 1},
                             {"to": "orders", "i": 2},
                             {"to": "mine", "i": 3}])
        H.wait_lag0(s, "router")
        with s.client() as c:
            mine = H.wait_for(lambda: (lambda r: r if len(r) >= 2 else None)(
                c.fetch_all("mine")), 10 * H.SLOW, "the outputs to mine")
            self.assertEqual([r["value"]["i"] for r in mine], [1, 3])
            self.assertEqual(c.fetch_all("orders"), [])
            dead = H.wait_for(lambda: self.dead_letters(c, "router") or None,
                              10 * H.SLOW, "a dead letter")
            self.assertEqual(len(dead), 1)
            self.assertIn("orders", dead[0]["error"])
            self.assertIn("--output", dead[0]["error"])
            # The failed record's state change was undone.
            self.assertEqual(c.ok("view_get", name="router", key="seen")
                             ["value"], 2)
            # Producers still own orders, also after the processor goes.
            c.produce("orders", [{"id": 1}])
        st = H.proc_status(s, "router")
        self.assertNotIn("orders", st["outputs"])
        self.assertIn("mine", st["outputs"])
        self.assertCtlOk(s.ctl("proc", "delete", "router"))
        s.restart()
        with s.client() as c:
            c.produce("orders", [{"id": 2}])
            self.assertEqual(len(c.fetch_all("orders")), 2)

    def test_emits_to_invalid_names_fail_the_record(self):
        s = self.new_server()
        code = self.code(s, "router.lua", ROUTER_LUA)
        bad = ["../evil", "a/b", "x\u0000y", "", "." * 1, "n" * 201]
        with s.client() as c:
            c.ok("topic_create", topic="in", partitions=1)
            c.ok("proc_create", name="router", file=code, inputs=["in"])
            c.produce("in", [{"to": t, "i": i} for i, t in enumerate(bad)] +
                      [{"to": "fine", "i": 99}])
        H.wait_lag0(s, "router")
        with s.client() as c:
            dead = H.wait_for(
                lambda: (lambda d: d if len(d) == len(bad) else None)(
                    self.dead_letters(c, "router")),
                10 * H.SLOW, "a dead letter per invalid name")
            for d in dead:
                self.assertRegex(d["error"], "not a valid topic name|emit")
            fine = H.wait_for(lambda: c.fetch_all("fine") or None,
                              10 * H.SLOW, "the output to fine")
            self.assertEqual([r["value"]["i"] for r in fine], [99])
            names = {t["name"] for t in c.ok("topic_list")["topics"]}
            self.assertFalse(any("evil" in n for n in names), names)
        st = H.proc_status(s, "router")
        self.assertEqual(st["outputs"], ["fine"])


def c_fetch(server, topic):
    with server.client() as c:
        return c.fetch_all(topic)


if __name__ == "__main__":
    H.main()
