"""
test_restart.py - a graceful stop (SIGTERM) and a start on the same data
directory lose nothing: topics and their settings, every record, consumer
group offsets; producing continues at the next offset. Also across several
log segments.
"""

import kappa_harness as kh


def settings(desc):
    """A topic description without its changing statistics."""
    return {k: v for k, v in desc.items() if k != "partition_stats"}


class Restart(kh.ServerTest):
    class_server = False

    def test_everything_survives_sigterm_restart(self):
        s = self.new_server()
        a, b = kh.unique("ra"), kh.unique("rb")
        with s.client() as c:
            c.ok("topic_create", topic=a, partitions=2, fsync="never",
                 retention_ms=86400000, retention_bytes=10000000)
            c.ok("topic_create", topic=b, fsync="interval",
                 fsync_interval_ms=200)
            for i in range(10):
                c.produce(a, [{"a": i * 100 + j} for j in range(100)],
                          partition=None,
                          keys=["k%d" % ((i * 100 + j) % 7) for j in range(100)])
                c.produce(b, [{"b": i * 50 + j, "blob": bytes([j]) * j}
                              for j in range(50)],
                          ts=[1700000000000 + i * 50 + j for j in range(50)])
            c.ok("group_commit", group="g1", offsets=[
                {"topic": a, "partition": 0, "offset": 10},
                {"topic": a, "partition": 1, "offset": 3},
                {"topic": b, "partition": 0, "offset": 250}])
            before_list = c.ok("topic_list")["topics"]
            before = {t: [c.fetch_all(t, p) for p in range(n)]
                      for t, n in ((a, 2), (b, 1))}
            before_groups = c.ok("group_fetch", group="g1")["offsets"]
        self.assertEqual(sum(len(x) for x in before[a]), 1000)
        self.assertEqual(len(before[b][0]), 500)

        s.stop_ok(self)
        s.start()

        with s.client() as c:
            after_list = c.ok("topic_list")["topics"]
            self.assertEqual([settings(t) for t in after_list],
                             [settings(t) for t in before_list])
            for t in (a, b):
                for p, recs in enumerate(before[t]):
                    self.assertEqual(c.fetch_all(t, p), recs,
                                     "records of %s/%d changed" % (t, p))
            self.assertEqual(
                sorted(c.ok("group_fetch", group="g1")["offsets"],
                       key=lambda o: (o["topic"], o["partition"])),
                sorted(before_groups, key=lambda o: (o["topic"], o["partition"])))
            self.assertIn("g1", c.ok("group_list")["groups"])
            r = c.produce(b, [{"b": "next"}])
            self.assertEqual(r["results"][0]["base_offset"], 500)
            r = c.produce(a, [{"a": "next"}], partition=1)
            self.assertEqual(r["results"][0]["base_offset"], len(before[a][1]))

        # kappactl sees the same after the restart.
        cp = s.ctl("consume", b, "--from", "498")
        self.assertCtlOk(cp)
        got = kh.json_lines(cp.stdout)
        self.assertEqual([r["offset"] for r in got], [498, 499, 500])
        self.assertEqual(got[2]["value"], {"b": "next"})
        s.stop_ok(self)

    def test_restart_after_segment_roll(self):
        s = self.new_server()
        t = kh.unique("seg")
        with s.client() as c:
            c.ok("topic_create", topic=t, segment_bytes=4096, fsync="always")
            for i in range(40):
                c.produce(t, [{"n": i * 50 + j, "pad": "p" * 60}
                              for j in range(50)])
            desc = c.ok("topic_describe", topic=t)["topic"]
            before = c.fetch_all(t)
        self.assertEqual(desc["segment_bytes"], 4096)
        st = desc["partition_stats"][0]
        self.assertEqual(st["end_offset"], 2000)
        self.assertGreaterEqual(st["segments"], 10,
                                "4096-byte segments should have rolled: %r" % st)
        self.assertEqual([r["offset"] for r in before], list(range(2000)))

        for _ in range(2):
            s.stop_ok(self)
            s.start()
            with s.client() as c:
                st2 = c.ok("topic_describe", topic=t)["topic"]["partition_stats"][0]
                self.assertEqual(st2["end_offset"], 2000)
                self.assertEqual(st2["start_offset"], 0)
                self.assertEqual(c.fetch_all(t), before)
                # Reading from the middle of an older segment works too.
                mid = c.ok("fetch", topic=t, offset=777, max_bytes=1)["records"]
                self.assertEqual(mid[0]["offset"], 777)
                self.assertEqual(mid[0]["value"]["n"], 777)
                ts = c.ok("list_offsets", topic=t, at=before[1234]["ts"])
                self.assertLessEqual(ts["offset"], 1234)

        with s.client() as c:
            r = c.produce(t, [{"n": 2000}, {"n": 2001}])
            self.assertEqual(r["results"][0]["base_offset"], 2000)
            self.assertEqual([x["value"]["n"] for x in c.fetch_all(t, start=1999)],
                             [1999, 2000, 2001])
        s.stop_ok(self)

    def test_sigterm_with_busy_clients(self):
        """SIGTERM while a long poll waits and idle clients are connected."""
        s = self.new_server()
        t = kh.unique("busy")
        with s.client() as c:
            c.ok("topic_create", topic=t)
            c.produce(t, [{"n": 1}])
        idle = [s.client() for _ in range(5)]
        poll = s.client()
        poll.send("fetch", topic=t, offset=1, max_wait_ms=30000)
        half = s.client()
        half.send_raw(b"\0\0\1\0" + b"\x81")      # a frame cut short
        kh.time.sleep(0.2)
        t0 = kh.time.monotonic()
        s.stop_ok(self)
        self.assertLess(kh.time.monotonic() - t0, 5 * kh.SLOW,
                        "a pending long poll held up the shutdown")
        try:
            r = poll.recv()
            # An answer before closing is fine: empty or SHUTTING_DOWN.
            self.assertTrue(r.get("records") == [] or
                            r.get("error") == "SHUTTING_DOWN", repr(r))
        except (EOFError, OSError):
            pass
        for c in idle + [poll, half]:
            c.close()
        s.start()
        with s.client() as c:
            self.assertEqual([r["value"] for r in c.fetch_all(t)], [{"n": 1}])
        s.stop_ok(self, sig=kh.signal.SIGINT)

    def test_bad_config_refuses_to_start(self):
        s = self.new_server(config={"no_such_setting": "1"}, start=False)
        p = kh.spawn([kh.KAPPAD, "--data", s.data, "--listen", s.addr,
                      "--config", s.config_path, "--http", "127.0.0.1:0"],
                     stdout=kh.subprocess.PIPE, stderr=kh.subprocess.PIPE,
                     text=True)
        out, err = p.communicate(timeout=10 * kh.SLOW)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("no_such_setting", out + err)
        p = kh.spawn([kh.KAPPAD, "--data", s.data, "--listen", "127.0.0.1:99999"],
                     stdout=kh.subprocess.PIPE, stderr=kh.subprocess.PIPE,
                     text=True)
        out, err = p.communicate(timeout=10 * kh.SLOW)
        self.assertNotEqual(p.returncode, 0)

    def test_port_in_use_fails_cleanly(self):
        s = self.new_server()
        other = self.new_server(start=False)
        p = kh.spawn([kh.KAPPAD, "--data", other.data, "--listen", s.addr,
                      "--http", "127.0.0.1:%d" % other.http_port],
                     stdout=kh.subprocess.PIPE, stderr=kh.subprocess.PIPE,
                     text=True)
        out, err = p.communicate(timeout=10 * kh.SLOW)
        self.assertNotEqual(p.returncode, 0)
        self.assertTrue((out + err).strip(), "no message about the busy port")
        with s.client() as c:
            self.assertTrue(c.ok("ping")["ok"])
        s.stop_ok(self)


if __name__ == "__main__":
    kh.main()
