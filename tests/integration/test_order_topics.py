"""
test_order_topics.py - one order over several input topics and partitions
(issue 9, "Deterministic order"; docs/PROCESSORS.md, "Order across
partitions"), under load and SIGKILLs.

A processor reads two topics, `a` (3 partitions) and `b` (2 partitions),
that several producers write at once, each to partitions of its choice; it
keeps a count per key over all of them and emits the running count with
each record (fixtures/count_by_user.lua). kappad is SIGKILLed a handful of
times at random points while the producers run, each time with a produce
of this test's own still in flight. Then the emitted sequence must be one
order, kept through every crash:

- every input (topic, partition, offset) has exactly one output, each
  key's counts are exactly 1..N, each partition's records in offset order,
  and the view holds the counts; every acknowledged record is in the log;
- `proc verify` answers `identical`;
- a `proc replay` of the same code emits the same sequence, record for
  record (input, key, value, in log order), and ends with the same view.

KP_ORDER_TOPICS_KILLS sets the number of SIGKILLs (default 6).
"""

import collections
import os
import random
import threading
import time

import kappa_harness as H

KILLS = int(os.environ.get("KP_ORDER_TOPICS_KILLS", "6"))
KEYS = 12
TOPICS = {"a": 3, "b": 2}


class Producer(threading.Thread):
    """Produces unkeyed {user, src, j} batches to random (topic, partition)
    until stopped, reconnecting across restarts; remembers what was
    acknowledged."""

    def __init__(self, server, src, seed):
        threading.Thread.__init__(self, daemon=True)
        self.server = server
        self.src = src
        self.rng = random.Random(seed)
        self.stopping = threading.Event()
        self.acked = set()
        self.sent = 0
        self.next_j = 0

    def run(self):
        c = None
        while not self.stopping.is_set():
            try:
                if c is None:
                    c = self.server.client(timeout=5)
                topic = self.rng.choice(sorted(TOPICS))
                part = self.rng.randrange(TOPICS[topic])
                n = self.rng.randint(1, 30)
                js = list(range(self.next_j, self.next_j + n))
                self.next_j += n
                recs = [{"value": {"user": "w%02d" % self.rng.randrange(KEYS),
                                   "src": self.src, "j": j}} for j in js]
                self.sent += n
                r = c.call("produce", topic=topic, partition=part,
                           records=recs)
                if r.get("ok"):
                    self.acked.update((self.src, j) for j in js)
                time.sleep(self.rng.uniform(0, 0.004))
            except (OSError, EOFError, H.ProtocolError):
                if c is not None:
                    c.close()
                c = None
                self.stopping.wait(0.02)
        if c is not None:
            c.close()


