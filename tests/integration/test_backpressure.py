"""
Back-pressure: a flood of pipelining producers with small in-flight limits
is slowed down (the server stops reading their sockets) instead of growing
memory, and every request is still answered, in order, once things drain.
"""
import threading

import kappa_harness as kh


class BackpressureTest(kh.ServerTest):
    server_config = {
        "max_inflight_bytes": 65536,
        "max_inflight_total_bytes": 131072,
    }

    def flood(self, topic, partition, requests, results):
        value = {"pad": "x" * 4000}
        with self.server.client(timeout=60) as c:
            ids = [c.send("produce", topic=topic, partition=partition,
                          records=[{"value": value}] * 4)
                   for _ in range(requests)]
            got = [c.recv() for _ in ids]
        results[partition] = (ids, got)

    def test_flood_is_slowed_not_buffered(self):
        topic = kh.unique("flood")
        producers, requests = 4, 300
        with self.server.client() as c:
            c.ok("topic_create", topic=topic, partitions=producers,
                 fsync="always")
        results = {}
        threads = [threading.Thread(target=self.flood,
                                    args=(topic, p, requests, results))
                   for p in range(producers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(len(results), producers)
        for p, (ids, got) in results.items():
            self.assertEqual([r["id"] for r in got], ids,
                             "responses out of order on partition %d" % p)
            self.assertTrue(all(r.get("ok") for r in got), got[:3])
            bases = [r["results"][0]["base_offset"] for r in got]
            self.assertEqual(bases, list(range(0, 4 * requests, 4)))
        with self.server.client() as c:
            d = c.ok("topic_describe", topic=topic)["topic"]
        self.assertEqual([s["end_offset"] for s in d["partition_stats"]],
                         [4 * requests] * producers)
        # ~4.8 MB was sent per producer; with 128 KiB allowed in flight the
        # server must not have buffered it: resident memory stays modest.
        rss = self.server.metric("process_resident_memory_bytes")
        self.assertLess(rss, 200 * 1024 * 1024)


if __name__ == "__main__":
    kh.main()
