#!/usr/bin/env python3
"""
test_fetch_batches.py - fetch with format "batches" (docs/PROTOCOL.md,
"Stored batches"): the stored batches as they are on disk, decoded here by
a client written from the protocol document alone (kappa_harness
decode_batches, with its own CRC32C), give exactly the records the records
form gives: over several partitions, keys, timestamps, processor outputs
with headers, a compacted topic with gaps; the first batch is the one that
holds the offset asked; max_bytes is a soft limit of whole batches; long
polls wake with batches; a bad format is a BAD_REQUEST naming the field;
logical topics carry their generation; and kappactl consume checks every
batch's CRCs, fetching a batch damaged on the way again.
"""
import os
import socket
import struct
import threading
import time

import msgpack

import kappa_harness as kh

COPY = ('local M={}\nfunction M.process(ctx, rec)\n'
        '  ctx:emit("fb_out", rec.value, rec.key)\nend\nreturn M\n')


def values(n, seed=0):
    """Varied msgpack values: maps, arrays, strings, numbers, nil, bytes."""
    out = []
    for i in range(n):
        k = (i + seed) % 6
        if k == 0:
            out.append({"n": i, "s": "v%05d" % i, "f": i / 7.0})
        elif k == 1:
            out.append([i, "x" * (i % 40), None, True])
        elif k == 2:
            out.append("text-%d" % i)
        elif k == 3:
            out.append(-i * 1000003)
        elif k == 4:
            out.append(None)
        else:
            out.append(b"\x00\xff" * (i % 9))
    return out


def header_and_bin(resp):
    """The batches field of a response; asserts the records form is absent."""
    assert "records" not in resp, resp
    blob = resp["batches"]
    assert isinstance(blob, bytes), type(blob)
    return blob


def batch_spans(blob):
    """[(base_offset, next_offset, length)] of the batches in blob."""
    out, pos = [], 0
    while pos < len(blob):
        h = kh.decode_batch_header(blob, pos)
        out.append((h["base_offset"],
                    h["base_offset"] + h["last_offset_delta"] + 1,
                    h["batch_len"]))
        pos += h["batch_len"]
    return out