class OrderOverTopics(H.ServerTest):
    class_server = False

    def inputs(self, s):
        with s.client() as c:
            return {(t, p, r["offset"]): r["value"]
                    for t, n in TOPICS.items() for p in range(n)
                    for r in c.fetch_all(t, p)}

    def sequence(self, s, n, version):
        """The outputs of one version, in log order, as (input topic,
        partition, offset, key, value) once there are n of them."""
        def check():
            with s.client() as c:
                recs = [r for r in c.fetch_all("counts")
                        if r["headers"]["version"] == version]
            return recs if len(recs) >= n else None
        recs = H.wait_for(check, 30, "%d outputs of v%d" % (n, version))
        out = []
        for r in recs:
            h = r["headers"]
            self.assertEqual(h["proc"], "wc")
            key = r["key"]
            if isinstance(key, bytes):
                key = key.decode()
            out.append((h["topic"], h["partition"], h["offset"], key,
                        r["value"]["user"], r["value"]["n"]))
        return out

    def in_flight_kill(self, s, rnd, j):
        """Sends a produce and SIGKILLs kappad before reading its answer."""
        topic = rnd.choice(sorted(TOPICS))
        part = rnd.randrange(TOPICS[topic])
        recs = [{"value": {"user": "w%02d" % (k % KEYS), "src": "kill",
                           "j": j + k}} for k in range(rnd.randint(50, 300))]
        c = None
        try:
            c = s.client(timeout=2)
            c.send("produce", topic=topic, partition=part, records=recs)
        except OSError:
            pass
        time.sleep(rnd.uniform(0, 0.003))
        s.kill()
        if c is not None:
            c.close()

    def test_kills_under_load_then_verify_and_replay(self):
        s = self.new_server()
        with s.client() as c:
            for t, n in TOPICS.items():
                c.ok("topic_create", topic=t, partitions=n, fsync="always")
            c.ok("topic_create", topic="counts", partitions=1)
            c.ok("proc_create", name="wc", file=H.fixture("count_by_user.lua"),
                 inputs=sorted(TOPICS), outputs=["counts"])
        producers = [Producer(s, "p%d" % k, 100 + k) for k in range(3)]
        for p in producers:
            p.start()
        rnd = random.Random(29)
        try:
            for k in range(KILLS):
                time.sleep(rnd.uniform(0.2, 0.9))
                self.in_flight_kill(s, rnd, 10000 * k)
                s.start()
            time.sleep(0.5)
        finally:
            for p in producers:
                p.stopping.set()
            for p in producers:
                p.join(20)
        H.wait_lag0(s, "wc", timeout=60)
        sent = self.inputs(s)
        self.assertGreater(len(sent), 1000)
        if os.environ.get("KP_VERBOSE"):
            print("%d inputs, %d kills" % (len(sent), KILLS))
        self.assertEqual(len({(t, p) for t, p, _ in sent}), 5,
                         "not every partition got records")
        # Nothing acknowledged was lost.
        logged = {(v["src"], v["j"]) for v in sent.values()}
        for p in producers:
            lost = sorted(p.acked - logged)
            self.assertEqual(lost[:5], [], "%d acknowledged records of %s "
                             "are not in the log" % (len(lost), p.src))

        live = self.sequence(s, len(sent), 1)
        msg = "after %d SIGKILLs:" % KILLS
        seen = collections.Counter((t, p, o) for t, p, o, _, _, _ in live)
        dups = [k for k, n in seen.items() if n > 1]
        missing = sorted(set(sent) - set(seen))
        self.assertEqual((dups[:5], missing[:5], len(live)),
                         ([], [], len(sent)),
                         "%s %d inputs with several outputs, %d without"
                         % (msg, len(dups), len(missing)))
        last = {}
        per_key = collections.defaultdict(list)
        for t, p, o, key, user, n in live:
            self.assertEqual((key, user), (sent[(t, p, o)]["user"],) * 2)
            self.assertGreater(o, last.get((t, p), -1),
                               "%s %s/%d out of offset order" % (msg, t, p))
            last[(t, p)] = o
            per_key[user].append(n)
        want = collections.Counter(v["user"] for v in sent.values())
        for user, n in want.items():
            self.assertEqual(per_key[user], list(range(1, n + 1)),
                             "%s key %s: counts not 1..%d in order"
                             % (msg, user, n))
        live_view = H.view_scan(s, "wc")
        self.assertEqual(live_view, dict(want))

        cp = s.ctl("proc", "verify", "wc", timeout=120)
        self.assertCtlOk(cp)
        self.assertEqual(cp.stdout.strip(), "identical", cp.stdout)

        self.assertCtlOk(s.ctl("proc", "replay", "wc", "--wait",
                               timeout=120))
        replayed = self.sequence(s, len(sent), 2)
        first = next((k for k, (x, y) in enumerate(zip(live, replayed))
                      if x != y), None)
        self.assertIsNone(first, "replay differs at output %s: live %r, "
                          "replay %r" % (first, live[first or 0],
                                         replayed[first or 0]))
        self.assertEqual(len(replayed), len(live))
        self.assertEqual(H.proc_status(s, "wc")["version"], 2)
        self.assertEqual(H.view_scan(s, "wc"), live_view)
        s.stop_ok(self)


if __name__ == "__main__":
    H.main()
