"""
test_order.py - a processor over several input partitions sees them in one
order, and recovery after SIGKILL, proc verify and a replay of the same
code reproduce it (issue 9, "Deterministic order"; docs/PROCESSORS.md,
"Order across partitions").

The processor keeps a count per key over all partitions and emits the
running count with each record, so any change of order shows: a count
emitted twice, or a replay that gives another count for the same input.

KP_ORDER_KILLS sets how many SIGKILLs the kill loop does (default 12; the
soak in docs/BENCHMARKS.md runs 150).
"""

import collections
import os
import random
import time

import kappa_harness as H

KILLS = int(os.environ.get("KP_ORDER_KILLS", "12"))
KEYS = 10


def produce_unkeyed(client, topic, first, n, per_request=40):
    """n records {user, i} without a key or partition: the server spreads
    them over the partitions round robin. Returns the last i + 1."""
    i = first
    while i < first + n:
        recs = [{"value": {"user": "w%02d" % (j % KEYS), "i": j}}
                for j in range(i, min(i + per_request, first + n))]
        client.ok("produce", topic=topic, records=recs)
        i += len(recs)
    return i


class Order(H.ServerTest):
    class_server = False

    def setup_pipeline(self, s):
        with s.client() as c:
            c.ok("topic_create", topic="in", partitions=3, fsync="always")
            c.ok("topic_create", topic="counts", partitions=1)
            c.ok("proc_create", name="wc",
                 file=H.fixture("count_by_user.lua"), inputs=["in"],
                 outputs=["counts"])

    def inputs(self, s):
        with s.client() as c:
            return {(p, r["offset"]): r["value"]
                    for p in range(3) for r in c.fetch_all("in", p)}

    def outputs(self, s, n, version=None):
        def check():
            with s.client() as c:
                recs = c.fetch_all("counts")
            if version is not None:
                recs = [r for r in recs
                        if r["headers"]["version"] == version]
            return recs if len(recs) >= n else None
        return H.wait_for(check, 30 * H.SLOW, "%d outputs" % n)

    def assert_counts_exact(self, outs, sent):
        """Every key's emitted counts are exactly 1..N, each once."""
        per_key = collections.defaultdict(list)
        for r in outs:
            per_key[r["value"]["user"]].append(r["value"]["n"])
        want = collections.Counter(v["user"] for v in sent.values())
        for user, n in want.items():
            got = sorted(per_key[user])
            dup = [x for x, k in collections.Counter(got).items() if k > 1]
            self.assertEqual(got, list(range(1, n + 1)),
                             "key %s: counts repeated %s, %d emitted for %d"
                             " inputs" % (user, dup[:5], len(got), n))

    def by_input(self, outs):
        return {(r["headers"]["partition"], r["headers"]["offset"]):
                r["value"]["n"] for r in outs}

    def test_verify_identical_without_a_crash(self):
        s = self.new_server()
        self.setup_pipeline(s)
        i = 0
        with s.client() as c:
            for _ in range(15):
                i = produce_unkeyed(c, "in", i, 200)
                time.sleep(0.01)
        H.wait_lag0(s, "wc")
        sent = self.inputs(s)
        outs = self.outputs(s, len(sent))
        H.assert_one_per_input(self, outs, sent, "wc", "in")
        self.assert_counts_exact(outs, sent)
        with s.client() as c:
            r = c.ok("proc_verify", name="wc")
        self.assertEqual((r["identical"], r["view_compared"],
                          r["difference"]), (True, True, None), repr(r))
        cp = s.ctl("proc", "verify", "wc")
        self.assertCtlOk(cp)
        self.assertEqual(cp.stdout.strip(), "identical")
        s.stop_ok(self)

    def test_replay_after_reset_follows_the_new_order(self):
        """After an in-place reset the recorded order starts again: a
        replay gives each input the count of the run after the reset."""
        s = self.new_server()
        self.setup_pipeline(s)
        i = 0
        with s.client() as c:
            for _ in range(6):
                i = produce_unkeyed(c, "in", i, 200)
        H.wait_lag0(s, "wc")
        self.assertCtlOk(s.ctl("proc", "reset", "wc", "--to", "earliest",
                               "--execute"))
        with s.client() as c:
            for _ in range(6):
                i = produce_unkeyed(c, "in", i, 200)
        H.wait_lag0(s, "wc")
        sent = self.inputs(s)
        # Before the reset each input got a count; after it, another.
        outs = self.outputs(s, len(sent) + 1200)
        after = {}
        for r in outs:
            after[(r["headers"]["partition"], r["headers"]["offset"])] = \
                r["value"]["n"]
        self.assertEqual(len(after), len(sent))
        s.kill()
        s.start()
        H.wait_lag0(s, "wc")
        self.assertCtlOk(s.ctl("proc", "replay", "wc", "--wait"))
        replayed = self.by_input(self.outputs(s, len(sent), version=2))
        diff = [k for k in sorted(after) if replayed.get(k) != after[k]]
        self.assertEqual(diff[:5], [], "%d inputs got another count"
                         % len(diff))
        s.stop_ok(self)

    def test_kill_loop_then_verify_and_replay(self):
        s = self.new_server()
        self.setup_pipeline(s)
        rnd = random.Random(9)
        i = 0
        for k in range(KILLS):
            with s.client() as c:
                i = produce_unkeyed(c, "in", i, rnd.randint(100, 400))
            time.sleep(rnd.uniform(0, 0.08))
            s.kill()
            s.start()
        with s.client() as c:
            i = produce_unkeyed(c, "in", i, 300)
        H.wait_lag0(s, "wc", timeout=60 * H.SLOW)
        sent = self.inputs(s)
        self.assertEqual(len(sent), i)
        outs = self.outputs(s, len(sent))
        H.assert_one_per_input(self, outs, sent, "wc", "in",
                               msg="after %d SIGKILLs:" % KILLS)
        self.assert_counts_exact(outs, sent)
        view = H.view_scan(s, "wc")
        self.assertEqual(view, dict(collections.Counter(
            v["user"] for v in sent.values())))
        with s.client() as c:
            r = c.ok("proc_verify", name="wc")
        self.assertEqual((r["identical"], r["difference"]), (True, None),
                         repr(r))
        live = self.by_input(outs)
        # A replay of the same code follows the live order: the same count
        # for every input.
        self.assertCtlOk(s.ctl("proc", "replay", "wc", "--wait"))
        replayed = self.by_input(self.outputs(s, len(sent), version=2))
        diff = [(k, live[k], replayed.get(k)) for k in sorted(live)
                if replayed.get(k) != live[k]]
        self.assertEqual(diff[:5], [], "%d inputs got another count in the "
                         "replay" % len(diff))
        s.stop_ok(self)


if __name__ == "__main__":
    H.main()
