"""
test_storage_faults.py - a full disk refuses writes, says so, and takes
writes again once there is space, without a restart (issue 9, "Nothing lost
on storage faults"). ENOSPC comes from the kpfault shim and, where this
machine lets the test mount one, from a real small tmpfs.
"""

import os
import shutil
import subprocess
import tempfile
import time

import kappa_harness as H


def acked_values(client, topic):
    return [r["value"] for r in client.fetch_all(topic)]


class FaultTest(H.ServerTest):
    """Servers with the kpfault shim, and scratch directories for its
    flags."""
    class_server = False

    def tmpdir(self):
        d = tempfile.mkdtemp(prefix="kappa-fault-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def fault_server(self, env):
        shim = H.shim_path("kpfault")
        if not os.path.exists(shim):
            self.fail("fault shim not built: %s" % shim)
        return H.new_fault_server(self, env=env, preload=shim)


class FullDisk(FaultTest):

    def test_enospc_refuses_writes_then_recovers_without_restart(self):
        flag = os.path.join(self.tmpdir(), "nospace")
        s = self.fault_server({"KP_FAULT_WRITE_FLAG": flag})
        with s.client() as c:
            c.ok("topic_create", topic="t", fsync="always")
            c.ok("produce", topic="t", partition=0, records=[{"value": 1}])
            open(flag, "w").close()
            r = c.call("produce", topic="t", partition=0,
                       records=[{"value": 2}])
            self.assertError(r, "STORAGE_FAILED")
            self.assertIn("space", r["message"])
            self.assertEqual(s.metric("kappa_log_no_space",
                                      {"topic": "t", "partition": "0"}), 1)
            status, _, body = s.http_get("/health")
            self.assertEqual(status, 503)
            self.assertIn("partition_full", body)
            os.unlink(flag)
            # No restart: the next write goes through.
            c.ok("produce", topic="t", partition=0, records=[{"value": 3}])
            self.assertEqual(acked_values(c, "t"), [1, 3])
            self.assertEqual(s.metric("kappa_log_no_space",
                                      {"topic": "t", "partition": "0"}), 0)
            self.assertEqual(s.metric("kappa_log_write_failed",
                                      {"topic": "t", "partition": "0"}), 0)
            status, _, _ = s.http_get("/health")
            self.assertEqual(status, 200)
        s.restart()
        with s.client() as c:
            self.assertEqual(acked_values(c, "t"), [1, 3])
        s.stop_ok(self)

    def test_real_full_tmpfs(self):
        mnt = tempfile.mkdtemp(prefix="kp-tmpfs-")
        self.addCleanup(lambda: os.rmdir(mnt))
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m",
                            "tmpfs", mnt], capture_output=True)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs here: %s"
                          % r.stderr.decode().strip())
        self.addCleanup(lambda: subprocess.run(["umount", "-l", mnt]))
        filler = os.path.join(mnt, "filler")
        with open(filler, "wb") as f:
            f.write(b"\0" * (1 << 20))
        s = H.Server()
        s.data = os.path.join(mnt, "data")
        self.addCleanup(lambda: s.cleanup(keep=self.failed()))
        s.start()
        acked = []
        refused = 0
        payload = "x" * 4000
        with s.client() as c:
            c.ok("topic_create", topic="fill", fsync="always")
            for i in range(2000):
                r = c.call("produce", topic="fill", partition=0,
                           records=[{"value": {"i": i, "p": payload}}])
                if r.get("ok"):
                    acked.append(i)
                    continue
                self.assertError(r, "STORAGE_FAILED")
                refused += 1
                if refused >= 3:
                    break
            self.assertGreater(refused, 0, "the disk never filled")
            self.assertGreater(len(acked), 10)
            os.unlink(filler)
            deadline = time.time() + 10
            while True:
                r = c.call("produce", topic="fill", partition=0,
                           records=[{"value": {"i": 10000, "p": "ok"}}])
                if r.get("ok") or time.time() > deadline:
                    break
                time.sleep(0.1)
            self.assertIs(r.get("ok"), True, repr(r))
            acked.append(10000)
            got = [v["i"] for v in acked_values(c, "fill")]
            self.assertEqual(got, acked)
        s.stop_ok(self)


