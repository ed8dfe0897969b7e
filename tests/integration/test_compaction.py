#!/usr/bin/env python3
"""
test_compaction.py - compacted topics (cleanup = compact | compact,delete):
the latest record per key survives with its original offset, consumers,
groups, list_offsets and processors read across the gaps, tombstones go
only after delete_retention_ms, a SIGKILL at any point of a compaction
loses nothing, and the setting is described and kept across restarts.

The big run produces KP_COMPACTION_RECORDS records over 1000 keys: by
default 1000000 (about 8 s here), 200000 under the sanitizers; e.g.
  KP_COMPACTION_RECORDS=5000000 KP_BUILD_DIR=build \\
      python3 tests/integration/test_compaction.py \\
      CompactionTest.test_latest_value_per_key_with_original_offsets
and KP_COMPACTION_KILLS (default 6) sets how many times the SIGKILL test
kills kappad at a random moment of a slowed-down run.
"""
import glob
import os
import random
import time

import kappa_harness as kh

KEYS = 1000
RECORDS = int(os.environ.get("KP_COMPACTION_RECORDS",
                             "200000" if kh.SLOW > 1 else "1000000"))
SEGMENT = 128 << 10
KILLS = int(os.environ.get("KP_COMPACTION_KILLS", "6"))


def key_of(i):
    return "key-%04d" % i


def produce_table(client, topic, n, keys=KEYS, seq0=0, batch=2000,
                  keyless_every=0, rng=None, sent=None):
    """Produces n records {"k": key, "s": seq} over keys (every
    keyless_every-th without a key); returns sent: offset -> (key, value)."""
    sent = {} if sent is None else sent
    for start in range(0, n, batch):
        vals, ks = [], []
        for j in range(start, min(n, start + batch)):
            seq = seq0 + j
            k = rng.randrange(keys) if rng else seq % keys
            key = None if keyless_every and seq % keyless_every == 0 \
                else key_of(k)
            vals.append({"k": key, "s": seq})
            ks.append(key)
        r = client.produce(topic, vals, keys=ks)["results"][0]
        for i, (k, v) in enumerate(zip(ks, vals)):
            sent[r["base_offset"] + i] = (k, v)
    return sent


def produce_raw(client, topic, records, sent):
    """records: [(key, value)]; value None is a tombstone."""
    r = client.produce(topic, [v for _, v in records],
                       keys=[k for k, _ in records])["results"][0]
    for i, kv in enumerate(records):
        sent[r["base_offset"] + i] = kv


def key_text(k):
    return k.decode() if isinstance(k, bytes) else k


def segment_bases(server, topic, partition=0):
    d = os.path.join(server.data, "topics", topic, str(partition))
    return sorted(int(os.path.basename(p)[:20])
                  for p in glob.glob(os.path.join(d, "*.log")))


def latest(sent):
    """key -> offset of its latest record (keyless records left out)."""
    out = {}
    for off in sorted(sent):
        k = sent[off][0]
        if k is not None:
            out[k] = off
    return out


def check_nothing_lost(tc, recs, sent):
    """Every record read is the one written at its offset; offsets only
    grow; every key's latest record and every keyless one is there."""
    offsets = [r["offset"] for r in recs]
    tc.assertEqual(offsets, sorted(set(offsets)), "offsets out of order")
    got = set(offsets)
    for r in recs:
        tc.assertIn(r["offset"], sent)
        k, v = sent[r["offset"]]
        tc.assertEqual(key_text(r["key"]), k, r)
        tc.assertEqual(r["value"], v, r)
    for k, off in latest(sent).items():
        tc.assertIn(off, got, "latest record of %s (offset %d) lost" % (k, off))
    for off, (k, _) in sent.items():
        if k is None:
            tc.assertIn(off, got, "keyless record at %d lost" % off)


def compacted_below_active(server, topic, recs):
    """True when no key appears twice below the active segment."""
    active = segment_bases(server, topic)[-1]
    seen = set()
    for r in recs:
        if r["offset"] >= active or r["key"] is None:
            continue
        if r["key"] in seen:
            return False
        seen.add(r["key"])
    return True


def wait_compacted(tc, server, topic, timeout=60.0):
    box = {}

    def check():
        with server.client() as c:
            recs = c.fetch_all(topic)
        box["recs"] = recs
        return recs if compacted_below_active(server, topic, recs) else None

    try:
        return kh.wait_for(check, timeout, "%s to be compacted" % topic,
                           interval=0.5)
    except AssertionError as e:
        raise AssertionError("%s\n%s" % (e, server.log_tail(20)))


