#!/usr/bin/env python3
"""
test_versions_reset_verify.py - proc_reset and proc_verify over the raw
protocol: a reset plan changes nothing, an executed reset rebuilds the view
from the chosen position (an event time in the middle: only later records
count) and writes the outputs again; verify finds a deterministic
processor identical (outputs and view), finds a processor that keeps
state outside its view different at the first record after its reload
(with both values), and with a start offset compares outputs only.
"""

import time

import kappa_harness as kh

T1 = 1700000000000          # event times of the first half
T2 = 1700000600000          # ... and of the second half


class VersionsResetVerifyTest(kh.ServerTest):
    class_server = False

    def view(self, c, name):
        items = c.ok("view_scan", name=name, limit=100000)["items"]
        return {(it["key"].decode() if isinstance(it["key"], bytes)
                 else it["key"]): it["value"] for it in items}

    # ------------------------------------------------------------------
    def test_reset_plan_then_execute_from_a_time(self):
        s = self.new_server()
        c = s.client()
        self.addCleanup(c.close)
        c.ok("topic_create", topic="events", partitions=1)
        prod = kh.UserProducer(s, "events", partitions=1, users=12)
        for k in range(5):
            prod.produce(c, 100, ts=T1 + k * 1000)
        for k in range(5):
            prod.produce(c, 100, ts=T2 + k * 1000)
        self.assertEqual(c.ok("list_offsets", topic="events",
                              at=T2)["offset"], 500)
        c.ok("proc_create", name="cbu", file=kh.fixture("count_by_user.lua"),
             inputs=["events"], outputs=["counts"])
        st = kh.wait_lag0(s, "cbu")
        self.assertEqual(st["records_processed"], 1000)
        everything = prod.count_users()
        self.assertEqual(self.view(c, "cbu"), dict(everything))
        kh.wait_topic(c, "counts", 1000)

        # Plans: nothing changes.
        for to, new in ((T2, 500), ({"offset": 200}, 200),
                        ("earliest", 0), ("latest", 1000)):
            r = c.ok("proc_reset", name="cbu", to=to)
            self.assertIs(r["executed"], False)
            self.assertEqual(r["plan"], [{"topic": "events", "partition": 0,
                                          "current": 1000, "new": new}],
                             "plan for %r" % (to,))
        r = c.ok("proc_reset", name="cbu", to=T2, execute=False)
        self.assertIs(r["executed"], False)
        time.sleep(0.3)
        st = kh.raw_status(s, "cbu")
        self.assertEqual((st["inputs"][0]["offset"], st["lag"],
                          st["records_processed"]), (1000, 0, 1000))
        self.assertEqual(self.view(c, "cbu"), dict(everything))
        self.assertEqual(len(kh.fetch_topic(c, "counts")[1]), 1000)
        # 'to' is required.
        r = c.call("proc_reset", name="cbu")
        self.assertError(r, "BAD_REQUEST")

        # Execute from T2: the view holds only the later records' counts
        # and their outputs are written again.
        r = c.ok("proc_reset", name="cbu", to=T2, execute=True)
        self.assertIs(r["executed"], True)
        self.assertEqual(r["plan"], [{"topic": "events", "partition": 0,
                                      "current": 1000, "new": 500}])
        later = prod.count_users(lambda v: v["i"] >= 500)
        st = kh.wait_lag0(s, "cbu", timeout=5)
        self.assertEqual((st["version"], st["state"]), (1, "running"))
        self.assertEqual(self.view(c, "cbu"), dict(later))
        for user, n in later.items():
            self.assertEqual(c.ok("view_get", name="cbu", key=user)["value"],
                             n, user)
        outs = kh.wait_topic(c, "counts", 1500)[1]
        self.assertEqual(len(outs), 1500)
        again = outs[1000:]
        self.assertEqual([r["headers"]["offset"] for r in again],
                         list(range(500, 1000)))
        seq = {}
        for r in again:
            seq.setdefault(r["value"]["user"], []).append(r["value"]["n"])
        for user, ns in seq.items():
            self.assertEqual(ns, list(range(1, later[user] + 1)), user)

        # It goes on live from there.
        prod.produce(c, 50, ts=T2 + 10000)
        kh.wait_lag0(s, "cbu")
        self.assertEqual(self.view(c, "cbu"),
                         dict(prod.count_users(lambda v: v["i"] >= 500)))

        # Reset to an offset, executed: from offset 900 on.
        r = c.ok("proc_reset", name="cbu", to={"offset": 900}, execute=True)
        self.assertEqual(r["plan"][0]["new"], 900)
        kh.wait_lag0(s, "cbu", timeout=5)
        self.assertEqual(self.view(c, "cbu"),
                         dict(prod.count_users(lambda v: v["i"] >= 900)))
        s.stop_ok(self)

    # ------------------------------------------------------------------
    def test_verify_deterministic(self):
        s = self.new_server()
        c = s.client()
        self.addCleanup(c.close)
        c.ok("topic_create", topic="events", partitions=2)
        prod = kh.UserProducer(s, "events", partitions=2, users=12)
        prod.produce_many(2000, chunk=100)
        c.ok("proc_create", name="cbu", file=kh.fixture("count_by_user.lua"),
             inputs=["events"], outputs=["counts"])
        kh.wait_lag0(s, "cbu")
        kh.wait_topic(c, "counts", 2000)

        r = c.ok("proc_verify", name="cbu")
        self.assertEqual((r["identical"], r["view_compared"], r["records"],
                          r["outputs"], r["difference"]),
                         (True, True, 2000, 2000, None), repr(r))

        # From an offset (in every input partition): outputs only. A
        # processor whose outputs do not depend on its view reproduces
        # them from any offset...
        c.ok("proc_create", name="sl",
             file=kh.fixture("versions_stateless.lua"), inputs=["events"],
             outputs=["echo"])
        kh.wait_lag0(s, "sl")
        kh.wait_topic(c, "echo", 2000)
        r = c.ok("proc_verify", name="sl")
        self.assertEqual((r["identical"], r["view_compared"], r["records"],
                          r["outputs"], r["difference"]),
                         (True, True, 2000, 2000, None), repr(r))
        r = c.ok("proc_verify", name="sl", **{"from": {"offset": 300}})
        self.assertEqual((r["identical"], r["view_compared"], r["records"],
                          r["outputs"], r["difference"]),
                         (True, False, 1400, 1400, None), repr(r))
        # ... while count_by_user's counts start again from a fresh view
        # at the offset: not comparable with the live ones, and said so.
        r = c.ok("proc_verify", name="cbu", **{"from": {"offset": 300}})
        self.assertEqual((r["identical"], r["view_compared"], r["records"]),
                         (False, False, 1400), repr(r))
        self.assertEqual((r["difference"]["kind"],
                          r["difference"]["offset"],
                          r["difference"]["replay"]["n"]),
                         ("output", 300, 1), repr(r))

        # verify changes nothing: the processor goes on.
        prod.produce_many(100)
        st = kh.wait_lag0(s, "cbu")
        self.assertEqual((st["version"], st["versions"],
                          st["records_processed"]), (1, 1, 2100))
        self.assertEqual(self.view(c, "cbu"), dict(prod.count_users()))
        self.assertEqual(len(kh.wait_topic(c, "counts", 2100)[1]), 2100)
        s.stop_ok(self)

    # ------------------------------------------------------------------
    def test_verify_finds_state_outside_the_view(self):
        s = self.new_server()
        c = s.client()
        self.addCleanup(c.close)
        c.ok("topic_create", topic="ev", partitions=1)
        prod = kh.UserProducer(s, "ev", partitions=1)
        prod.produce_many(300, chunk=100)
        c.ok("proc_create", name="nd", file=kh.fixture("versions_nondet.lua"),
             inputs=["ev"], outputs=["nd"])
        kh.wait_lag0(s, "nd")
        # Reload: the code's upvalue counter starts again at 0.
        st = c.ok("proc_reload", name="nd")["proc"]
        self.assertEqual(st["revision"], 2)
        prod.produce_many(200, chunk=100)
        kh.wait_lag0(s, "nd")
        outs = kh.wait_topic(c, "nd", 500)[1]
        self.assertEqual([r["value"]["seen"] for r in outs[295:305]],
                         [296, 297, 298, 299, 300, 1, 2, 3, 4, 5])

        r = c.ok("proc_verify", name="nd")
        self.assertIs(r["identical"], False, repr(r))
        self.assertEqual(r["records"], 500)
        d = r["difference"]
        self.assertIsInstance(d, dict, repr(r))
        self.assertEqual((d["kind"], d["topic"], d["partition"], d["offset"],
                          d["output_topic"]),
                         ("output", "ev", 0, 300, "nd"), repr(d))
        self.assertEqual(d["live"], {"seen": 1, "o": 300}, repr(d))
        self.assertEqual(d["replay"], {"seen": 301, "o": 300}, repr(d))

        # From the reload's offset on, a fresh instance sees what the
        # live one saw: identical, outputs only.
        r = c.ok("proc_verify", name="nd", **{"from": {"offset": 300}})
        self.assertEqual((r["identical"], r["view_compared"], r["records"],
                          r["outputs"], r["difference"]),
                         (True, False, 200, 200, None), repr(r))
        # ... and before it too (from 0 to just before the reload is not
        # expressible by offset; from 100 differs at 100).
        r = c.ok("proc_verify", name="nd", **{"from": {"offset": 100}})
        self.assertIs(r["identical"], False)
        self.assertIs(r["view_compared"], False)
        self.assertEqual((r["difference"]["offset"],
                          r["difference"]["live"],
                          r["difference"]["replay"]),
                         (100, {"seen": 101, "o": 100},
                          {"seen": 1, "o": 100}))
        self.assertEqual(kh.raw_status(s, "nd")["state"], "running")
        s.stop_ok(self)


if __name__ == "__main__":
    kh.main()
