#!/usr/bin/env python3
"""
test_worker_faults.py - kappad does not trust its processors' worker
processes, and every request that waits on one is answered whatever the
worker does.

- A worker that sends kappad a forged or corrupt result (an emit or dead
  letter whose lengths run past its buffer, a value that is not msgpack, a
  position outside its batch, the answer to another job) is killed; its
  processor fails with a reason that says so; kappad stays up and the
  processors beside it go on (the hostile plugin is
  tests/plugins/forge_result.c).
- `proc verify` is answered when the live version's worker dies in the
  middle of it, when the verify's own replay worker dies, and when the
  verify waited for the live version and finds it stopped; a later verify
  works (nothing stays "busy"), and `proc resume` after it is safe.
- A worker started by a kappad that is pid 1 (a container's init) runs.
"""

import os
import shutil
import signal
import subprocess
import threading
import time
import unittest

import kappa_harness as kh

RECORDS = 6000        # a slow_count replay of these takes about 0.2 s (x SLOW)


def descendants(pid):
    """Pids of pid's children (not zombies), from /proc."""
    out = set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(d))
    return out


class Answer(threading.Thread):
    """Sends one request on a connection of its own and keeps the answer."""

    def __init__(self, server, op, **fields):
        super().__init__(daemon=True)
        self.server, self.op, self.fields = server, op, fields
        self.resp = None

    def run(self):
        with self.server.client(timeout=120) as c:
            self.resp = c.call(self.op, **self.fields)

    def result(self, timeout):
        self.join(timeout)
        if self.is_alive():
            raise AssertionError("%s was never answered" % self.op)
        return self.resp


