#!/usr/bin/env python3
"""
test_views.py - views kept in their store (LMDB) behind a bounded cache:

- a view far larger than view_cache_bytes is exact, checkpoints while it
  grows (the cache's budget forces them), survives SIGKILLs with exact
  counts and answers right after a restart;
- view_scan pages with `after` and `next` (protocol and kappactl, which
  pages through any view); view_get of many keys;
- a damaged store is reported at start (proc status, /health) and
  `proc reset` rebuilds the view from the log;
- a data directory from before the store (a checkpoint file holding the
  view) is taken over;
- verify compares stored views;
- a full disk under the store pauses the processor, visibly, and it
  resumes with nothing lost once there is room.
"""

import os
import random
import struct
import subprocess
import time
import zlib

import msgpack

import kappa_harness as kh

COUNT_KEY = """
local M = {}
function M.process(ctx, rec)
  ctx.state:incr(rec.value.k, 1)
end
return M
"""

# The same, a few microseconds slower per record: kills land mid-stream.
COUNT_KEY_SLOW = COUNT_KEY.replace(
    "ctx.state:incr", "local x = 0 for i = 1, 1500 do x = x + i end\n"
    "  ctx.state:incr")


def keyed(n, keys, seed=7, start=0):
    rng = random.Random(seed)
    return [{"k": "key-%07d" % rng.randrange(keys), "i": start + i}
            for i in range(n)]


def expected_counts(recs):
    out = {}
    for r in recs:
        out[r["k"]] = out.get(r["k"], 0) + 1
    return out


