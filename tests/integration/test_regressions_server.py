"""
test_regressions_server.py - regression tests for storage and network bugs
found in review (fixed in "Server fixes from review: no re-entrant request
handling, no stranded waits"). Each test states the bug it guards against;
on the old server each one crashed, hung or answered wrongly.

The storage-fault tests preload the kpfault shim
(tests/integration/shims/kpfault.c) to fail pwrite/fdatasync on demand.
"""

import os
import socket
import time

import kappa_harness as H
from kappa_harness import frame


def _recv_within(client, seconds, what):
    """client.recv() with a deadline (times SLOW); a timeout fails naming
    what was awaited instead of raising socket.timeout."""
    old = client.sock.gettimeout()
    client.settimeout(seconds * H.SLOW)
    try:
        return client.recv()
    except socket.timeout:
        raise AssertionError("no answer to %s within %.0f s"
                             % (what, seconds * H.SLOW))
    finally:
        client.settimeout(old)


def _end_offset(client, topic, partition=0):
    return client.ok("list_offsets", topic=topic, partition=partition,
                     at="latest")["offset"]


class ServerRegressions(H.ServerTest):
    class_server = False

    def stop_clean(self, server):
        """SIGTERM: exit 0 and no sanitizer report in the log."""
        server.stop_ok(self)

    # -- re-entrant request handling

    def test_topic_delete_behind_congested_produce_keeps_server_up(self):
        """Bug: a produce over max_inflight_bytes stopped reading; its fsync
        completion resumed reading and handled the pipelined topic_delete
        from inside the sync callback, which freed the partition the
        callback still used (use after free, crash)."""
        s = self.new_server({"max_inflight_bytes": 65536})
        with s.client() as c:
            for round_ in range(5):
                topic = H.unique("del")
                c.ok("topic_create", topic=topic, fsync="always")
                c.send_raw(frame({"id": 1000 + round_, "op": "produce",
                                  "topic": topic, "partition": 0,
                                  "records": [{"value": b"x" * 70000}]}) +
                           frame({"id": 2000 + round_, "op": "topic_delete",
                                  "topic": topic}))
                r1 = _recv_within(c, 10, "the produce")
                r2 = _recv_within(c, 10, "the topic_delete")
                self.assertEqual((r1.get("id"), r2.get("id")),
                                 (1000 + round_, 2000 + round_))
                self.assertIs(r1.get("ok"), True, repr(r1))
                self.assertIs(r2.get("ok"), True, repr(r2))
                self.assertError(c.call("topic_describe", topic=topic),
                                 "UNKNOWN_TOPIC")
            self.assertIs(c.call("ping").get("ok"), True)
        self.assertTrue(s.alive(), s.log_tail())
        self.stop_clean(s)

    def test_woken_long_poll_does_not_handle_a_request_twice(self):
        """Bug: a produce that woke the connection's own parked long-poll
        re-entered request handling (kp_slot_ready -> conn_process) before
        the outer pass had consumed its frames: the produce was appended
        twice and answered twice."""
        s = self.new_server({"max_inflight_bytes": 65536})
        topic = H.unique("reenter")
        with s.client() as c, s.client() as d:
            c.ok("topic_create", topic=topic, fsync="never")
            d.send_raw(frame({"id": 1, "op": "fetch", "topic": topic,
                              "partition": 0, "offset": 0,
                              "max_wait_ms": 10000}))
            time.sleep(0.2)  # let it park (handled in order regardless)
            d.send_raw(frame({"id": 2, "op": "produce", "topic": topic,
                              "partition": 0, "records": [{"value": 1}],
                              "pad": b"x" * 70000}) +
                       frame({"id": 3, "op": "ping"}))
            got = [_recv_within(d, 10, "request %d" % i) for i in (1, 2, 3)]
            self.assertEqual([r.get("id") for r in got], [1, 2, 3])
            self.assertTrue(all(r.get("ok") is True for r in got), repr(got))
            self.assertEqual(len(got[0]["records"]), 1)
            # A duplicated answer would come before this one.
            d.send_raw(frame({"id": 4, "op": "ping"}))
            self.assertEqual(_recv_within(d, 10, "ping 4").get("id"), 4)
            self.assertEqual(_end_offset(c, topic), 1,
                             "one produce of one record was sent")
        self.stop_clean(s)

    # -- back-pressure

    def test_total_inflight_limit_resumes_every_stopped_connection(self):
        """Bug: a connection stopped by the total in-flight limit
        (max_inflight_total_bytes) was never resumed once the total
        drained: its requests were never answered."""
        s = self.new_server({"max_inflight_total_bytes": 65536})
        t, a = H.unique("empty"), H.unique("durable")
        with s.client() as c, s.client() as y:
            c.ok("topic_create", topic=t, fsync="never")
            c.ok("topic_create", topic=a, fsync="always")
            # y holds the total over the limit: a parked long-poll with a
            # big produce queued behind it.
            y.send_raw(frame({"id": 1, "op": "fetch", "topic": t,
                              "partition": 0, "offset": 0,
                              "max_wait_ms": 500}) +
                       frame({"id": 2, "op": "produce", "topic": a,
                              "partition": 0, "records": [{"value": 1}],
                              "pad": b"p" * 70000}))
            time.sleep(0.2)
            with s.client() as x:
                x.send_raw(frame({"id": 10, "op": "ping"}))
                self.assertEqual(_recv_within(y, 10, "the long-poll")["id"], 1)
                self.assertEqual(_recv_within(y, 10, "the produce")["id"], 2)
                r = _recv_within(x, 10, "a ping stopped by the total limit")
                self.assertEqual(r.get("id"), 10)
                self.assertIs(r.get("ok"), True)
        self.stop_clean(s)

    def test_responses_held_behind_long_poll_count_toward_inflight_limit(self):
        """Bug: responses queued behind an unanswered request (a parked
        long-poll) were not counted in flight, so a long-poll followed by
        many large fetches grew the server's memory without bound."""
        limit = 8 << 20
        s = self.new_server({"max_inflight_bytes": limit})
        topic = H.unique("mem")
        n_fetches = 60
        with s.client() as c:
            c.ok("topic_create", topic=topic, fsync="never")
            for _ in range(4):
                c.produce(topic, [b"v" * (1 << 20)])
            end = _end_offset(c, topic)
            self.assertIs(c.call("ping").get("ok"), True)
            before = H.rss_mib(s.proc.pid)
            d = s.client(timeout=30)
            self.addCleanup(d.close)
            reqs = frame({"id": 1, "op": "fetch", "topic": topic,
                          "partition": 0, "offset": end,
                          "max_wait_ms": 60000})
            reqs += b"".join(frame({"id": 2 + i, "op": "fetch",
                                    "topic": topic, "partition": 0,
                                    "offset": 0, "max_bytes": 8 << 20})
                             for i in range(n_fetches))
            d.send_raw(reqs)
            # The loop has read and handled what it will of d once a ping
            # sent afterwards on another connection is answered.
            time.sleep(0.2)
            for _ in range(3):
                self.assertIs(c.call("ping").get("ok"), True)
                time.sleep(0.05)
            grown = H.rss_mib(s.proc.pid) - before
            self.assertLess(grown, 100,
                            "server grew %.0f MiB holding %d responses of "
                            "4 MiB behind a long-poll (limit %d MiB)"
                            % (grown, n_fetches, limit >> 20))
            # Wake the long-poll: every answer then arrives, in order.
            c.produce(topic, [b"w"])
            r = _recv_within(d, 10, "the long-poll")
            self.assertEqual(r.get("id"), 1)
            self.assertEqual(len(r["records"]), 1)
            for i in range(n_fetches):
                r = _recv_within(d, 10, "fetch %d" % (2 + i))
                self.assertEqual(r.get("id"), 2 + i)
                self.assertIs(r.get("ok"), True)
                # The 4 big records, and the waking one when read after it.
                self.assertIn(len(r["records"]), (4, 5))
        self.stop_clean(s)

    # -- connections

    def test_half_closed_connection_gets_its_answers(self):
        """Bug: a client that half-closed its socket (shutdown SHUT_WR)
        after sending requests lost every response not yet written: EOF
        closed the connection and dropped its pending answers."""
        s = self.new_server()
        topic = H.unique("half")
        with s.client() as c, s.client() as d:
            c.ok("topic_create", topic=topic, fsync="always")
            d.send_raw(frame({"id": 1, "op": "produce", "topic": topic,
                              "partition": 0, "records": [{"value": 1}]}) +
                       frame({"id": 2, "op": "ping"}))
            d.sock.shutdown(socket.SHUT_WR)
            got = [_recv_within(d, 10, "request %d" % i) for i in (1, 2)]
            self.assertEqual([r.get("id") for r in got], [1, 2])
            self.assertTrue(all(r.get("ok") is True for r in got), repr(got))
            self.assertTrue(d.is_closed(timeout=10 * H.SLOW),
                            "the server should close after answering")
            self.assertEqual(_end_offset(c, topic), 1)
        self.stop_clean(s)

    # -- names

    def test_names_with_nul_byte_or_too_long_match_no_topic(self):
        """Bug: lookups compared names with strncmp, which stops at a NUL:
        "t\\0..." matched topic "t" and then read past its name (an
        out-of-bounds read from one request)."""
        s = self.new_server()
        proc_file = H.fixture("count_by_user.lua")
        with s.client() as c:
            c.ok("topic_create", topic="t")
            c.ok("topic_create", topic="in")
            c.ok("proc_create", name="p", file=proc_file, inputs=["in"],
                 outputs=["pout"])
            bad = ["t\0", "t\0x", "t\0" + "A" * 20000, "t" * 300]
            for name in bad:
                r = c.call("topic_describe", topic=name)
                self.assertIsNot(r.get("ok"), True,
                                 "topic_describe %r found %r" % (name[:8], r))
                self.assertIn(r.get("error"), ("UNKNOWN_TOPIC", "BAD_REQUEST"),
                              repr(r))
                r = c.call("produce", topic=name, partition=0,
                           records=[{"value": 1}])
                self.assertIsNot(r.get("ok"), True,
                                 "produce to %r: %r" % (name[:8], r))
            for name in ["p\0", "p\0x", "p\0" + "B" * 20000, "p" * 300]:
                r = c.call("proc_status", name=name)
                self.assertIsNot(r.get("ok"), True,
                                 "proc_status %r found %r" % (name[:8], r))
            self.assertEqual(_end_offset(c, "t"), 0)
            self.assertIs(c.ok("topic_describe", topic="t").get("ok"), True)
            self.assertIs(c.ok("proc_status", name="p").get("ok"), True)
        self.stop_clean(s)

    # -- produce routing

    def test_keyless_produce_to_many_partitions_is_linear(self):
        """Bug: a produce without a partition re-decoded every record once
        per partition (O(records x partitions) on the event loop), so one
        request stalled the server for seconds."""
        s = self.new_server()
        topic = H.unique("route")
        n = 200000
        with s.client(timeout=120) as c, s.client() as p:
            c.ok("topic_create", topic=topic, partitions=1024,
                 fsync="never")
            recs = [{"value": i & 0x7f} for i in range(n)]
            t0 = time.monotonic()
            rid = p.send("produce", topic=topic, records=recs)
            r = _recv_within(p, 20, "the keyless produce")
            took = time.monotonic() - t0
            self.assertEqual(r.get("id"), rid)
            self.assertIs(r.get("ok"), True, repr(r)[:300])
            self.assertEqual(sum(x["count"] for x in r["results"]), n)
            # Linear: ~0.1 s (plain); per-partition re-decoding: ~8 s.
            self.assertLess(took, 1.5 * H.SLOW,
                            "a keyless produce of %d records to 1024 "
                            "partitions took %.1f s" % (n, took))
            total = sum(_end_offset(c, topic, k) for k in range(0, 1024, 97))
            self.assertGreater(total, 0)
        self.stop_clean(s)