class FetchBatchesTest(kh.ServerTest):

    def assertSameBothForms(self, c, topic, partition=0, start=0,
                            max_bytes=1 << 20):
        want = c.fetch_all(topic, partition=partition, start=start,
                           max_bytes=max_bytes)
        got = kh.fetch_batches_all(c, topic, partition=partition, start=start,
                                   max_bytes=max_bytes)
        self.assertEqual(len(got), len(want))
        self.assertEqual(got, want)
        return got

    def test_same_records_as_the_records_form(self):
        t = kh.unique("same")
        with self.server.client() as c:
            c.ok("topic_create", topic=t, partitions=3)
            for p in range(3):
                for b in range(6):
                    n = 2 + (b * 37 + p) % 90
                    vals = values(n, seed=b)
                    keys = [None if i % 5 == 0 else
                            ("k%d" % i).encode() if i % 2 else "s%d" % i
                            for i in range(n)]
                    keys[1] = b""
                    ts = [1700000000000 + b * 1000 + i for i in range(n)]
                    c.produce(t, vals, partition=p, keys=keys, ts=ts)
            total = 0
            for p in range(3):
                got = self.assertSameBothForms(c, t, partition=p)
                self.assertEqual([r["offset"] for r in got],
                                 list(range(len(got))))
                total += len(got)
                # One batch per response, still the same records.
                self.assertSameBothForms(c, t, partition=p, max_bytes=1)
                # From an offset in the middle.
                self.assertSameBothForms(c, t, partition=p, start=len(got) // 2)
            self.assertGreater(total, 100)
            # An empty key stays empty, a missing one stays missing.
            recs = kh.fetch_batches_all(c, t, partition=0)
            self.assertEqual(recs[0]["key"], None)
            self.assertEqual(recs[1]["key"], b"")

    def test_first_batch_holds_the_offset_and_lower_records_are_skipped(self):
        t = kh.unique("inside")
        with self.server.client() as c:
            c.ok("topic_create", topic=t)
            c.produce(t, [{"i": i} for i in range(10)])
            c.produce(t, [{"i": i} for i in range(10, 20)])
            r = c.ok("fetch", topic=t, offset=5, format="batches")
            blob = header_and_bin(r)
            self.assertEqual(batch_spans(blob)[0][:2], (0, 10))
            self.assertEqual(len(batch_spans(blob)), 2)
            self.assertEqual(r["start_offset"], 0)
            self.assertEqual(r["end_offset"], 20)
            self.assertNotIn("generation", r)
            recs = kh.decode_batches(blob, 5)
            self.assertEqual([x["offset"] for x in recs], list(range(5, 20)))
            self.assertEqual([x["value"]["i"] for x in recs], list(range(5, 20)))
            # At the end: an empty bin, and the positions.
            r = c.ok("fetch", topic=t, offset=20, format="batches")
            self.assertEqual(header_and_bin(r), b"")
            self.assertEqual(r["end_offset"], 20)
            # The records form is the default and is unchanged.
            r = c.ok("fetch", topic=t, offset=5)
            self.assertNotIn("batches", r)
            self.assertEqual(r["records"][0]["offset"], 5)
            r2 = c.ok("fetch", topic=t, offset=5, format="records")
            self.assertEqual(r2["records"], r["records"])

    def test_max_bytes_is_a_soft_limit_of_whole_batches(self):
        t = kh.unique("maxb")
        with self.server.client() as c:
            c.ok("topic_create", topic=t)
            for b in range(20):
                c.produce(t, [{"b": b, "pad": "p" * 90} for _ in range(10)])
            full = header_and_bin(c.ok("fetch", topic=t, offset=0,
                                       format="batches"))
            spans = batch_spans(full)
            self.assertEqual(len(spans), 20)
            one = spans[0][2]
            for mb in (1, one - 1, one, one + 1, 2 * one + one // 2, 7 * one):
                r = c.ok("fetch", topic=t, offset=0, max_bytes=mb,
                         format="batches")
                blob = header_and_bin(r)
                got = batch_spans(blob)
                self.assertGreaterEqual(len(got), 1, mb)
                # Whole batches, never more bytes than the limit allows
                # (at least the first batch).
                self.assertLessEqual(len(blob), max(mb, one), mb)
                self.assertEqual(blob, full[:len(blob)])
                self.assertEqual(len(kh.decode_batches(blob)), 10 * len(got))
            # Every response of a max_bytes=1 walk holds exactly one batch.
            offset, seen = 0, 0
            while offset < 200:
                r = c.ok("fetch", topic=t, offset=offset, max_bytes=1,
                         format="batches")
                got = batch_spans(header_and_bin(r))
                self.assertEqual(len(got), 1)
                self.assertEqual(got[0][0], offset)
                offset = got[0][1]
                seen += 1
            self.assertEqual(seen, 20)

    def test_long_poll_wakes_with_batches(self):
        t = kh.unique("poll")
        with self.server.client() as c, self.server.client() as w:
            c.ok("topic_create", topic=t)
            c.produce(t, [{"i": 0}])
            t0 = time.monotonic()
            rid = w.send("fetch", topic=t, offset=1, max_wait_ms=10000,
                         format="batches")
            time.sleep(0.3)
            c.produce(t, [{"i": 1}, {"i": 2}], keys=[b"a", b"b"])
            r = w.recv()
            waited = time.monotonic() - t0
            self.assertEqual(r["id"], rid)
            self.assertIs(r["ok"], True, r)
            self.assertLess(waited, 5.0)
            recs = kh.decode_batches(header_and_bin(r), 1)
            self.assertEqual([(x["offset"], x["key"], x["value"]) for x in recs],
                             [(1, b"a", {"i": 1}), (2, b"b", {"i": 2})])
            self.assertEqual(r["end_offset"], 3)
            # A long poll whose time runs out answers an empty bin.
            t0 = time.monotonic()
            r = w.ok("fetch", topic=t, offset=3, max_wait_ms=300,
                     format="batches")
            self.assertGreaterEqual(time.monotonic() - t0, 0.25)
            self.assertEqual(header_and_bin(r), b"")
            self.assertEqual(r["end_offset"], 3)

    def test_bad_format_is_a_bad_request_naming_the_field(self):
        t = kh.unique("bad")
        with self.server.client() as c:
            c.ok("topic_create", topic=t)
            c.produce(t, [1, 2, 3])
            for bad in ("json", "Batches", "", 7, [b"batches"], True):
                r = c.call("fetch", topic=t, offset=0, format=bad)
                self.assertError(r, "BAD_REQUEST")
                self.assertIn("'format'", r["message"])
            # The errors of the read path are the same in both forms.
            r = c.call("fetch", topic=t, offset=99, format="batches")
            self.assertError(r, "OFFSET_OUT_OF_RANGE")
            self.assertEqual((r["start_offset"], r["end_offset"]), (0, 3))
            r = c.call("fetch", topic=t, partition=4, offset=0,
                       format="batches")
            self.assertError(r, "UNKNOWN_PARTITION")
            c.ok("ping")

    def test_processor_output_headers_and_generation(self):
        s = self.server
        path = self.write_code(s, "fb_copy.lua", COPY)
        with s.client() as c:
            c.ok("topic_create", topic="fb_in", partitions=2)
            for p in range(2):
                # No bytes values: Lua would emit them as (non-UTF-8) str.
                vals = [v for v in values(60, seed=p)
                        if not isinstance(v, bytes)][:40]
                c.produce("fb_in", vals, partition=p,
                          keys=[("u%d" % (i % 7)).encode() for i in range(40)])
            c.ok("proc_create", name="fb_copy", file=path, inputs=["fb_in"],
                 outputs=["fb_out"])
        kh.wait_caught_up(s, "fb_copy")
        with s.client() as c:
            kh.wait_for(lambda: len(c.fetch_all("fb_out")) == 80, 30,
                        "80 outputs")
            # The output topic has one partition, fed by both inputs.
            want = c.fetch_all("fb_out")
            got = kh.fetch_batches_all(c, "fb_out")
            self.assertEqual(got, want)
            self.assertEqual(len(got), 80)
            self.assertEqual(sorted({r["headers"]["partition"] for r in got}),
                             [0, 1])
            for rec in got:
                self.assertEqual(rec["headers"]["proc"], "fb_copy")
                self.assertEqual(rec["headers"]["version"], 1)
            r = c.ok("fetch", topic="fb_out", offset=0, format="batches")
            self.assertEqual(r["generation"], 1)
            r = c.ok("fetch", topic="fb_out", offset=0, format="batches",
                     generation=1)
            self.assertEqual(r["generation"], 1)
            r = c.call("fetch", topic="fb_out", offset=0, format="batches",
                       generation=7)
            self.assertError(r, "TOPIC_SWITCHED")
            self.assertEqual(r["generation"], 1)
        # kappactl prints the provenance from the stored headers.
        out = kh.consume_all(s, "fb_out")
        self.assertEqual(len(out), 80)
        self.assertEqual(out[0]["provenance"]["proc"], "fb_copy")
        self.assertEqual(out[0]["provenance"]["topic"], "fb_in")

    def test_compacted_topic_with_gaps(self):
        s = self.new_server()
        t = "fb_table"
        kh.ctl_json(s, "topic", "create", t, "--cleanup", "compact",
                    "--segment-bytes", "16384")
        with s.client() as c:
            # Odd offsets share three keys, even ones have a key each (or
            # none): compaction leaves gaps all through the sealed segments.
            for b in range(20):
                first = b * 200
                keys = [("hot-%d" % (o % 3)).encode() if o % 2 else
                        None if o % 10 == 0 else ("c-%d" % o).encode()
                        for o in range(first, first + 200)]
                c.produce(t, [{"o": first + i} for i in range(200)],
                          keys=keys)

            def gaps():
                recs = c.fetch_all(t)
                offs = [r["offset"] for r in recs]
                return recs if len(offs) < 4000 and any(
                    b - a > 1 for a, b in zip(offs, offs[1:])) else None

            recs = kh.wait_for(gaps, 60, "compaction of %s" % t, interval=0.5)
            got = self.assertSameBothForms(c, t)
            self.assertEqual(got, recs)
            self.assertSameBothForms(c, t, max_bytes=1)
            # A fetch at an offset compacted away starts with the batch
            # that would hold it; the client skips to the next record kept.
            offs = [r["offset"] for r in recs]
            i = next(i for i in range(len(offs) - 1) if offs[i + 1] > offs[i] + 1)
            r = c.ok("fetch", topic=t, offset=offs[i] + 1, format="batches",
                     max_bytes=1)
            first = kh.decode_batches(header_and_bin(r), offs[i] + 1)[0]
            self.assertEqual(first["offset"], offs[i + 1])
        out = kh.consume_all(s, t)
        self.assertEqual([r["offset"] for r in out], offs)

    def test_the_client_check_catches_every_damaged_byte(self):
        t = kh.unique("crc")
        with self.server.client() as c:
            c.ok("topic_create", topic=t)
            c.produce(t, [{"i": i} for i in range(3)], keys=[b"x"] * 3)
            blob = header_and_bin(c.ok("fetch", topic=t, offset=0,
                                       format="batches"))
        kh.decode_batches(blob)
        for pos in range(len(blob)):
            bad = bytearray(blob)
            bad[pos] ^= 0x10
            with self.assertRaises(kh.BatchError, msg="byte %d" % pos):
                kh.decode_batches(bytes(bad))
        with self.assertRaises(kh.BatchError):
            kh.decode_batches(blob[:-1])


class DamagingProxy:
    """A loopback TCP proxy for one client at a time: requests go through
    as they are; in the responses that carry batches, the byte 10 before
    the end of the frame (inside the last batch's records) is flipped, in
    the first `damage` such responses (all of them when damage is None)."""

    def __init__(self, port, damage):
        self.target = port
        self.damage = damage
        self.damaged = 0
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4)
        self.port = self.lsock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                cs, _ = self.lsock.accept()
            except OSError:
                return
            ss = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._up, args=(cs, ss), daemon=True).start()
            threading.Thread(target=self._down, args=(ss, cs), daemon=True).start()

    @staticmethod
    def _up(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            dst.close()

    @staticmethod
    def _exact(sock, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def _down(self, src, dst):
        try:
            while True:
                head = self._exact(src, 4)
                body = self._exact(src, struct.unpack(">I", head)[0])
                resp = msgpack.unpackb(bytes(body), raw=False)
                if (resp.get("batches") and
                        (self.damage is None or self.damaged < self.damage)):
                    body[len(body) - 10] ^= 0x04
                    self.damaged += 1
                dst.sendall(bytes(head) + bytes(body))
        except (OSError, EOFError):
            pass
        finally:
            dst.close()

    def close(self):
        self.lsock.close()


class ConsumeChecksBatchesTest(kh.ServerTest):

    def setUp(self):
        self.topic = kh.unique("ctl")
        with self.server.client() as c:
            c.ok("topic_create", topic=self.topic)
            for b in range(5):
                c.produce(self.topic, [{"b": b, "i": i} for i in range(20)])

    def consume_via(self, damage):
        proxy = DamagingProxy(self.server.port, damage)
        self.addCleanup(proxy.close)
        cp = kh.run_ctl(["consume", self.topic],
                        addr="127.0.0.1:%d" % proxy.port)
        return cp, proxy

    def test_a_batch_damaged_on_the_way_is_fetched_again(self):
        cp, proxy = self.consume_via(1)
        self.assertCtlOk(cp)
        self.assertEqual(proxy.damaged, 1)
        got = kh.json_lines(cp.stdout)
        self.assertEqual([r["offset"] for r in got], list(range(100)))
        self.assertEqual(got, kh.consume_all(self.server, self.topic))
        lines = cp.stderr.splitlines()
        self.assertEqual(len(lines), 1, cp.stderr)
        self.assertIn("%s/0: batch at offset 80 fails its records' CRC; "
                      "fetching it again" % self.topic, lines[0])

    def test_a_batch_that_never_arrives_whole_stops_the_run(self):
        cp, proxy = self.consume_via(None)
        self.assertEqual(cp.returncode, 1, cp.stderr)
        got = kh.json_lines(cp.stdout)
        # Everything before the damaged batch was printed, nothing of it.
        self.assertEqual([r["offset"] for r in got], list(range(80)))
        lines = cp.stderr.splitlines()
        self.assertEqual(len(lines), 3, cp.stderr)
        self.assertIn("fails its records' CRC (3 times)", lines[-1])


if __name__ == "__main__":
    kh.main()
