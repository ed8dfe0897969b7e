#!/usr/bin/env python3
"""
test_conn_limits.py - hostile clients cannot hold the server's connections
(part of issue 13, "Ceilings"): a client that does not finish a frame
within client_frame_timeout_ms is disconnected; past max_connections a
client is told TOO_MANY_CONNECTIONS. Meanwhile ping answers. (Counting
partial frames against the in-flight caps is not done yet.)
"""

import struct
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


if __name__ == "__main__":
    kh.main()
