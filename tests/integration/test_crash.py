"""
test_crash.py - the durability claim: with fsync=always, a produce that was
acknowledged survives SIGKILL of kappad, at the offset it was acknowledged
at, exactly once; the log stays contiguous and batches stay whole. Also the
idempotent producer: retried batches are stored once, across restarts.
"""

import random
import socket
import threading
import time

import kappa_harness as kh

BATCH = 50
IN_FLIGHT = 64
BURST = 32          # requests sent back to back, then a pause:
PAUSE = 0.025       # many in flight, yet a log small enough to check quickly


class Producer:
    """
    Pipelined produce requests on one connection, each record carrying a
    unique sequence number; remembers what was acknowledged. Runs until the
    connection dies: after kill_requested is set, it kills the server in the
    middle of a burst, so that many requests are in flight.
    """

    def __init__(self, port, topic, first_seq, kill):
        self.kill = kill        # kills the server, called mid-burst
        self.kill_requested = threading.Event()
        self.client = kh.Client(port, timeout=30)
        self.topic = topic
        self.seq = first_seq
        self.sent = {}          # request id -> list of seqs
        self.acked = []         # (base_offset, count, seqs)
        self.errors = []        # error responses
        self.window = threading.Semaphore(IN_FLIGHT)
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.send_loop, daemon=True),
                        threading.Thread(target=self.recv_loop, daemon=True)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def send_loop(self):
        rid = 0
        try:
            while not self.done.is_set():
                if not self.window.acquire(timeout=0.1):
                    continue
                rid += 1
                seqs = list(range(self.seq, self.seq + BATCH))
                self.seq += BATCH
                with self.lock:
                    self.sent[rid] = seqs
                if rid % BURST == 0:
                    time.sleep(PAUSE)
                if rid % BURST == BURST // 2 and self.kill_requested.is_set():
                    self.kill()
                    self.kill_requested.clear()
                self.client.send("produce", id=rid, topic=self.topic,
                                 partition=0,
                                 records=[{"value": {"seq": s, "pad": "x" * 40}}
                                          for s in seqs])
        except OSError:
            pass
        self.done.set()

    def recv_loop(self):
        try:
            while True:
                resp = self.client.recv()
                with self.lock:
                    seqs = self.sent[resp["id"]]
                if resp.get("ok"):
                    res = resp["results"]
                    assert len(res) == 1 and res[0]["partition"] == 0, resp
                    self.acked.append((res[0]["base_offset"], res[0]["count"],
                                       seqs))
                else:
                    self.errors.append(resp)
                self.window.release()
        except (OSError, EOFError, socket.timeout):
            pass
        self.done.set()

    def in_flight(self):
        with self.lock:
            return len(self.sent) - len(self.acked) - len(self.errors)

    def join(self):
        for t in self.threads:
            t.join(30)
        self.client.close()


