"""
test_notify.py - kappad speaks systemd's notify protocol (kappad.service is
Type=notify): with $NOTIFY_SOCKET naming a datagram socket, kappad itself
(not a worker) sends STATUS= while it opens its data, READY=1 once the
protocol and HTTP listeners accept (a ping and /health answer at that
moment), and STOPPING=1 when SIGTERM begins the graceful stop; it then
exits 0. The socket here is the test's own AF_UNIX datagram socket, as
systemd's would be.
"""

import os
import signal
import socket
import struct
import subprocess
import tempfile
import time
import unittest

import kappa_harness as kh


class Notify(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="kappa-notify-")
        self.sock_path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.sock_path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.port, self.http_port = kh.free_port(), kh.free_port()
        self.log_path = os.path.join(self.dir, "kappad.log")
        self.proc = None

    def tearDown(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.sock.close()
        failed = any(t is self for t, _ in
                     self._outcome.result.errors + self._outcome.result.failures)
        if failed:
            print("kappa test: kept %s" % self.dir)
        else:
            import shutil
            shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-3000:]

    def start(self, *extra):
        env = dict(os.environ, NOTIFY_SOCKET=self.sock_path)
        with open(self.log_path, "ab") as log:
            self.proc = kh.spawn(
                [kh.KAPPAD, "--data", os.path.join(self.dir, "data"),
                 "--listen", "127.0.0.1:%d" % self.port,
                 "--http", "127.0.0.1:%d" % self.http_port] + list(extra),
                env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT)

    def receive(self, timeout):
        """One message: (sender pid, {key: value}), or None on timeout."""
        self.sock.settimeout(timeout)
        try:
            data, anc, _, _ = self.sock.recvmsg(
                4096, socket.CMSG_SPACE(struct.calcsize("3i")))
        except socket.timeout:
            return None
        pid = None
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", cdata[:12])[0]
        fields = dict(line.split("=", 1)
                      for line in data.decode().split("\n") if line)
        return pid, fields

    def until(self, key, timeout):
        """Messages up to and including the first with key."""
        got = []
        deadline = time.monotonic() + timeout * kh.SLOW
        while time.monotonic() < deadline:
            msg = self.receive(max(0.05, deadline - time.monotonic()))
            if msg is None:
                break
            got.append(msg)
            if key in msg[1]:
                return got
        self.fail("no %s within %.0f s; got %r\n%s"
                  % (key, timeout * kh.SLOW, got, self.log()))

    def assert_serving(self):
        with kh.Client(self.port, timeout=5.0) as c:
            self.assertIs(c.call("ping").get("ok"), True)
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port,
                                          timeout=5 * kh.SLOW)
        try:
            conn.request("GET", "/health")
            self.assertEqual(conn.getresponse().status, 200)
        finally:
            conn.close()

    def test_ready_after_listening_and_stopping_on_sigterm(self):
        self.start()
        before = self.until("READY", 20)
        # Serving the moment READY=1 arrives: no retry loop here.
        self.assert_serving()
        ready = before[-1]
        self.assertEqual(ready[1]["READY"], "1")
        self.assertIn("127.0.0.1:%d" % self.port, ready[1].get("STATUS", ""))
        self.assertTrue(all(pid == self.proc.pid for pid, _ in before),
                        before)
        self.assertIn("STATUS", before[0][1])        # opening, before ready
        self.proc.send_signal(signal.SIGTERM)
        after = self.until("STOPPING", 20)
        self.assertEqual(after[-1][1]["STOPPING"], "1")
        self.assertTrue(all("READY" not in f for _, f in after), after)
        self.assertEqual(self.proc.wait(30 * kh.SLOW), 0, self.log())

    def test_ready_with_http_off(self):
        self.start("--http", "off")
        ready = self.until("READY", 20)[-1]
        self.assertIn("http off", ready[1].get("STATUS", ""))
        with kh.Client(self.port, timeout=5.0) as c:
            self.assertIs(c.call("ping").get("ok"), True)
        self.proc.send_signal(signal.SIGTERM)
        self.until("STOPPING", 20)
        self.assertEqual(self.proc.wait(30 * kh.SLOW), 0, self.log())

    def test_no_ready_when_a_listener_fails(self):
        # The HTTP port is taken: kappad must not claim to be ready.
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", self.http_port))
        blocker.listen(1)
        try:
            self.start()
            self.assertNotEqual(self.proc.wait(30 * kh.SLOW), 0)
        finally:
            blocker.close()
        got = []
        while True:
            msg = self.receive(0.2)
            if msg is None:
                break
            got.append(msg[1])
        self.assertFalse(any("READY" in f for f in got), got)
        self.assertTrue(any("cannot start" in f.get("STATUS", "")
                            for f in got), got)


if __name__ == "__main__":
    kh.main()
