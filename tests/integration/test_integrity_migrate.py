"""
test_integrity_migrate.py - a data directory written by an older kappad
(batch format 1, magic "KPB1") is migrated when the server starts: each old
segment is rewritten in format 2 with a log line, offsets, timestamps, keys,
values and producer state unchanged, the recovery point moved along, and a
second start leaves the migrated files alone.

The old segments are written here by a small writer of the format-1 layout
(server/log/batch_v1.h).
"""

import os
import re
import struct

import msgpack

import kappa_harness as kh
from test_integrity import batches, crc32c, log_text, part_dir, segment_files

TS0 = 1690000000000
PER_BATCH = 10
BATCHES = 3
SEGMENTS = 4
PER_SEGMENT = PER_BATCH * BATCHES
END = PER_SEGMENT * SEGMENTS
PID = 77


def old_value(o):
    return {"old": o, "text": "record %d" % o}


def old_key(o):
    return None if o % 3 == 0 else ("k%d" % (o % 5)).encode()


def v1_batch(base, pid, seq):
    """One format-1 batch of PER_BATCH records from base."""
    recs = b""
    for o in range(base, base + PER_BATCH):
        key, value = old_key(o), msgpack.packb(old_value(o))
        body = struct.pack("<qi", TS0 + o * 7,
                           -1 if key is None else len(key))
        body += (key or b"") + value
        recs += struct.pack("<I", len(body)) + body
    length = 56 + len(recs)
    tail = struct.pack("<IqqQII", PER_BATCH, TS0 + base * 7,
                       TS0 + (base + PER_BATCH - 1) * 7, pid, seq, 0) + recs
    return struct.pack("<QI4sI", base, length, b"KPB1", crc32c(tail)) + tail


def v1_ckpt(segment_base, position, next_offset, producer_batches):
    """recovery.ckpt as format-1 servers wrote it (recovery.c)."""
    snap = struct.pack("<I", 1) + struct.pack("<QI", PID, len(producer_batches))
    for seq, count, base in producer_batches:
        snap += struct.pack("<IIQ", seq, count, base)
    head = struct.pack("<4sIQQQqqIII", b"KPRC", 1, segment_base, position,
                       next_offset, TS0 + (next_offset - 1) * 7, TS0, 0, 0,
                       len(snap))
    body = head + snap
    return body + struct.pack("<I", crc32c(body))


def write_old_partition(pdir):
    for n in os.listdir(pdir):
        os.unlink(os.path.join(pdir, n))
    last = b""
    for s in range(SEGMENTS):
        base = s * PER_SEGMENT
        data = b""
        for b in range(BATCHES):
            lastseg = s == SEGMENTS - 1
            data += v1_batch(base + b * PER_BATCH, PID if lastseg else 0, b)
        name = os.path.join(pdir, "%020d" % base)
        with open(name + ".log", "wb") as f:
            f.write(data)
        # Format-1 index files: 8-byte offset entries, 12-byte time ones.
        with open(name + ".index", "wb") as f:
            f.write(struct.pack("<II", PER_BATCH, len(data) // BATCHES))
        with open(name + ".timeindex", "wb") as f:
            f.write(struct.pack("<qI", TS0 + (base + PER_SEGMENT - 1) * 7,
                                PER_SEGMENT - 1))
        last = data
    with open(os.path.join(pdir, "recovery.ckpt"), "wb") as f:
        f.write(v1_ckpt((SEGMENTS - 1) * PER_SEGMENT, len(last), END,
                        [(b, PER_BATCH, (SEGMENTS - 1) * PER_SEGMENT + b * PER_BATCH)
                         for b in range(BATCHES)]))


class Migrate(kh.ServerTest):
    class_server = False

    def check_records(self, c, t, end):
        recs = c.fetch_all(t)
        self.assertEqual([r["offset"] for r in recs], list(range(end)))
        for r in recs[:END]:
            o = r["offset"]
            self.assertEqual(r["value"], old_value(o))
            self.assertEqual(r["key"], old_key(o))
            self.assertEqual(r["ts"], TS0 + o * 7)
        return recs

    def test_old_directory_is_migrated(self):
        s = self.new_server()
        t = kh.unique("old")
        with s.client() as c:
            c.ok("topic_create", topic=t, segment_bytes=1 << 20, fsync="always")
        s.stop_ok(self)
        pdir = part_dir(s, t)
        write_old_partition(pdir)
        sizes = {p: os.path.getsize(p) for p in segment_files(pdir)}
        log_start = len(log_text(s))
        s.start()
        with s.client() as c:
            self.check_records(c, t, END)
            st = c.ok("topic_describe", topic=t)["topic"]["partition_stats"][0]
            self.assertEqual((st["start_offset"], st["end_offset"]), (0, END))
            self.assertEqual(c.ok("list_offsets", topic=t, at=TS0 + 45 * 7)["offset"], 45)
            # The producer state came across: a retry is a duplicate, at
            # its original offsets; the next batch goes on at the end.
            recs = [{"value": {"retry": i}} for i in range(PER_BATCH)]
            r = c.ok("produce", topic=t, partition=0, producer_id=PID,
                     seq=BATCHES - 1, records=recs)["results"][0]
            self.assertEqual((r["duplicate"], r["base_offset"]),
                             (True, END - PER_BATCH))
            r = c.ok("produce", topic=t, partition=0, producer_id=PID,
                     seq=BATCHES, records=recs)["results"][0]
            self.assertEqual((r["duplicate"], r["base_offset"]), (False, END))
        s.stop_ok(self)
        text = log_text(s)[log_start:]
        for path in sizes:
            self.assertRegex(text, r"migrated %s from batch format 1 \(KPB1\) to 2"
                             % re.escape(path))
        self.assertNotRegex(text, r"scanning it all|cut \d+ bytes|damaged")
        for path in segment_files(pdir):
            with open(path, "rb") as f:
                f.seek(12)
                self.assertEqual(f.read(4), b"KPB2", path)
            self.assertTrue(all(b.header == 64 for b in batches(path)))
            self.assertFalse(os.path.exists(path + ".migrate"))
            base = path[:-4]
            self.assertEqual(os.path.getsize(base + ".index") % 12, 0)
            self.assertEqual(os.path.getsize(base + ".timeindex") % 16, 0)
        # A second start migrates nothing and serves the same.
        log_start = len(log_text(s))
        s.start()
        with s.client() as c:
            self.check_records(c, t, END + PER_BATCH)
        s.stop_ok(self)
        self.assertNotIn("migrated", log_text(s)[log_start:])


if __name__ == "__main__":
    kh.main()
