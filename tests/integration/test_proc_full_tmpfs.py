"""
test_proc_full_tmpfs.py - a processor whose outputs fill a real disk (issue
9, "Nothing lost on storage faults"; docs/PROCESSORS.md, "When an output
cannot be written"): the data directory is a small tmpfs, the processor's
outputs run it out of space (ENOSPC from the kernel, no shim), and:

- the processor pauses, saying why, in proc status, /health and /metrics,
  and makes no progress while the disk is full;
- once space is freed it resumes by itself, in the same kappad process;
- every input then has exactly one output (by provenance), the view holds
  the expected counts, and the same holds after a SIGKILL and restart.

Needs to mount a tmpfs (CI runs as root); skipped where that is refused.
"""

import collections
import os
import subprocess
import tempfile
import time

import kappa_harness as H

MIB = 1 << 20
N = 3000            # inputs, 3 partitions
PAD = 1000          # bytes of padding per input, copied into its output


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class ProcessorFillsTmpfs(H.ServerTest):
    class_server = False

    def mount_tmpfs(self, size_mib):
        mnt = tempfile.mkdtemp(prefix="kp-tmpfs-")
        self.addCleanup(lambda: os.rmdir(mnt))
        r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                            "size=%dm" % size_mib, "tmpfs", mnt],
                           capture_output=True)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs here: %s"
                          % r.stderr.decode().strip())
        self.addCleanup(lambda: subprocess.run(["umount", "-l", mnt]))
        return mnt

    def fill(self, mnt, leave):
        """A filler file that leaves about `leave` bytes free."""
        path = os.path.join(mnt, "filler")
        chunk = b"\0" * MIB
        with open(path, "wb") as f:
            while free_bytes(mnt) > leave + MIB:
                f.write(chunk)
                f.flush()
            rest = free_bytes(mnt) - leave
            if rest > 0:
                f.write(b"\0" * rest)
        return path

    def outputs(self, s):
        with s.client() as c:
            return c.fetch_all("out", 0) + c.fetch_all("out", 1)

    def test_outputs_fill_the_disk_then_resume_without_restart(self):
        mnt = self.mount_tmpfs(24)
        s = H.Server(name=type(self).__name__)
        s.data = os.path.join(mnt, "data")
        self.addCleanup(lambda: s.cleanup(keep=self.failed()))
        s.start()
        pad = "p" * PAD
        with s.client() as c:
            c.ok("topic_create", topic="in", partitions=3, fsync="always")
            c.ok("topic_create", topic="out", partitions=2, fsync="always")
            # Created (its view store reserved) while there is space, held
            # by the user until the disk is nearly full.
            c.ok("proc_create", name="p", file=H.fixture("count_emit_pad.lua"),
                 inputs=["in"], outputs=["out"])
            c.ok("proc_pause", name="p")
            for p in range(3):
                vals = [{"user": "u%d" % (i % 7), "i": i, "pad": pad}
                        for i in range(p, N, 3)]
                for k in range(0, len(vals), 200):
                    c.produce("in", vals[k:k + 200], partition=p)
            sent = {(p, r["offset"]): r["value"]
                    for p in range(3) for r in c.fetch_all("in", p)}
        self.assertEqual(len(sent), N)
        # Room for about a quarter of the outputs.
        filler = self.fill(mnt, N * PAD // 4)
        with s.client() as c:
            c.ok("proc_resume", name="p")
        st = H.wait_status(s, "p", lambda st: st["state"] == "paused",
                           20, "the processor to pause on the full disk")
        self.assertIn("cannot take writes", st["reason"])
        self.assertTrue(st["reason"].endswith(
            "; resumes by itself once it can"), st["reason"])
        self.assertIn("No space left on device", s.log_tail(200))
        labels = {"processor": "p", "version": "1"}
        self.assertEqual(s.metric("kappa_processor_output_blocked", labels), 1)
        self.assertGreater(s.metric("kappa_processor_outputs_pending",
                                    labels), 0)
        status, _, body = s.http_get("/health")
        self.assertEqual(status, 503)
        self.assertIn("processor_paused", body)
        # No progress while the disk is full: outputs and status hold.
        before = len(self.outputs(s))
        self.assertGreater(before, 0)
        self.assertLess(before, N)
        time.sleep(0.6)
        self.assertEqual(len(self.outputs(s)), before)
        st = H.proc_status(s, "p")
        self.assertEqual(st["state"], "paused")
        self.assertGreater(st["lag"], 0)

        pid = s.proc.pid
        os.unlink(filler)
        H.wait_lag0(s, "p", timeout=30)
        self.assertEqual((s.proc.pid, s.starts), (pid, 1),
                         "kappad was restarted")
        self.assertIsNone(H.proc_status(s, "p")["reason"])
        self.assertEqual(s.metric("kappa_processor_output_blocked", labels), 0)
        self.assertEqual(s.http_get("/health")[0], 200)
        outs = H.wait_for(lambda: (lambda o: o if len(o) >= N else None)(
            self.outputs(s)), 20, "an output per input")
        by_input = H.assert_one_per_input(self, outs, sent, "p", "in",
                                          version=1)
        for k, r in by_input.items():
            self.assertEqual(r["value"]["i"], sent[k]["i"])
        want = dict(collections.Counter(v["user"] for v in sent.values()))
        self.assertEqual(H.view_scan(s, "p"), want)
        # Every count of every user was emitted once: 1..n.
        per_user = collections.defaultdict(list)
        for r in outs:
            per_user[r["value"]["user"]].append(r["value"]["n"])
        self.assertEqual({u: sorted(ns) for u, ns in per_user.items()},
                         {u: list(range(1, n + 1)) for u, n in want.items()})

        # The checkpoint never passed an unwritten output: after a crash
        # the same, and new inputs still get theirs.
        s.kill()
        s.start()
        with s.client() as c:
            c.produce("in", [{"user": "u0", "i": N, "pad": "x"}], partition=0)
            sent[(0, N // 3)] = {"user": "u0", "i": N, "pad": "x"}
        H.wait_lag0(s, "p")
        outs = H.wait_for(lambda: (lambda o: o if len(o) >= N + 1 else None)(
            self.outputs(s)), 20, "an output per input after the restart")
        H.assert_one_per_input(self, outs, sent, "p", "in", version=1,
                               msg="after SIGKILL:")
        want["u0"] += 1
        self.assertEqual(H.view_scan(s, "p"), want)
        s.stop_ok(self)


if __name__ == "__main__":
    H.main()