class ProcessorOnFullDisk(FaultTest):
    """A processor whose output cannot be written pauses, says why, keeps
    its outputs, checkpoints nothing past them, and resumes by itself."""

    N = 3000

    def start(self, env):
        s = self.fault_server(env)
        with s.client() as c:
            c.ok("topic_create", topic="in", partitions=3)
            c.ok("topic_create", topic="out", partitions=2)
            for p in range(3):
                c.produce("in", [{"user": "u%d" % (i % 7), "i": i}
                                 for i in range(p, self.N, 3)], partition=p)
        sent = {}
        with s.client() as c:
            for p in range(3):
                for r in c.fetch_all("in", partition=p):
                    sent[(p, r["offset"])] = r["value"]
        self.assertEqual(len(sent), self.N)
        return s, sent

    def outputs(self, s):
        with s.client() as c:
            return c.fetch_all("out", 0) + c.fetch_all("out", 1)

    def wait_blocked(self, s):
        st = H.wait_status(s, "p", lambda st: st["state"] == "paused",
                           10 * H.SLOW, "the processor to pause")
        self.assertIn("cannot take writes", st["reason"])
        self.assertEqual(s.metric("kappa_processor_output_blocked",
                                  {"processor": "p", "version": "1"}), 1)
        status, _, body = s.http_get("/health")
        self.assertEqual(status, 503)
        self.assertIn("processor_paused", body)
        return st

    def test_enospc_pauses_and_resumes_with_every_output(self):
        flag = os.path.join(self.tmpdir(), "nospace")
        s, sent = self.start({"KP_FAULT_WRITE_FLAG": flag})
        open(flag, "w").close()
        code = H.fixture("count_emit_offset.lua")
        with s.client() as c:
            c.ok("proc_create", name="p", file=code, inputs=["in"],
                 outputs=["out"])
        self.wait_blocked(s)
        time.sleep(0.5)
        st = H.proc_status(s, "p")
        self.assertEqual(st["state"], "paused")
        os.unlink(flag)
        H.wait_lag0(s, "p", timeout=30 * H.SLOW)
        self.assertEqual(s.metric("kappa_processor_output_blocked",
                                  {"processor": "p", "version": "1"}), 0)
        outs = H.wait_for(lambda: (lambda o: o if len(o) >= self.N else None)(
            self.outputs(s)), 20 * H.SLOW, "an output per input")
        H.assert_one_per_input(self, outs, sent, "p", "in")
        # And after a crash the same holds: the checkpoint never passed them.
        s.kill()
        s.start()
        H.wait_lag0(s, "p", timeout=30 * H.SLOW)
        time.sleep(0.3)
        H.assert_one_per_input(self, self.outputs(s), sent, "p", "in")
        s.stop_ok(self)

    def test_failed_fsync_pauses_until_restart_and_loses_nothing(self):
        flag = os.path.join(self.tmpdir(), "failsync")
        s, sent = self.start({"KP_FAULT_SYNC_FLAG": flag})
        open(flag, "w").close()
        code = H.fixture("count_emit_offset.lua")
        with s.client() as c:
            c.ok("proc_create", name="p", file=code, inputs=["in"],
                 outputs=["out"])
        self.wait_blocked(s)
        os.unlink(flag)
        # The partition stays stopped (the kernel may have dropped what it
        # could not write); a restart recovers it, and the processor
        # resumes from a checkpoint that never passed an unwritten output.
        s.stop_ok(self)
        s.start()
        H.wait_lag0(s, "p", timeout=30 * H.SLOW)
        outs = H.wait_for(lambda: (lambda o: o if len(o) >= self.N else None)(
            self.outputs(s)), 20 * H.SLOW, "an output per input")
        H.assert_one_per_input(self, outs, sent, "p", "in")
        s.stop_ok(self)


if __name__ == "__main__":
    H.main()
