"""
test_integrity.py - every byte on disk is checked: a flipped bit anywhere in
a sealed segment is never served, CORRUPT_BATCH says where reading goes on
(the first offset of the next readable batch) so the rest of the partition
stays readable, a batch header cut by the end of a 1 MiB read window is not
reported as corrupt, `kappactl consume` skips a damaged batch and says so,
and damaged indexes are rebuilt.

The tests read the segment files themselves (batch format 2, described in
server/log/batch.h; format 1 too, so that they can be pointed at an older
kappad with KAPPAD=... to see what it did).
"""

import os
import random
import re
import shutil
import struct

import msgpack

import kappa_harness as kh


# ---------------------------------------------------------------------------
# CRC32C and the on-disk formats.

# One CRC32C for every test: the harness's (written from PROTOCOL.md).
crc32c = kh.crc32c

assert crc32c(b"123456789") == 0xE3069283

V1_MAGIC = b"KPB1"
V2_MAGIC = b"KPB2"


class Batch:
    """One batch of a segment file: where it is and which offsets it holds."""

    def __init__(self, path, pos, length, base, next_offset, header):
        self.path = path
        self.pos = pos
        self.length = length
        self.base = base
        self.next = next_offset
        self.header = header      # header size of its format

    def __repr__(self):
        return "Batch(%s@%d, offsets %d..%d)" % (
            os.path.basename(self.path), self.pos, self.base, self.next)


def batches(path):
    """The batches of a segment file, in order (format 1 or 2)."""
    with open(path, "rb") as f:
        data = f.read()
    out, pos = [], 0
    while pos + 16 <= len(data):
        magic = data[pos + 12:pos + 16]
        if magic == V2_MAGIC:
            (base, length, _, _, count, last_delta, _, _, _, _, _,
             _) = struct.unpack_from("<QII4IqqQII", data, pos)
            out.append(Batch(path, pos, length, base, base + last_delta + 1,
                             64))
        elif magic == V1_MAGIC:
            base, length, _, _, count = struct.unpack_from("<QIIII", data, pos)
            out.append(Batch(path, pos, length, base, base + count, 56))
        else:
            raise AssertionError("no batch at %d of %s" % (pos, path))
        pos += length
    return out


def segment_files(part_dir):
    """The .log files of a partition directory, oldest first."""
    return sorted(os.path.join(part_dir, n) for n in os.listdir(part_dir)
                  if re.fullmatch(r"\d{20}\.log", n))


def flip_bit(path, pos, bit):
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)[0]
        f.seek(pos)
        f.write(bytes([b ^ (1 << bit)]))


def part_dir(server, topic, partition=0):
    return os.path.join(server.data, "topics", topic, str(partition))


def log_text(server):
    with open(server.log_path, "rb") as f:
        return f.read().decode("utf-8", "replace")


DAMAGE_LINE = re.compile(r"batch at position (\d+) of (\S+)\.log is (?:damaged|corrupt)")


# ---------------------------------------------------------------------------
# Producing known records and reading them back.

def value_of(i):
    return {"n": i, "pad": "v%06d" % i * 3}


def key_of(i):
    return ("key-%d" % i).encode()


def produce_known(c, topic, n, per_batch):
    """Produces records 0..n-1 (value_of, key_of), per_batch per request."""
    for first in range(0, n, per_batch):
        idx = range(first, min(n, first + per_batch))
        r = c.produce(topic, [value_of(i) for i in idx],
                      keys=[key_of(i) for i in idx],
                      ts=[1700000000000 + i for i in idx])
        assert r["results"][0]["base_offset"] == first, r


class Reading:
    """What a consumer following the skip offsets read from a partition."""

    def __init__(self):
        self.got = {}          # offset -> record
        self.skips = []        # (offset asked, skip offset)
        self.bad = []          # records that differ from what was produced


def read_following(c, topic, max_bytes=1 << 20, partition=0):
    """Reads the whole partition from 0 as a consumer does, following skips."""
    out = Reading()
    offset, last_corrupt = 0, False
    while True:
        r = c.call("fetch", topic=topic, partition=partition, offset=offset,
                   max_bytes=max_bytes)
        if r.get("ok") is not True:
            if r.get("error") != "CORRUPT_BATCH":
                raise AssertionError("fetch at %d: %r" % (offset, r))
            if "offset" not in r:
                raise AssertionError("CORRUPT_BATCH without an offset: %r" % r)
            if r["offset"] <= offset:
                raise AssertionError("skip offset %d at %d" % (r["offset"], offset))
            if last_corrupt:
                raise AssertionError("the skip offset %d answered CORRUPT_BATCH "
                                     "again: %r" % (offset, r))
            out.skips.append((offset, r["offset"]))
            offset, last_corrupt = r["offset"], True
            continue
        last_corrupt = False
        recs = r["records"]
        for rec in recs:
            o = rec["offset"]
            if (o in out.got or rec["value"] != value_of(o)
                    or rec["key"] != key_of(o) or rec["ts"] != 1700000000000 + o):
                out.bad.append(rec)
            out.got[o] = rec
        if recs:
            offset = recs[-1]["offset"] + 1
        if not recs or offset >= r["end_offset"]:
            return out


