#!/usr/bin/env python3
"""
test_demo.py - the demo behind `make run` (examples/demo.sh) on a terminal
(a pty, as a user runs it): it starts kappad with its three processors and
their data, answers the commands it suggests, and Ctrl-C stops it cleanly
with exit status 0 and its processors unharmed (issue 14). The demo runs
as its own foreground job, so the Ctrl-C that the terminal sends to the
foreground group reaches neither `make` nor kappad's worker processes.
"""

import os
import pty
import select
import subprocess
import time

import kappa_harness as kh


def read_until(fd, out, want, deadline):
    """Appends what fd gives to out until want appears, the pty closes or
    the deadline passes; returns True when want appeared."""
    while want not in out and time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if not r:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:
            return want in out
        if not data:
            break
        out.extend(data)
    return want in out


class DemoTest(kh.ServerTest):
    class_server = False

    def test_ctrl_c_stops_the_demo_cleanly(self):
        s = self.new_server(start=False)
        data = os.path.join(s.root, "demo-data")
        port, http = kh.free_port(), kh.free_port()
        addr = "127.0.0.1:%d" % port
        build = os.path.dirname(kh.KAPPAD)
        env = dict(os.environ, KAPPAD=kh.KAPPAD, KAPPACTL=kh.KAPPACTL,
                   TOPK=os.path.join(build, "examples", "topk.so"))
        env.pop("KP_DEMO_JOB", None)
        pid, fd = pty.fork()
        if pid == 0:
            os.chdir(kh.REPO)
            os.execvpe("examples/demo.sh",
                       ["examples/demo.sh", data, addr,
                        "127.0.0.1:%d" % http], env)
        out = bytearray()
        try:
            self.assertTrue(
                read_until(fd, out, b"Press Ctrl-C",
                           time.monotonic() + 60 * kh.SLOW),
                out.decode(errors="replace")[-2000:])
            # What the demo suggests answers.
            r = kh.run_ctl(["view", "get", "orders", "o-1003"], addr=addr)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotEqual(r.stdout.strip(), "null")
            kh.wait_for(lambda: _all_caught_up(addr), 30 * kh.SLOW,
                        "the demo's processors at lag 0")
            os.write(fd, b"\x03")           # Ctrl-C, as the terminal sends it
            read_until(fd, out, b"stopped cleanly",
                       time.monotonic() + 30 * kh.SLOW)
            _, status = os.waitpid(pid, 0)
            pid = 0
        finally:
            if pid:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            os.close(fd)
        text = out.decode(errors="replace")
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, text[-2000:])
        self.assertIn("demo: kappad stopped cleanly", text)
        self.assertNotIn("worker process died", text)
        self.assertNotIn("Interrupt", text)
        # Started again on its data, every processor runs on.
        p = kh.spawn([kh.KAPPAD, "--data", data, "--listen", addr,
                      "--http", "off", "--config",
                      os.path.join(kh.REPO, "examples", "kappad.conf")],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            kh.wait_for(lambda: kh.run_ctl(["ping"], addr=addr).returncode
                        == 0, 20 * kh.SLOW, "kappad restarted")
            r = kh.run_ctl(["proc", "list"], addr=addr)
            procs = kh.json_lines(r.stdout)
            self.assertEqual(sorted(p["name"] for p in procs),
                             ["orders", "sessions", "topk"])
            for st in procs:
                self.assertEqual(st["state"], "running", st)
        finally:
            p.terminate()
            p.wait(20)


def _all_caught_up(addr):
    r = kh.run_ctl(["proc", "list"], addr=addr)
    if r.returncode != 0:
        return False
    procs = kh.json_lines(r.stdout)
    return len(procs) == 3 and all(
        st.get("state") == "running" and
        all(i.get("lag") == 0 for i in st.get("inputs", []))
        for st in procs)


if __name__ == "__main__":
    kh.main()