class Crash(kh.ServerTest):
    class_server = False

    def check_log(self, recs, acked, prefix):
        n = len(recs)
        self.assertEqual([r["offset"] for r in recs], list(range(n)),
                         "offsets are not contiguous from 0")
        self.assertEqual(recs[:len(prefix)], prefix,
                         "records visible before the crash changed")
        seqs = [r["value"]["seq"] for r in recs]
        self.assertEqual(len(set(seqs)), n, "a record is stored twice")
        for base, count, want in acked:
            self.assertEqual(count, len(want))
            got = seqs[base:base + count]
            self.assertEqual(got, want, "acknowledged batch at %d lost or "
                             "moved (log ends at %d)" % (base, n))
        # Batches are whole: records of one request are all there, in order,
        # at consecutive offsets, or none is.
        i = 0
        while i < n:
            first = seqs[i]
            self.assertEqual(first % BATCH, 0, "batch starting at offset %d "
                             "is not whole (seq %d)" % (i, first))
            self.assertEqual(seqs[i:i + BATCH], list(range(first, first + BATCH)),
                             "batch at offset %d is not whole" % i)
            i += BATCH

    def test_acknowledged_records_survive_sigkill(self):
        s = self.new_server()
        topic = kh.unique("crash")
        with s.client() as c:
            c.ok("topic_create", topic=topic, fsync="always")
        seq = 0
        all_acked = []
        prefix = []
        rng = random.Random(1234)
        for rnd in range(3):
            p = Producer(s.port, topic, seq, s.proc.kill).start()
            time.sleep(rng.uniform(1.0, 2.0))
            p.kill_requested.set()
            self.assertTrue(p.done.wait(10 * kh.SLOW), "producer did not stop")
            in_flight = p.in_flight()
            s.kill()
            p.join()
            seq = p.seq
            self.assertEqual(p.errors, [], "produce errors in round %d" % rnd)
            self.assertGreater(len(p.acked), 0, "nothing acknowledged in round %d"
                               % rnd)
            all_acked.extend(p.acked)
            s.start()
            with s.client() as c:
                recs = c.fetch_all(topic, max_bytes=8 << 20)
            self.check_log(recs, all_acked, prefix)
            max_acked = max(b + n for b, n, _ in all_acked)
            self.assertGreaterEqual(len(recs), max_acked)
            prefix = recs
            print("round %d: %d batches acked, %d in flight at SIGKILL, "
                  "log %d records" % (rnd, len(p.acked), in_flight, len(recs)))
        # The server still takes writes after the last recovery.
        with s.client() as c:
            r = c.produce(topic, [{"seq": -1}])
            self.assertEqual(r["results"][0]["base_offset"], len(prefix))
        s.stop_ok(self)

    def test_idempotent_producer_fsync_always(self):
        self.idempotent_producer("always")

    def test_idempotent_producer_fsync_never(self):
        self.idempotent_producer("never")

    def idempotent_producer(self, fsync):
        s = self.new_server()
        topic = kh.unique("idem")
        pid = 4242

        def batch(c, seq, tag):
            return c.call("produce", topic=topic, partition=0, producer_id=pid,
                          seq=seq, records=[{"value": "%s-%d" % (tag, i)}
                                            for i in range(3)])

        def result(resp):
            self.assertIs(resp.get("ok"), True, repr(resp))
            (r,) = resp["results"]
            return r["base_offset"], r["count"], r["duplicate"]

        with s.client(timeout=5) as c:
            c.ok("topic_create", topic=topic, fsync=fsync)
            self.assertEqual(result(batch(c, 0, "a")), (0, 3, False))
            self.assertEqual(result(batch(c, 0, "a")), (0, 3, True))
            self.assertEqual(result(batch(c, 1, "b")), (3, 3, False))
            self.assertEqual(result(batch(c, 0, "a")), (0, 3, True))
            self.assertError(batch(c, 3, "gap"), "OUT_OF_ORDER_SEQUENCE")
            # Another producer has its own sequence.
            r = c.call("produce", topic=topic, partition=0, producer_id=pid + 1,
                       seq=0, records=[{"value": "other"}])
            self.assertEqual(result(r), (6, 1, False))

        s.stop_ok(self)
        s.start()
        with s.client(timeout=5) as c:
            self.assertEqual(result(batch(c, 1, "b")), (3, 3, True))
            self.assertEqual(result(batch(c, 2, "c")), (7, 3, False))

        s.kill()
        s.start()
        with s.client(timeout=5) as c:
            self.assertEqual(result(batch(c, 2, "c")), (7, 3, True))
            self.assertEqual(result(batch(c, 3, "d")), (10, 3, False))
            self.assertError(batch(c, 5, "gap"), "OUT_OF_ORDER_SEQUENCE")
            for seq in range(4, 9):
                self.assertFalse(result(batch(c, seq, "e%d" % seq))[2])
            # seq 3 is now older than the last five (4..8).
            self.assertError(batch(c, 3, "d"), "OUT_OF_ORDER_SEQUENCE")
            self.assertEqual(result(batch(c, 4, "e4"))[2], True)
            values = [r["value"] for r in c.fetch_all(topic)]
        want = (["a-%d" % i for i in range(3)] + ["b-%d" % i for i in range(3)]
                + ["other"] + ["c-%d" % i for i in range(3)]
                + ["d-%d" % i for i in range(3)]
                + ["e%d-%d" % (s_, i) for s_ in range(4, 9) for i in range(3)])
        self.assertEqual(values, want)
        s.stop_ok(self)


if __name__ == "__main__":
    kh.main()