class Integrity(kh.ServerTest):
    class_server = False

    def make_topic(self, s, topic, records, per_batch, segment_bytes):
        with s.client() as c:
            c.ok("topic_create", topic=topic, segment_bytes=segment_bytes,
                 fsync="never")
            produce_known(c, topic, records, per_batch)

    def test_no_flipped_bit_is_served(self):
        """1,000 single-bit flips over the sealed segments of a topic, in
        rounds that each damage 100 batches no two of which are neighbours:
        no damaged record is served, every other one is read exactly, each
        CORRUPT_BATCH names the next batch's first offset, and the log
        reports exactly the damaged batches."""
        s = self.new_server()
        t = kh.unique("flip")
        n = 6000
        self.make_topic(s, t, n, 20, 16384)
        s.stop_ok(self)
        pdir = part_dir(s, t)
        files = segment_files(pdir)
        sealed = [b for path in files[:-1] for b in batches(path)]
        self.assertGreaterEqual(len(sealed), 250, "want many sealed batches")
        everything = [b for path in files for b in batches(path)]
        follower = {(b.path, b.pos): everything[i + 1]
                    for i, b in enumerate(everything[:-1])}
        pristine = os.path.join(s.root, "pristine")
        shutil.copytree(pdir, pristine)
        rng = random.Random(1010)
        flips = 0
        for rnd in range(10):
            shutil.rmtree(pdir)
            shutil.copytree(pristine, pdir)
            picks = sorted(rng.sample(range(rnd % 2, len(sealed), 2), 100))
            damaged = [sealed[i] for i in picks]
            for j, b in enumerate(damaged):
                if (rnd + j) % 2 == 0:
                    pos = b.pos + (rnd * 100 + j) % b.header
                else:
                    pos = rng.randrange(b.pos + b.header, b.pos + b.length)
                flip_bit(b.path, pos, rng.randrange(8))
                flips += 1
            log_start = len(log_text(s))
            s.start()
            with s.client() as c:
                got = read_following(c, t, max_bytes=(1 << 20) if rnd % 3 else 3000)
            s.stop_ok(self)
            self.assertEqual(got.bad[:3], [], "round %d served wrong records" % rnd)
            lost = set()
            for b in damaged:
                lost.update(range(b.base, b.next))
            want = [o for o in range(n) if o not in lost]
            missing = [o for o in want if o not in got.got]
            self.assertEqual(missing[:10], [], "round %d: readable records not read"
                             % rnd)
            served = sorted(o for o in got.got if o in lost)
            self.assertEqual(served[:10], [], "round %d: damaged records served" % rnd)
            self.assertEqual(sorted(got.skips),
                             [(b.base, follower[(b.path, b.pos)].base) for b in damaged],
                             "round %d: skips" % rnd)
            reported = set()
            for m in DAMAGE_LINE.finditer(log_text(s)[log_start:]):
                reported.add((m.group(2) + ".log", int(m.group(1))))
            self.assertEqual(reported, {(b.path, b.pos) for b in damaged},
                             "round %d: the log's damage reports" % rnd)
        self.assertEqual(flips, 1000)

    def test_header_cut_by_the_read_window_is_not_corruption(self):
        """A batch header that starts 36 bytes before 2^20 (a 1 MiB fetch
        window ends inside it) is a short read, not damage: nothing is
        logged or answered as corrupt, and every record is read."""
        s = self.new_server()
        t = kh.unique("window")
        with s.client() as c:
            c.ok("topic_create", topic=t, fsync="never")
            big = {"pad": "x" * 60000}
            head, rec_head = None, None
            offset = 0
            while True:
                c.produce(t, [big])
                offset += 1
                path = segment_files(part_dir(s, t))[0]
                last = batches(path)[-1]
                head = last.header
                rec_head = 20 if head == 64 else 16
                end = last.pos + last.length
                if end > (1 << 20) - 200000:
                    break
            target = (1 << 20) - 36
            # One more batch, sized to end exactly at target.
            need = target - end - head - rec_head
            filler = None
            for k in range(need, need - 8, -1):
                if len(msgpack.packb("y" * k)) == need:
                    filler = "y" * k
                    break
            self.assertIsNotNone(filler)
            c.produce(t, [filler])
            c.produce(t, [{"after": i} for i in range(50)])
            offset += 2
            b = batches(path)
            self.assertIn(target, [x.pos for x in b])
            for mb in (1 << 20, 1 << 20, (1 << 20) - 10):
                r = c.ok("fetch", topic=t, offset=0, max_bytes=mb)
                self.assertGreater(len(r["records"]), 0)
            recs = c.fetch_all(t)
            self.assertEqual([r["offset"] for r in recs], list(range(offset + 49)))
        s.stop_ok(self)
        text = log_text(s)
        self.assertIsNone(re.search(r"corrupt|damaged", text), text[-2000:])

    def test_consume_skips_a_corrupt_batch(self):
        """kappactl consume prints every readable record, one stderr line
        per damaged batch naming its offsets, and exits 1."""
        s = self.new_server()
        t = kh.unique("consume")
        self.make_topic(s, t, 600, 40, 8192)
        s.stop_ok(self)
        sealed = [b for p in segment_files(part_dir(s, t))[:-1] for b in batches(p)]
        body, head = sealed[2], sealed[5]
        flip_bit(body.path, body.pos + body.length - 7, 2)
        flip_bit(head.path, head.pos + 1, 4)
        s.start()
        cp = s.ctl("consume", t)
        self.assertEqual(cp.returncode, 1, cp.stderr)
        lines = cp.stderr.splitlines()
        self.assertEqual(lines, [
            "kappactl: skipped offsets %d-%d of %s/0: corrupt batch"
            % (b.base, b.next - 1, t) for b in (body, head)])
        got = [r["offset"] for r in kh.json_lines(cp.stdout)]
        lost = set(range(body.base, body.next)) | set(range(head.base, head.next))
        self.assertEqual(got, [o for o in range(600) if o not in lost])
        for r in kh.json_lines(cp.stdout)[:5]:
            self.assertEqual(r["value"], value_of(r["offset"]))
        s.stop_ok(self)

    def test_damaged_index_is_rebuilt(self):
        """An offset index entry pointing at a position that is not a batch
        start (its CRC right), entries out of order, and a time index entry
        with a flipped bit: each is found, logged, and rebuilt; reads and
        list_offsets answer as before."""
        s = self.new_server()
        t = kh.unique("index")
        with s.client() as c:
            c.ok("topic_create", topic=t, segment_bytes=16384, fsync="never")
            produce_known(c, t, 2000, 10)
            before = c.fetch_all(t)
            times = {o: c.ok("list_offsets", topic=t, at=1700000000000 + o)["offset"]
                     for o in range(0, 2000, 37)}
        s.stop_ok(self)
        files = segment_files(part_dir(s, t))
        self.assertGreaterEqual(len(files), 5)

        def entries(path, size):
            with open(path, "rb") as f:
                data = f.read()
            self.assertEqual(len(data) % size, 0, path)
            self.assertGreaterEqual(len(data) // size, 3, path)
            return bytearray(data)

        # Segment 0: entry 1 points 10 bytes past its batch, CRC recomputed.
        ix0 = files[0][:-4] + ".index"
        e = entries(ix0, 12)
        rel, pos, _ = struct.unpack_from("<III", e, 12)
        struct.pack_into("<III", e, 12, rel, pos + 10,
                         crc32c(struct.pack("<II", rel, pos + 10)))
        with open(ix0, "wb") as f:
            f.write(e)
        # Segment 1: entries 1 and 2 swapped (each CRC still right).
        ix1 = files[1][:-4] + ".index"
        e = entries(ix1, 12)
        e[12:24], e[24:36] = e[24:36], e[12:24]
        with open(ix1, "wb") as f:
            f.write(e)
        # Segment 2: a flipped bit in a time index entry's timestamp.
        tix2 = files[2][:-4] + ".timeindex"
        e = entries(tix2, 16)
        e[16 + 1] ^= 0x08
        with open(tix2, "wb") as f:
            f.write(e)
        s.start()
        with s.client() as c:
            for o in range(0, 2000, 13):
                r = c.ok("fetch", topic=t, offset=o, max_bytes=1)
                self.assertEqual(r["records"][0]["offset"], o)
                self.assertEqual(r["records"][0]["value"], value_of(o))
            self.assertEqual(c.fetch_all(t), before)
            for o, want in times.items():
                self.assertEqual(c.ok("list_offsets", topic=t,
                                      at=1700000000000 + o)["offset"], want)
        s.stop_ok(self)
        text = log_text(s)
        for path, why in ((files[0], "does not point at a valid batch"),
                          (files[1], "out of order"),
                          (files[2], "time index damaged")):
            self.assertRegex(text, r"rebuilt index of %s \([^)]*%s"
                             % (re.escape(path), why))


if __name__ == "__main__":
    kh.main()
