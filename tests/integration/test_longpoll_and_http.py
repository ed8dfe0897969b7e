"""
test_longpoll_and_http.py - a long-polling fetch wakes as soon as a record
arrives and times out when none does; pipelined requests come back in order
with their ids; /metrics and /health tell the truth.
"""

import json
import socket
import re
import threading
import time

import kappa_harness as kh


class LongPoll(kh.ServerTest):

    def setUp(self):
        self.topic = kh.unique("lp")
        with self.server.client() as c:
            c.ok("topic_create", topic=self.topic, partitions=2)
            c.produce(self.topic, [{"n": i} for i in range(10)])

    def test_fetch_wakes_on_produce(self):
        for fsync in ("always", "never"):
            with self.subTest(fsync=fsync):
                topic = kh.unique("wake")
                with self.server.client() as c:
                    c.ok("topic_create", topic=topic, fsync=fsync)
                    c.produce(topic, [{"n": i} for i in range(3)])
                with self.server.client() as waiter, self.server.client() as prod:
                    t0 = time.monotonic()
                    rid = waiter.send("fetch", topic=topic, offset=3,
                                      max_wait_ms=2000)
                    timer = threading.Timer(
                        0.3, lambda: prod.produce(topic, [{"n": "late"}]))
                    timer.start()
                    r = waiter.recv()
                    dt = time.monotonic() - t0
                    timer.join()
                self.assertEqual(r["id"], rid)
                self.assertIs(r["ok"], True, repr(r))
                self.assertEqual([(x["offset"], x["value"]) for x in r["records"]],
                                 [(3, {"n": "late"})])
                self.assertGreaterEqual(dt, 0.25, "fetch returned before the produce")
                self.assertLess(dt, 1.2, "long poll did not wake on produce "
                                "(took %.2f s of max 2 s)" % dt)

    def test_fetch_times_out_empty(self):
        with self.server.client() as c:
            t0 = time.monotonic()
            r = c.call("fetch", topic=self.topic, offset=10, max_wait_ms=800)
            dt = time.monotonic() - t0
        self.assertIs(r["ok"], True, repr(r))
        self.assertEqual(r["records"], [])
        self.assertEqual(r["end_offset"], 10)
        self.assertGreaterEqual(dt, 0.75, "returned after %.2f s, before the wait" % dt)
        self.assertLess(dt, 0.8 + 1.0 * kh.SLOW, "wait of 0.8 s took %.2f s" % dt)

    def test_produce_to_other_partition_does_not_wake(self):
        with self.server.client() as waiter, self.server.client() as prod:
            t0 = time.monotonic()
            waiter.send("fetch", topic=self.topic, partition=1, offset=0,
                        max_wait_ms=700)
            time.sleep(0.1)
            prod.produce(self.topic, [{"n": "p0"}], partition=0)
            r = waiter.recv()
            dt = time.monotonic() - t0
        self.assertEqual(r["records"], [])
        self.assertGreaterEqual(dt, 0.65)

    def test_many_waiters_all_wake(self):
        waiters = [self.server.client() for _ in range(20)]
        try:
            for w in waiters:
                w.send("fetch", topic=self.topic, offset=10, max_wait_ms=3000)
            time.sleep(0.2)
            t0 = time.monotonic()
            with self.server.client() as prod:
                prod.produce(self.topic, [{"n": "all"}])
            for w in waiters:
                r = w.recv()
                self.assertEqual(r["records"][0]["value"], {"n": "all"})
            self.assertLess(time.monotonic() - t0, 1.5)
        finally:
            for w in waiters:
                w.close()

    def test_pipelined_responses_in_order(self):
        with self.server.client() as c:
            reqs = []
            for i in range(300):
                k = i % 5
                if k == 0:
                    reqs.append(("ping", {}))
                elif k == 1:
                    reqs.append(("fetch", {"topic": self.topic, "offset": i % 10}))
                elif k == 2:
                    reqs.append(("produce", {"topic": self.topic, "partition": 1,
                                             "records": [{"value": i}]}))
                elif k == 3:
                    reqs.append(("list_offsets", {"topic": self.topic, "at": "latest",
                                                  "partition": 1}))
                else:
                    reqs.append(("topic_describe", {"topic": self.topic}))
            # Ids in no particular order, some large.
            ids = [(i * 7919) % 100003 + (2 ** 40 if i % 3 == 0 else 0)
                   for i in range(300)]
            for (op, f), rid in zip(reqs, ids):
                c.send(op, id=rid, **f)
            resps = [c.recv() for _ in ids]
        self.assertEqual([r["id"] for r in resps], ids)
        self.assertTrue(all(r["ok"] for r in resps),
                        [r for r in resps if not r["ok"]][:3])
        for i, r in enumerate(resps):
            if i % 5 == 1:
                self.assertEqual(r["records"][0]["offset"], i % 10)
        # Produces were applied in request order.
        produced = [r["results"][0]["base_offset"] for i, r in enumerate(resps)
                    if i % 5 == 2]
        self.assertEqual(produced, list(range(60)))
        # The end offset never goes back, and ends with every produce (a
        # list_offsets pipelined behind a produce still waiting for its fsync
        # may see the end before it: visibility follows durability).
        latest = [r["offset"] for i, r in enumerate(resps) if i % 5 == 3]
        self.assertEqual(latest, sorted(latest))
        self.assertTrue(all(0 <= x <= 60 for x in latest), latest)
        with self.server.client() as c:
            self.assertEqual(c.ok("list_offsets", topic=self.topic, at="latest",
                                  partition=1)["offset"], 60)

    def test_long_poll_holds_back_later_responses(self):
        with self.server.client() as c:
            t0 = time.monotonic()
            a = c.send("fetch", topic=self.topic, offset=10, max_wait_ms=500)
            b = c.send("ping")
            ra, rb = c.recv(), c.recv()
            dt = time.monotonic() - t0
        self.assertEqual((ra["id"], rb["id"]), (a, b))
        self.assertEqual(ra["records"], [])
        self.assertGreaterEqual(dt, 0.45)