class StorageFaultRegressions(H.ServerTest):
    """Storage errors injected with the kpfault LD_PRELOAD shim."""
    class_server = False

    def fault_server(self, config=None, env=None, **kw):
        shim = H.shim_path("kpfault")
        if not os.path.exists(shim):
            self.fail("fault shim not built: %s" % shim)
        return H.new_fault_server(self, config, env=env, preload=shim, **kw)

    def test_idempotent_retry_after_failed_fsync_is_answered(self):
        """Bug: after an fsync failure, an idempotent retry of the failed
        batch took the duplicate path and waited for a sync that would
        never run: the request (and every one behind it) hung forever."""
        flag = os.path.join(self.tmpdir(), "failsync")
        s = self.fault_server(env={"KP_FAULT_SYNC_FLAG": flag})
        topic = H.unique("dup")
        with s.client() as c:
            c.ok("topic_create", topic=topic, fsync="always")
            c.ok("produce", topic=topic, partition=0, producer_id=7, seq=0,
                 records=[{"value": 1}])
            open(flag, "w").close()
            r = c.call("produce", topic=topic, partition=0, producer_id=7,
                       seq=1, records=[{"value": 2}])
            os.unlink(flag)
            self.assertError(r, "STORAGE_FAILED")
            self.assertError(c.call("produce", topic=topic, partition=0,
                                    records=[{"value": 3}]),
                             "STORAGE_FAILED")
        with s.client() as c2:
            c2.send_raw(frame({"id": 50, "op": "produce", "topic": topic,
                               "partition": 0, "producer_id": 7, "seq": 1,
                               "records": [{"value": 2}]}) +
                        frame({"id": 51, "op": "ping"}))
            r = _recv_within(c2, 10, "the retried idempotent produce")
            self.assertEqual(r.get("id"), 50)
            self.assertError(r, "STORAGE_FAILED")
            self.assertEqual(_recv_within(c2, 10, "the ping behind it")
                             .get("id"), 51)
        self.assertTrue(s.alive())
        s.stop_ok(self)

    def test_produce_waiting_for_next_sync_fails_when_a_write_fails(self):
        """Bug: a produce appended while a sync job was in flight waited for
        the next job; when a later append failed (ENOSPC) the partition
        stopped taking writes, the next job never started, and that produce
        was never answered (neither ack nor STORAGE_FAILED)."""
        flag = os.path.join(self.tmpdir(), "failwrite")
        delay_ms = int(600 * H.SLOW)
        s = self.fault_server(env={"KP_FAULT_WRITE_FLAG": flag,
                                   "KP_FAULT_SYNC_DELAY_MS": str(delay_ms)})
        topic = H.unique("wfail")
        with s.client() as c:
            c.ok("topic_create", topic=topic, fsync="always")
        a, b, d = s.client(), s.client(), s.client()
        for x in (a, b, d):
            self.addCleanup(x.close)
        a.send_raw(frame({"id": 1, "op": "produce", "topic": topic,
                          "partition": 0, "records": [{"value": "A"}]}))
        time.sleep(0.1 * H.SLOW)  # A's sync job is in flight (slow disk)
        b.send_raw(frame({"id": 2, "op": "produce", "topic": topic,
                          "partition": 0, "records": [{"value": "B"}]}))
        time.sleep(0.1 * H.SLOW)  # B is appended, waiting for the next job
        open(flag, "w").close()
        try:
            rc = d.call("produce", topic=topic, partition=0,
                        records=[{"value": "C"}])
        finally:
            os.unlink(flag)
        self.assertIs(rc.get("ok"), False, repr(rc))
        ra = _recv_within(a, 10, "produce A")
        self.assertEqual(ra.get("id"), 1)
        rb = _recv_within(b, 10, "produce B (appended before the failed "
                                 "write)")
        self.assertEqual(rb.get("id"), 2)
        if rb.get("ok") is not True:
            self.assertError(rb, "STORAGE_FAILED")
        s.stop_ok(self)

    def test_fsync_produce_is_answered_after_descriptors_run_out(self):
        """Bug: a sync job that could not start (EMFILE when dup'ing the
        log descriptor) was never retried: produces to an fsync=always
        topic waited forever, even after descriptors were free again."""
        s = H.new_fault_server(self, nofile=64)
        topic = H.unique("emfile")
        c = s.client()
        self.addCleanup(c.close)
        c.ok("topic_create", topic=topic, fsync="always")
        fd_dir = "/proc/%d/fd" % s.proc.pid
        hogs = []
        self.addCleanup(lambda: [h.close() for h in hogs])
        for _ in range(80):
            try:
                hogs.append(socket.create_connection(("127.0.0.1", s.port)))
            except OSError:
                break
        # Wait until kappad has taken every descriptor it may.
        H.wait_for(lambda: len(os.listdir(fd_dir)) >= 62, 10,
                   "kappad to run out of descriptors")
        c.send_raw(frame({"id": 7, "op": "produce", "topic": topic,
                          "partition": 0, "records": [{"value": 1}]}))
        time.sleep(0.3 * H.SLOW)  # the sync job fails to start
        for h in hogs:
            h.close()
        hogs.clear()
        r = _recv_within(c, 10, "the produce once descriptors were freed")
        self.assertEqual(r.get("id"), 7)
        self.assertIs(r.get("ok"), True, repr(r))
        self.assertEqual(_end_offset(c, topic), 1)
        c.close()
        s.stop_ok(self)

    def tmpdir(self):
        import tempfile
        import shutil
        d = tempfile.mkdtemp(prefix="kappa-fault-")
        self.addCleanup(shutil.rmtree, d, True)
        return d


if __name__ == "__main__":
    H.main()