def wait_log(server, text, count=1, timeout=60.0):
    def check():
        with open(server.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace").count(text) >= count
    kh.wait_for(check, timeout, "%r in the log" % text, interval=0.1)


def log_count(server, text):
    with open(server.log_path, "rb") as f:
        return f.read().decode("utf-8", "replace").count(text)


def create(server, topic, *flags):
    return kh.ctl_json(server, "topic", "create", topic, *flags)[0]


class CompactionTest(kh.ServerTest):

    # ------------------------------------------------------------------
    def test_cleanup_is_described_and_kept(self):
        s = self.new_server()
        d = create(s, "plain")
        self.assertEqual(d["cleanup"], "delete")
        self.assertEqual(d["delete_retention_ms"], 86400000)
        d = create(s, "table", "--cleanup", "compact",
                   "--delete-retention-ms", "5000")
        self.assertEqual(d["cleanup"], "compact")
        self.assertEqual(d["delete_retention_ms"], 5000)
        d = create(s, "both", "--cleanup", "compact,delete",
                   "--retention-ms", "3600000")
        self.assertEqual(d["cleanup"], "compact,delete")
        self.assertCtlFails(s.ctl("topic", "create", "bad", "--cleanup",
                                  "compress"), "--cleanup")
        self.assertCtlFails(s.ctl("topic", "create", "bad",
                                  "--delete-retention-ms", "0"),
                            "delete_retention_ms")
        # Dead letters are each kept: their topics are never compacted.
        for name in ("p.dlq", "p.dlq.v3"):
            self.assertCtlFails(s.ctl("topic", "create", name, "--cleanup",
                                      "compact"), "dead-letter")
        create(s, "p.dlqx", "--cleanup", "compact")
        with s.client() as c:
            r = c.call("topic_create", topic="raw", cleanup=7)
            self.assertError(r, "BAD_REQUEST")
            r = c.call("topic_create", topic="raw", cleanup="sometimes")
            self.assertError(r, "BAD_REQUEST")
        s.restart()
        got = {t["name"]: t for t in kh.ctl_json(s, "topic", "list")}
        self.assertEqual(got["plain"]["cleanup"], "delete")
        self.assertEqual(got["table"]["cleanup"], "compact")
        self.assertEqual(got["table"]["delete_retention_ms"], 5000)
        self.assertEqual(got["both"]["cleanup"], "compact,delete")
        self.assertEqual(got["both"]["retention_ms"], 3600000)
        d = kh.ctl_json(s, "topic", "describe", "table")[0]
        self.assertEqual(d["cleanup"], "compact")

    # ------------------------------------------------------------------
    def test_latest_value_per_key_with_original_offsets(self):
        s = self.new_server()
        t = "table"
        create(s, t, "--cleanup", "compact", "--segment-bytes", str(SEGMENT))
        with s.client(timeout=60) as c:
            sent = produce_table(c, t, RECORDS, rng=random.Random(3))
        recs = wait_compacted(self, s, t, timeout=120)
        active = segment_bases(s, t)[-1]
        in_active = sum(1 for off in sent if off >= active)
        self.assertLessEqual(len(recs), KEYS + in_active)
        self.assertLess(len(recs), RECORDS // 10)
        check_nothing_lost(self, recs, sent)
        # Below the active segment: exactly the latest record of each key
        # there (the active segment, never compacted, may hold newer ones).
        last = latest({o: kv for o, kv in sent.items() if o < active})
        below = [r for r in recs if r["offset"] < active]
        self.assertEqual({key_text(r["key"]): r["offset"] for r in below},
                         last)
        self.assertEqual(len(below), len(last))
        runs = s.metric("kappa_compaction_runs_total",
                        {"topic": t, "partition": "0"})
        removed = s.metric("kappa_compaction_records_removed_total",
                           {"topic": t, "partition": "0"})
        self.assertGreaterEqual(runs, 1)
        self.assertGreaterEqual(removed, RECORDS - len(recs) - KEYS)
        st = kh.ctl_json(s, "topic", "describe", t)[0]["partition_stats"][0]
        self.assertEqual(st["start_offset"], 0)
        self.assertEqual(st["end_offset"], RECORDS)

        # kappactl consume from the start prints the same records.
        out = kh.consume_all(s, t)
        self.assertEqual([r["offset"] for r in out],
                         [r["offset"] for r in recs])

        with s.client() as c:
            # A fetch at a removed offset starts at the next record kept.
            kept = [r["offset"] for r in recs]
            gap = next(i for i in range(len(kept) - 1)
                       if kept[i + 1] > kept[i] + 1)
            r = c.ok("fetch", topic=t, offset=kept[gap] + 1, max_bytes=1)
            self.assertEqual(r["records"][0]["offset"], kept[gap + 1])
            # list_offsets by time answers a record that is there.
            ts = {r["offset"]: r["ts"] for r in recs}
            r = c.ok("list_offsets", topic=t, at=ts[kept[gap]] + 1)
            self.assertIn(r["offset"], set(kept) | {RECORDS})
            self.assertGreater(r["offset"], kept[gap])
            r = c.ok("list_offsets", topic=t, at="earliest")
            self.assertEqual(r["offset"], 0)

        # A consumer group that read it all has no lag.
        cp = s.ctl("consume", t, "--group", "g1")
        self.assertCtlOk(cp)
        self.assertEqual(len(kh.json_lines(cp.stdout)), len(recs))
        with s.client() as c:
            offs = c.ok("group_fetch", group="g1")["offsets"]
        self.assertEqual(offs[0]["offset"], RECORDS)
        self.assertEqual(offs[0]["lag"], 0)

        # What a restart finds is the compacted log.
        s.restart()
        with s.client() as c:
            again = c.fetch_all(t)
        self.assertEqual(again, recs)

    # ------------------------------------------------------------------
    def test_processor_replay_equals_the_uncompacted_copy(self):
        s = self.new_server()
        create(s, "chg", "--cleanup", "compact", "--segment-bytes", "65536")
        create(s, "chg-copy", "--segment-bytes", "65536")
        rng = random.Random(11)
        sent_c, sent_u = {}, {}
        with s.client(timeout=60) as c:
            for round_ in range(40):
                recs = []
                for j in range(1000):
                    seq = round_ * 1000 + j
                    k = key_of(rng.randrange(300))
                    if seq % 97 == 0:
                        recs.append((None, {"keyless": seq}))
                    elif seq % 13 == 0:
                        recs.append((k, None))
                    else:
                        recs.append((k, {"v": seq}))
                produce_raw(c, "chg", recs, sent_c)
                produce_raw(c, "chg-copy", recs, sent_u)
        wait_compacted(self, s, "chg")
        with s.client() as c:
            self.assertLess(len(c.fetch_all("chg")),
                            len(c.fetch_all("chg-copy")) // 4)
        fixture = kh.fixture("latest_per_key.lua")
        for name, topic in (("over-compacted", "chg"), ("over-copy", "chg-copy")):
            cp = s.ctl("proc", "create", name, "--file", fixture,
                       "--input", topic)
            self.assertCtlOk(cp)
        for name in ("over-compacted", "over-copy"):
            st = kh.wait_caught_up(s, name)
            self.assertEqual(st["inputs"][0]["offset"], 40000)
            self.assertEqual(st["errors"], 0)
        view_c = kh.view_scan(s, "over-compacted")
        view_u = kh.view_scan(s, "over-copy")
        self.assertEqual(view_c, view_u)
        self.assertEqual(view_c["#keyless"], sum(
            1 for k, _ in sent_c.values() if k is None))
        want = {}
        for off in sorted(sent_u):
            k, v = sent_u[off]
            if k is None:
                continue
            if v is None:
                want.pop(k, None)
            else:
                want[k] = v
        self.assertEqual({k: v for k, v in view_c.items()
                          if k != "#keyless"}, want)
        # A replay over the compacted topic builds the same view again.
        with s.client() as c:
            c.ok("proc_replay", name="over-compacted")
        kh.wait_status(s, "over-compacted",
                       lambda st: st["version"] == 2 and st["lag"] == 0,
                       timeout=30)
        self.assertEqual(kh.view_scan(s, "over-compacted"), view_u)

    # ------------------------------------------------------------------
    def test_tombstones_go_only_after_delete_retention(self):
        s = self.new_server()
        t = "deletes"
        create(s, t, "--cleanup", "compact", "--segment-bytes", "16384",
               "--delete-retention-ms", "20000")
        sent = {}
        with s.client() as c:
            produce_raw(c, t, [("k%d" % i, {"v": i}) for i in range(100)],
                        sent)
            produce_raw(c, t, [("k%d" % i, None) for i in range(50)], sent)
            written = time.monotonic()
            for b in range(10):
                produce_raw(c, t, [("f%d" % (i % 20), {"f": b * 300 + i})
                                   for i in range(300)], sent)
        recs = wait_compacted(self, s, t)
        self.assertLess(time.monotonic() - written, 18,
                        "compaction took too long to see the tombstones")
        by_key = {}
        for r in recs:
            by_key.setdefault(key_text(r["key"]), []).append(r)
        for i in range(50):
            rs = by_key["k%d" % i]
            self.assertEqual(len(rs), 1, rs)
            self.assertIsNone(rs[0]["value"], "tombstone of k%d" % i)
        for i in range(50, 100):
            self.assertEqual([r["value"] for r in by_key["k%d" % i]],
                             [{"v": i}])

        def tombstones_gone():
            with s.client() as c:
                got = c.fetch_all(t)
            keys = {key_text(r["key"]) for r in got}
            return got if not keys & {"k%d" % i for i in range(50)} else None

        got = kh.wait_for(tombstones_gone, 60, "tombstones to go", 0.5)
        self.assertGreaterEqual(time.monotonic() - written, 20)
        keys = {key_text(r["key"]) for r in got}
        self.assertTrue({"k%d" % i for i in range(50, 100)} <= keys)
        for r in got:
            self.assertIsNotNone(r["value"])

    # ------------------------------------------------------------------
    def test_compact_delete_also_applies_retention(self):
        s = self.new_server({"retention_check_ms": 200})
        t = "both"
        create(s, t, "--cleanup", "compact,delete", "--segment-bytes",
               "16384", "--retention-bytes", "60000")
        with s.client() as c:
            sent = {}
            for b in range(20):
                produce_raw(c, t, [("u%d" % (b * 500 + i), {"i": i})
                                   for i in range(500)], sent)

        def trimmed():
            st = kh.ctl_json(s, "topic", "describe", t)[0]
            p = st["partition_stats"][0]
            return p if p["start_offset"] > 0 and \
                p["size_bytes"] <= 60000 + 16384 else None

        p = kh.wait_for(trimmed, 30, "retention of %s" % t, 0.2)
        self.assertEqual(p["end_offset"], 10000)
        with s.client() as c:
            recs = c.fetch_all(t, start=p["start_offset"])
        self.assertTrue(recs)
        for r in recs:
            self.assertEqual(sent[r["offset"]][1], r["value"])

    # ------------------------------------------------------------------
    def start_with(self, s, **env):
        old = {k: os.environ.get(k) for k in env}
        os.environ.update({k: str(v) for k, v in env.items()})
        try:
            s.start()
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def test_sigkill_during_compaction_loses_nothing(self):
        s = self.new_server(start=False)
        t = "crashy"
        rng = random.Random(5)
        sent = {}
        self.start_with(s)
        create(s, t, "--cleanup", "compact", "--segment-bytes", "65536")
        seq = 0
        # At each step of a run: the new files written (no manifest yet),
        # the manifest on disk, the files swapped in (old ones not deleted).
        for stall in ("written", "manifest", "swapped"):
            s.kill()
            # Counted before the start: a run over the records already
            # there can stall at once, before this server answers.
            before = log_count(s, "stalling at '%s'" % stall)
            self.start_with(s, KAPPA_TEST_COMPACT_STALL=stall)
            with s.client(timeout=60) as c:
                produce_table(c, t, 30000, seq0=seq, rng=rng, keyless_every=501,
                              sent=sent)
            seq += 30000
            wait_log(s, "stalling at '%s'" % stall, before + 1)
            s.kill()
            # A run started after the restart stalls before it writes a
            # manifest of its own, so a compact.swap seen now is one that
            # recovery left behind.
            self.start_with(s, KAPPA_TEST_COMPACT_STALL="written")
            with s.client() as c:
                check_nothing_lost(self, c.fetch_all(t), sent)
            self.assertFalse(os.path.exists(os.path.join(
                s.data, "topics", t, "0", "compact.swap")))
            if stall != "written":
                self.assertGreaterEqual(log_count(
                    s, "completed a compaction interrupted by a crash"), 1)
        # Killed at random moments of slowed-down runs.
        for i in range(KILLS):
            s.kill()
            self.start_with(s, KAPPA_TEST_COMPACT_DELAY_MS=3)
            with s.client(timeout=60) as c:
                produce_table(c, t, 20000, seq0=seq, rng=rng, keyless_every=501,
                              sent=sent)
            seq += 20000
            time.sleep(rng.uniform(0.3, 2.5))
            s.kill()
            self.start_with(s)
            with s.client() as c:
                check_nothing_lost(self, c.fetch_all(t), sent)
        recs = wait_compacted(self, s, t)
        check_nothing_lost(self, recs, sent)
        s.stop_ok(self)


if __name__ == "__main__":
    kh.main()