class Http(kh.ServerTest):

    def test_metrics_end_offsets(self):
        topic = kh.unique("m")
        with self.server.client() as c:
            c.ok("topic_create", topic=topic, partitions=2)
            c.produce(topic, [{"n": i} for i in range(37)], partition=0)
            c.produce(topic, [{"n": i} for i in range(5)], partition=1)
        status, headers, body = self.server.http_get("/metrics")
        self.assertEqual(status, 200)
        ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
        self.assertIn("text/plain", ctype)
        for part, n in ((0, 37), (1, 5)):
            line = 'kappa_log_end_offset{topic="%s",partition="%d"} %d' % (
                topic, part, n)
            self.assertIn(line, body.splitlines())
        # Every sample line is well-formed Prometheus text.
        sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? '
                            r'(-?[0-9.eE+-]+|NaN|[+-]Inf)$')
        for line in body.splitlines():
            if line and not line.startswith("#"):
                self.assertRegex(line, sample)
        self.assertGreater(kh.parse_metric(body, "process_resident_memory_bytes"), 0)
        # Numbers move with the log.
        with self.server.client() as c:
            c.produce(topic, [{"n": 37}], partition=0)
        self.assertEqual(self.server.metric("kappa_log_end_offset",
                                            {"topic": topic, "partition": 0}), 38)

    def test_health(self):
        status, headers, body = self.server.http_get("/health")
        self.assertEqual(status, 200, body)
        doc = json.loads(body)
        self.assertIsInstance(doc, dict)
        self.assertEqual(doc.get("status"), "ok", doc)

    def test_unknown_path_and_method(self):
        status, _, _ = self.server.http_get("/nope")
        self.assertEqual(status, 404)
        conn = kh.http.client.HTTPConnection("127.0.0.1", self.server.http_port,
                                             timeout=10)
        try:
            conn.request("POST", "/metrics", body=b"x")
            r = conn.getresponse()
            r.read()
            self.assertGreaterEqual(r.status, 400)
        finally:
            conn.close()
        status, _, _ = self.server.http_get("/health")
        self.assertEqual(status, 200)

    def test_malformed_requests_get_a_status_and_a_reason(self):
        cases = [
            (b"GET /metrics HTTP/2.0\r\n\r\n", 505, b"only HTTP/1.x"),
            (b"GET metrics HTTP/1.1\r\n\r\n", 400, b"must start"),
            (b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\n\r\n", 414,
             b"request line longer than"),
            (b"GET /metrics HTTP/1.1\r\nX: " + b"y" * 5000 + b"\r\n\r\n",
             431, b"header line longer"),
            (b"GET /metrics HTTP/1.1\r\nAuthorization: Bearer\r\n\r\n",
             400, b"bearer token"),
        ]
        for raw, status, reason in cases:
            with socket.create_connection(
                    ("127.0.0.1", self.server.http_port), timeout=10) as sk:
                sk.sendall(raw)
                data = b""
                while True:
                    chunk = sk.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 %d " % status),
                            (raw[:40], data[:200]))
            self.assertIn(reason, body, raw[:40])
            # One line of reason, no echo of what was sent.
            self.assertEqual(body.count(b"\n"), 1, body)
            self.assertNotIn(b"yyyy", body)
        status, _, _ = self.server.http_get("/health")
        self.assertEqual(status, 200)

    def test_a_kappa_client_on_the_http_port_is_answered_at_once(self):
        # A kappa frame (length, then a msgpack ping) sent to the HTTP port
        # by mistake: answered 400 right away, not at the 10 s deadline.
        body = kh.msgpack.packb({"id": 1, "op": "ping"})
        with socket.create_connection(
                ("127.0.0.1", self.server.http_port), timeout=10) as sk:
            t0 = time.monotonic()
            sk.sendall(len(body).to_bytes(4, "big") + body)
            data = sk.recv(4096)
            took = time.monotonic() - t0
        self.assertTrue(data.startswith(b"HTTP/1.1 400 "), data[:100])
        self.assertIn(b"bad byte in the method", data)
        self.assertLess(took, 1.0)


if __name__ == "__main__":
    kh.main()
