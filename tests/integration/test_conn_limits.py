#!/usr/bin/env python3
"""
test_conn_limits.py - hostile clients cannot hold the server's connections
(part of issue 13, "Ceilings"): a client that does not finish a frame
within client_frame_timeout_ms is disconnected; past max_connections a
client is told TOO_MANY_CONNECTIONS; frames still being received count
against the in-flight caps, so that many connections each trickling in a
large frame cannot take more memory than the caps allow. Meanwhile ping
answers.
"""

import socket
import struct
import threading
import time

import kappa_harness as kh


class ConnLimitsTest(kh.ServerTest):
    class_server = False

    def test_slow_frame_is_disconnected(self):
        s = self.new_server({"client_frame_timeout_ms": 500})
        slow = kh.Client(s.port)
        self.addCleanup(slow.close)
        slow.send_raw(struct.pack(">I", 1000) + b"\x81")   # 1 of 1000 bytes
        t0 = time.monotonic()
        self.assertTrue(slow.is_closed(timeout=5 * kh.SLOW),
                        "a frame left unfinished kept its connection")
        took = time.monotonic() - t0
        self.assertGreater(took, 0.4)
        self.assertLess(took, 2.0 * kh.SLOW)
        with s.client() as c:
            c.ok("ping")
        self.assertGreaterEqual(s.metric("kappa_frame_timeouts_total"), 1)
        # A client that sends whole frames slowly, one at a time, stays.
        with s.client() as c:
            for _ in range(3):
                c.ok("ping")
                time.sleep(0.3)
            c.ok("ping")

    def test_max_connections(self):
        s = self.new_server({"max_connections": 5})
        clients = [kh.Client(s.port) for _ in range(5)]
        for c in clients:
            self.addCleanup(c.close)
            c.ok("ping")
        extra = kh.Client(s.port)
        self.addCleanup(extra.close)
        resp = extra.recv()
        self.assertEqual(resp["id"], 0, resp)
        self.assertEqual(resp["error"], "TOO_MANY_CONNECTIONS", resp)
        self.assertIn("max_connections (5)", resp["message"])
        self.assertTrue(extra.is_closed())
        self.assertGreaterEqual(s.metric("kappa_connections_refused_total"), 1)
        clients[0].close()
        time.sleep(0.2)
        with s.client() as c:
            c.ok("ping")

    def test_partial_frames_count_against_the_caps(self):
        # 200 connections each announce a 16 MiB frame and send 15 MiB of
        # it: 3 GB if all were read. kappad reads only what the total cap
        # allows (frames being received take at most 3/4 of it) and the
        # rest wait unread, so its anonymous memory stays under the cap
        # plus 64 MiB, and other clients are served meanwhile.
        cap = 256 << 20
        s = self.new_server({"max_inflight_total_bytes": cap,
                             "client_frame_timeout_ms": 120000})
        with s.client() as c:
            c.ok("topic_create", topic="t")
        base = rss_anon(s.proc.pid)
        body = b"\x00" * (15 << 20)
        socks, stop = [], threading.Event()

        def trickle(sk):
            try:
                sk.sendall(struct.pack(">I", 16 << 20))
                sk.sendall(body)
            except OSError:
                pass
            stop.wait()

        threads = []
        for _ in range(200):
            sk = socket.create_connection(("127.0.0.1", s.port))
            socks.append(sk)
            t = threading.Thread(target=trickle, args=(sk,), daemon=True)
            t.start()
            threads.append(t)
        try:
            peak = 0
            deadline = time.monotonic() + 8 * kh.SLOW
            with s.client() as c:
                while time.monotonic() < deadline:
                    t0 = time.monotonic()
                    c.produce("t", [{"n": 1}])
                    self.assertLess(time.monotonic() - t0, 5 * kh.SLOW,
                                    "a small produce waited behind the "
                                    "partial frames")
                    peak = max(peak, rss_anon(s.proc.pid))
                    time.sleep(0.2)
            # Under AddressSanitizer freed blocks sit in its quarantine
            # (256 MiB): the bound is looser there, still far below the
            # 3 GB the frames would take unbounded.
            bound = cap + (64 << 20) if kh.SLOW == 1 else 2 * cap
            self.assertLess(peak, bound, "RssAnon %d MiB (%d MiB at start)"
                            % (peak >> 20, base >> 20))
            self.assertGreaterEqual(s.metric("kappa_frames_waited_total"),
                                    100)
            partial = s.metric("kappa_inflight_partial_bytes")
            self.assertGreater(partial, 0)
            self.assertLessEqual(partial, cap // 4 * 3)
        finally:
            stop.set()
            for sk in socks:
                # shutdown, not just close: it ends a sendall() blocked in
                # another thread, which close() would leave sending.
                try:
                    sk.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sk.close()
        # Once they are gone, all of it is given back (the connections
        # that waited are woken as room is given back, and read to their
        # end). Seen from outside: no connection open, none waiting, and
        # nothing reserved.
        t0 = time.monotonic()
        deadline = t0 + 60 * kh.SLOW
        self.assertGreater(s.metric("kappa_connections_waiting"), 0)
        while (s.metric("kappa_connections") != 0 and
               time.monotonic() < deadline):
            time.sleep(0.1)
        took = time.monotonic() - t0
        self.assertEqual(s.metric("kappa_connections"), 0,
                         "after %.1f s" % took)
        self.assertEqual(s.metric("kappa_connections_waiting"), 0)
        self.assertEqual(s.metric("kappa_inflight_partial_bytes"), 0,
                         "after %.1f s" % took)
        with s.client() as c:
            c.ok("ping")


def rss_anon(pid):
    """RssAnon of pid in bytes (/proc/PID/status)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon for pid %d" % pid)


if __name__ == "__main__":
    kh.main()