class WorkerFaultsTest(kh.ServerTest):
    class_server = False

    def lua_server(self):
        # Interpreted Lua: slow_count's loop stays slow.
        return kh.new_fault_server(self, env={"KAPPA_LUA_JIT": "off"})

    def assertAlive(self, s, what):
        self.assertTrue(s.alive(), "kappad died %s\n%s" % (what, s.log_tail(30)))

    def slow_processor(self, s, name="slow", records=RECORDS):
        with s.client() as c:
            c.ok("topic_create", topic=name + "-in", partitions=2)
            c.ok("proc_create", name=name, file=kh.fixture("slow_count.lua"),
                 inputs=[name + "-in"])
            for i in range(0, records, 500):
                c.produce(name + "-in", [{"i": j} for j in range(i, i + 500)],
                          partition=(i // 500) % 2)
        return kh.wait_proc(s, name, lambda st: st.get("lag") == 0 and
                            st.get("records_processed", 0) >= records,
                            timeout=60 * kh.SLOW, what="slow caught up")

    def verify_running(self, s, live_pid):
        """Waits until the verify's scratch worker runs; returns its pid."""
        def scratch():
            others = descendants(s.proc.pid) - {live_pid}
            return min(others) if others else None
        return kh.wait_for(scratch, 10 * kh.SLOW, "the verify's worker")

    # -- forged results
    def test_forged_results_kill_the_worker_not_kappad(self):
        s = self.lua_server()
        kinds = ["emit-len", "dlq-len", "offset", "kind", "value"]
        with s.client() as c:
            c.ok("topic_create", topic="calm-in")
            c.ok("proc_create", name="calm", file=kh.fixture("iso_count.lua"),
                 inputs=["calm-in"])
            for k in kinds:
                t = "f-" + k
                c.ok("topic_create", topic=t)
                c.ok("proc_create", name=t,
                     file=os.path.abspath(kh.test_plugin("forge_result")),
                     inputs=[t])
                c.produce(t, [1, 2, 3])
        for k in kinds:
            kh.wait_proc(s, "f-" + k, lambda st: st.get("records_processed") == 3,
                         what="f-%s counts its first records" % k)
        with s.client() as c:
            for k in kinds:
                c.produce("f-" + k, ["forge-" + k])
        for k in kinds:
            st = kh.wait_proc(s, "f-" + k,
                              lambda st: st.get("state") == "failed",
                              timeout=10 * kh.SLOW,
                              what="f-%s fails" % k)
            self.assertIn("malformed result", st.get("reason") or "",
                          "f-%s: %r" % (k, st))
            self.assertAlive(s, "after a forged result (%s)" % k)
        # Nothing forged reached a topic, and the calm processor goes on.
        with s.client() as c:
            topics = [t["name"] for t in c.ok("topic_list")["topics"]]
            self.assertNotIn("forged-out", topics)
            c.produce("calm-in", list(range(100)))
        kh.wait_proc(s, "calm", lambda st: st.get("records_processed") == 100,
                     what="calm goes on")
        with s.client() as c:
            c.ok("ping")

    # -- verify and dying workers
    def test_verify_answered_when_the_live_worker_dies(self):
        s = self.lua_server()
        st = self.slow_processor(s)
        live_pid = st["worker"]["pid"]
        verify = Answer(s, "proc_verify", name="slow")
        verify.start()
        self.verify_running(s, live_pid)
        os.kill(live_pid, signal.SIGKILL)
        resp = verify.result(60 * kh.SLOW)
        self.assertAlive(s, "after the live worker died during a verify")
        if resp.get("ok"):
            # Its view could not be held once its worker was gone.
            self.assertFalse(resp["view_compared"], resp)
        else:
            self.assertIn(resp["error"], ("BAD_STATE", "INTERNAL"), resp)
        st = kh.wait_proc(s, "slow", lambda st: st.get("state") == "failed",
                          what="slow fails with its worker")
        self.assertIn("signal 9", st.get("reason") or "")
        # Back to work, and verify works again.
        with s.client() as c:
            c.ok("proc_resume", name="slow")
        kh.wait_proc(s, "slow", lambda st: st.get("state") == "running",
                     what="slow runs again")
        with s.client(timeout=120) as c:
            r = c.ok("proc_verify", name="slow")
            self.assertTrue(r["identical"], r)

    def test_verify_answered_when_its_replay_worker_dies(self):
        s = self.lua_server()
        st = self.slow_processor(s)
        live_pid = st["worker"]["pid"]
        verify = Answer(s, "proc_verify", name="slow")
        verify.start()
        scratch = self.verify_running(s, live_pid)
        os.kill(scratch, signal.SIGKILL)
        resp = verify.result(30 * kh.SLOW)
        self.assertAlive(s, "after the verify's worker died")
        self.assertFalse(resp.get("ok"), resp)
        self.assertEqual(resp["error"], "BAD_STATE", resp)
        self.assertIn("replay", resp["message"])
        self.assertIn("signal 9", resp["message"])
        # The live version was not touched, and the next verify runs.
        st = kh.proc_status(s, "slow")
        self.assertEqual(st["state"], "running", st)
        self.assertEqual(st["worker"]["pid"], live_pid)
        with s.client(timeout=120) as c:
            r = c.ok("proc_verify", name="slow")
            self.assertTrue(r["identical"], r)
            self.assertTrue(r["view_compared"], r)

    def test_waiting_verify_finds_the_live_version_stopped(self):
        s = self.lua_server()
        st = self.slow_processor(s, records=2000)
        live_pid = st["worker"]["pid"]
        # Keep the live version busy so that the verify waits for it.
        stop = threading.Event()

        def feed():
            with s.client() as c:
                while not stop.is_set():
                    c.produce("slow-in", [{"i": i} for i in range(500)])
                    time.sleep(0.01)
        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        self.addCleanup(stop.set)
        time.sleep(0.3)
        verify = Answer(s, "proc_verify", name="slow")
        verify.start()
        time.sleep(0.05)
        os.kill(live_pid, signal.SIGKILL)
        resp = verify.result(60 * kh.SLOW)
        stop.set()
        feeder.join(10)
        self.assertAlive(s, "after the live worker died with a verify waiting")
        # Either it waited and found the version stopped, or it had started
        # and could not compare the view: answered, either way.
        if not resp.get("ok"):
            self.assertEqual(resp["error"], "BAD_STATE", resp)
        else:
            self.assertFalse(resp["view_compared"], resp)
        with s.client() as c:
            c.ok("proc_resume", name="slow")
        kh.wait_proc(s, "slow", lambda st: st.get("state") == "running" and
                     st.get("lag") == 0, timeout=120 * kh.SLOW,
                     what="slow runs again and catches up")
        self.assertAlive(s, "after proc resume")
        with s.client(timeout=120) as c:
            r = c.ok("proc_verify", name="slow")
            self.assertTrue(r["identical"], r)


@unittest.skipUnless(shutil.which("unshare") and os.geteuid() == 0,
                     "needs root and unshare(1) to run kappad as pid 1")
class Pid1Test(kh.ServerTest):
    """kappad as a container's init: its workers must not take their
    parent being pid 1 for kappad being gone."""
    class_server = False

    def test_workers_run_under_a_kappad_that_is_pid_1(self):
        s = kh.new_fault_server(self, start=False)
        s.wrap = ["unshare", "--pid", "--fork", "--kill-child"]
        s.start()
        with s.client() as c:
            c.ok("topic_create", topic="in")
            c.ok("proc_create", name="n", file=kh.fixture("iso_count.lua"),
                 inputs=["in"])
            c.produce("in", list(range(50)))
        kh.wait_proc(s, "n", lambda st: st.get("records_processed") == 50,
                     what="a processor under a kappad that is pid 1")


if __name__ == "__main__":
    kh.main()