class ViewsTest(kh.ServerTest):
    class_server = False

    def produce(self, s, topic, recs, batch=2000):
        with s.client() as c:
            for i in range(0, len(recs), batch):
                c.produce(topic, recs[i:i + batch])

    def scan_all(self, s, name, prefix=None, page=1000):
        """The whole view through the protocol, page after page."""
        out, after, pages = {}, None, 0
        with s.client() as c:
            while True:
                f = {"name": name, "limit": page}
                if prefix is not None:
                    f["prefix"] = prefix
                if after is not None:
                    f["after"] = after
                r = c.ok("view_scan", **f)
                for it in r["items"]:
                    k = it["key"]
                    k = k.decode() if isinstance(k, bytes) else k
                    self.assertNotIn(k, out, "key %r twice" % k)
                    out[k] = msgpack.unpackb(it["value"]) \
                        if isinstance(it["value"], bytes) else it["value"]
                pages += 1
                if "next" not in r or r["next"] is None:
                    self.assertLessEqual(len(r["items"]), page)
                    return out, pages
                self.assertEqual(len(r["items"]), page)
                after = r["next"]

    def start_counter(self, s, partitions=1, code_text=COUNT_KEY):
        code = self.write_code(s, "count_key.lua", code_text)
        kh.create_topic(s, "in", partitions=partitions)
        cp = s.ctl("proc", "create", "cnt", "--file", code, "--input", "in")
        self.assertCtlOk(cp)

    # ------------------------------------------------------------------
    def test_view_larger_than_its_cache_survives_kills(self):
        """60k keys (several MB of table) with a 1 MiB cache: checkpoints
        come from the budget, one every few thousand keys, and SIGKILLs
        while it catches up (so, often in a checkpoint's commit) leave
        exact counts. KP_VIEW_KILLS sets the number of kills (a soak)."""
        s = self.new_server({"view_cache_bytes": 1 << 20})
        self.start_counter(s, code_text=COUNT_KEY_SLOW)
        kills = int(os.environ.get("KP_VIEW_KILLS", "8"))
        recs = keyed(max(150000, kills * 20000), 60000)
        want = expected_counts(recs)
        self.assertCtlOk(s.ctl("proc", "pause", "cnt"))
        self.produce(s, "in", recs)
        self.assertCtlOk(s.ctl("proc", "resume", "cnt"))
        rng = random.Random(11)
        done = 0
        for _ in range(kills):
            time.sleep(rng.uniform(0.05, 0.4))
            s.kill()
            s.start()
            done += 1
            if kh.raw_status(s, "cnt")["lag"] == 0:
                break
        self.assertGreaterEqual(done, min(kills, 3), "kills mid-stream")
        self.assertGreater(kh.raw_status(s, "cnt")["checkpoint"]["at_ms"],
                           0)
        kh.wait_lag0(s, "cnt", timeout=120)
        st = kh.raw_status(s, "cnt")
        self.assertEqual(st["view_keys"], len(want))
        self.assertGreater(st["checkpoint"]["at_ms"], 0)
        self.assertIsNone(st["checkpoint"]["error"])
        # The table stays near its budget although the view is bigger.
        self.assertLess(st["view_cache_bytes"], 3 << 20)
        self.assertGreater(st["view_disk_bytes"], 0)
        got, pages = self.scan_all(s, "cnt")
        self.assertEqual(got, want)
        self.assertGreater(pages, 50)
        # Right after a restart the view answers, from its store.
        s.kill()
        s.start()
        with s.client() as c:
            k = recs[0]["k"]
            r = c.ok("view_get", name="cnt", key=k)
            self.assertTrue(r["found"])
            self.assertEqual(msgpack.unpackb(r["value"])
                             if isinstance(r["value"], bytes)
                             else r["value"], want[k])
        s.stop_ok(self)

    def test_scan_pages_and_many_gets(self):
        s = self.new_server()
        self.start_counter(s)
        recs = [{"k": "a%03d" % i} for i in range(250)] + \
               [{"k": "b%03d" % i} for i in range(40)]
        self.produce(s, "in", recs)
        kh.wait_lag0(s, "cnt")
        got, pages = self.scan_all(s, "cnt", page=100)
        self.assertEqual(len(got), 290)
        self.assertEqual(pages, 3)
        got, pages = self.scan_all(s, "cnt", prefix="b", page=7)
        self.assertEqual(sorted(got), ["b%03d" % i for i in range(40)])
        with s.client() as c:
            r = c.ok("view_scan", name="cnt", after="a248", limit=2)
            self.assertEqual([it["key"] for it in r["items"]],
                             ["a249", "b000"])
            self.assertEqual(r["next"], "b000")
            r = c.ok("view_scan", name="cnt", prefix="a", after="a248",
                     limit=5)
            self.assertEqual([it["key"] for it in r["items"]], ["a249"])
            self.assertNotIn("next", r)
            self.assertError(c.call("view_scan", name="cnt", limit=0),
                             "BAD_REQUEST")
            r = c.ok("view_get", name="cnt", keys=["a001", "zz", "b039"])
            self.assertEqual([(it["key"], it["found"]) for it in r["items"]],
                             [("a001", True), ("zz", False), ("b039", True)])
            self.assertIsNone(r["items"][1]["value"])
            self.assertError(c.call("view_get", name="cnt", keys=[1]),
                             "BAD_REQUEST")
        # kappactl: scan pages through everything by itself.
        lines = kh.ctl_json(s, "view", "scan", "cnt")
        self.assertEqual(len(lines), 290)
        self.assertEqual(lines[0], {"key": "a000", "value": 1})
        cp = s.ctl("view", "scan", "cnt", "--after", "a100", "--limit", "3")
        self.assertCtlOk(cp)
        self.assertEqual([x["key"] for x in kh.json_lines(cp.stdout)],
                         ["a101", "a102", "a103"])
        self.assertIn("--after 'a103'", cp.stderr)
        cp = s.ctl("view", "scan", "cnt", "--prefix", "b", "--after",
                   "b037")
        self.assertCtlOk(cp)
        self.assertEqual(len(kh.json_lines(cp.stdout)), 2)
        self.assertEqual(cp.stderr, "")
        # get: one key prints the value; several print one line each.
        cp = s.ctl("view", "get", "cnt", "a001")
        self.assertCtlOk(cp)
        self.assertEqual(cp.stdout.strip(), "1")
        cp = s.ctl("view", "get", "cnt", "a001", "nope", "b002")
        self.assertCtlOk(cp)
        self.assertEqual(kh.json_lines(cp.stdout), [
            {"key": "a001", "found": True, "value": 1},
            {"key": "nope", "found": False, "value": None},
            {"key": "b002", "found": True, "value": 1}])
        s.stop_ok(self)

    def test_damaged_store_is_reported_and_reset_rebuilds(self):
        s = self.new_server()
        self.start_counter(s)
        recs = keyed(3000, 500)
        self.produce(s, "in", recs)
        kh.wait_lag0(s, "cnt")
        s.stop()
        path = os.path.join(s.data, "procs", "cnt", "v1", "view", "data.mdb")
        with open(path, "r+b") as f:
            f.write(b"\xde\xad\xbe\xef" * 1024)  # both meta pages
        s.start()
        st = kh.wait_status(s, "cnt", lambda st: st["state"] == "failed",
                            what="the damaged view reported")
        self.assertIn("damaged", st["reason"])
        self.assertIn("proc reset", st["reason"])
        status, _, body = s.http_get("/health")
        self.assertNotEqual(status, 200, body)
        self.assertIn("cnt", body)
        with s.client() as c:
            c.ok("proc_reset", name="cnt", to="earliest", execute=True)
        kh.wait_lag0(s, "cnt", timeout=60)
        got, _ = self.scan_all(s, "cnt")
        self.assertEqual(got, expected_counts(recs))
        self.assertEqual(kh.raw_status(s, "cnt")["state"], "running")
        s.stop_ok(self)

    def test_old_checkpoint_file_is_taken_over(self):
        """A data directory written before views had a store: its
        checkpoint file holds the view; the first start moves it into the
        store with its positions."""
        s = self.new_server()
        self.start_counter(s)
        recs = keyed(1000, 50)
        self.produce(s, "in", recs)
        kh.wait_lag0(s, "cnt")
        s.stop()
        vdir = os.path.join(s.data, "procs", "cnt", "v1")
        subprocess.run(["rm", "-rf", os.path.join(vdir, "view")], check=True)
        # The old format: the checkpoint's map plus a KPVIEW01 snapshot.
        entries = sorted(expected_counts(recs).items())
        body = b"KPVIEW01" + struct.pack("<Q", len(entries))
        for k, v in entries:
            kb, vb = k.encode(), msgpack.packb(v)
            body += struct.pack("<I", len(kb)) + kb
            body += struct.pack("<I", len(vb)) + vb
        crc = crc32c(body)
        snap = body + struct.pack("<I", crc)
        ckpt = {"version": 1, "cursors": [["in", 0, len(recs)]],
                "marks": [], "processed": len(recs), "errors": 0,
                "dead_lettered": 0, "steps_done": 0, "view": snap}
        with open(os.path.join(vdir, "checkpoint"), "wb") as f:
            f.write(msgpack.packb(ckpt, use_bin_type=True))
        s.start()
        more = keyed(500, 50, seed=9)
        self.produce(s, "in", more)
        kh.wait_lag0(s, "cnt")
        got, _ = self.scan_all(s, "cnt")
        self.assertEqual(got, expected_counts(recs + more))
        self.assertFalse(os.path.exists(os.path.join(vdir, "checkpoint")))
        with open(s.log_path) as f:
            self.assertIn("moved into the view store", f.read())
        s.stop_ok(self)

    def test_verify_compares_stored_views(self):
        s = self.new_server({"view_cache_bytes": 1 << 20})
        self.start_counter(s, partitions=2)
        recs = keyed(40000, 20000)
        with s.client() as c:
            for i in range(0, len(recs), 2000):
                c.produce("in", recs[i:i + 2000], partition=(i // 2000) % 2)
        kh.wait_lag0(s, "cnt", timeout=60)
        with s.client(timeout=120) as c:
            r = c.ok("proc_verify", name="cnt", **{"from": "earliest"})
        self.assertTrue(r["identical"], r)
        self.assertTrue(r["view_compared"], r)
        self.assertEqual(r["records"], len(recs))
        s.stop_ok(self)

    def test_full_disk_pauses_then_resumes(self):
        """The data directory on a small tmpfs: once it is full the view's
        checkpoints fail, the processor says so and, its cache full,
        waits; with room again it resumes and nothing is lost."""
        if os.geteuid() != 0:
            self.skipTest("needs root to mount a tmpfs")
        mnt = os.path.join(os.environ.get("TMPDIR", "/tmp"),
                           "kp-views-tmpfs-%d" % os.getpid())
        os.makedirs(mnt, exist_ok=True)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m",
                           "tmpfs", mnt]).returncode != 0:
            self.skipTest("cannot mount a tmpfs")
        self.addCleanup(lambda: subprocess.run(["umount", "-l", mnt]))
        s = self.new_server({"view_cache_bytes": 1 << 20,
                             "default_segment_bytes": 1 << 20}, start=False)
        s.data = os.path.join(mnt, "data")
        self.addCleanup(lambda: (s.stop() if s.alive() else None))
        s.start()
        self.start_counter(s)
        recs = keyed(120000, 120000, seed=3)
        self.produce(s, "in", recs[:10000])
        kh.wait_lag0(s, "cnt", timeout=60)
        # The rest waits in the log while the processor is paused; then
        # the disk is filled and the processor resumed.
        self.assertCtlOk(s.ctl("proc", "pause", "cnt"))
        self.produce(s, "in", recs[10000:])
        written = len(recs)
        ballast = os.path.join(mnt, "ballast")
        subprocess.run(["fallocate", "-l", "100m", ballast],
                       stderr=subprocess.DEVNULL)  # as much as fits
        with open(ballast, "ab") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        # A resume that cannot be saved would not survive a restart.
        self.assertCtlFails(s.ctl("proc", "resume", "cnt"), "stays paused")
        self.assertEqual(kh.raw_status(s, "cnt")["state"], "paused")
        os.truncate(ballast, os.path.getsize(ballast) - (256 << 10))
        self.assertCtlOk(s.ctl("proc", "resume", "cnt"))
        st = kh.wait_status(
            s, "cnt", lambda st: st["checkpoint"]["error"] is not None,
            timeout=30, what="a failed checkpoint reported")
        self.assertIn("reserve", st["checkpoint"]["error"])
        self.assertGreater(st["checkpoint"]["failures"], 0)
        self.assertEqual(s.metric("kappa_processor_checkpoint_failing",
                                  {"processor": "cnt", "version": "1"}), 1)
        status, _, body = s.http_get("/health")
        self.assertNotEqual(status, 200, body)
        self.assertIn("checkpoint", body)
        # Its table fills with changes it cannot commit: it waits, visibly.
        st = kh.wait_status(s, "cnt", lambda st: st["state"] == "paused",
                            timeout=30, what="paused on its full cache")
        self.assertIn("cannot checkpoint", st["reason"])
        os.unlink(ballast)
        kh.wait_status(s, "cnt",
                       lambda st: st["checkpoint"]["error"] is None and
                       st["lag"] == 0, timeout=60,
                       what="checkpoints working again")
        got, _ = self.scan_all(s, "cnt")
        self.assertEqual(got, expected_counts(recs[:written]))
        s.kill()
        s.start()
        kh.wait_lag0(s, "cnt", timeout=60)
        got, _ = self.scan_all(s, "cnt")
        self.assertEqual(got, expected_counts(recs[:written]))
        s.stop_ok(self)


def crc32c(data):
    """CRC32C (Castagnoli), bitwise: small inputs only."""
    crc = 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 & -(crc & 1))
    return crc ^ 0xffffffff


if __name__ == "__main__":
    kh.main()
