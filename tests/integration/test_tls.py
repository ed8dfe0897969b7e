#!/usr/bin/env python3
"""
test_tls.py - TLS on the protocol and HTTP ports (issue 13): with tls_cert
and tls_key both ports speak TLS only (openssl s_client, kappactl
--tls-ca and Python's HTTPS client through a CA the test makes); with
tls_client_ca a client must present a certificate from that CA; a
listener other machines can reach (either port) starts only with tokens
and TLS; bad TLS settings stop kappad with a clear message.
"""

import os
import socket
import struct
import subprocess

import msgpack

import kappa_harness as kh

ADMIN = "adm-tls-0123456789abcdef"


def frame(obj):
    body = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


class TlsTest(kh.ServerTest):
    class_server = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        import tempfile
        cls.certdir = tempfile.mkdtemp(prefix="kappa-certs-")
        cls.certs = kh.make_certs(cls.certdir)

    def tls_server(self, config=None, client_cert=False, tokens=None):
        tls = dict(self.certs, require_client_cert=client_cert)
        return self.new_server(config, tls=tls, tokens=tokens)

    def test_round_trip_and_plain_refused(self):
        s = self.tls_server()
        with s.client() as c:
            c.ok("topic_create", topic="t", partitions=1)
            c.produce("t", [{"i": i} for i in range(100)])
            got = c.fetch_all("t")
        self.assertEqual([r["value"]["i"] for r in got], list(range(100)))
        # kappactl through the CA.
        r = s.ctl("produce", "t", input='{"x":1}\n{"x":2}\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(kh.json_lines(r.stdout), [{"acked": 2}])
        r = s.ctl("consume", "t", "--from", "100")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([v["value"] for v in kh.json_lines(r.stdout)],
                         [{"x": 1}, {"x": 2}])
        # A plain client gets no answer: the server speaks TLS only.
        data = plain_exchange(s.port, frame({"id": 1, "op": "ping"}))
        self.assertNotIn(b"version", data)
        r = kh.run_ctl(["ping"], addr=s.addr, timeout=20)
        self.assertEqual(r.returncode, 1, r)
        with s.client() as c:
            c.ok("ping")

    def test_openssl_s_client(self):
        s = self.tls_server()
        out = s_client(["-connect", s.addr, "-CAfile", self.certs["ca"],
                        "-verify_return_error", "-servername", "localhost"])
        self.assertIn(b"Verify return code: 0 (ok)", out)
        # The ping's answer came back through the TLS session.
        self.assertIn(b"version", out)

    def test_kappactl_with_the_wrong_ca_refuses(self):
        s = self.tls_server()
        import tempfile
        other = kh.make_certs(tempfile.mkdtemp(prefix="kappa-other-"))
        r = kh.run_ctl(["--tls-ca", other["ca"], "ping"], addr=s.addr,
                       timeout=20)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("TLS handshake", r.stderr)
        self.assertIn("certificate", r.stderr)

    def test_client_certificates(self):
        s = self.tls_server(client_cert=True)
        with s.client() as c:
            c.ok("ping")
        r = s.ctl("ping")
        self.assertEqual(r.returncode, 0, r.stderr)
        # Without a certificate: refused during the handshake.
        r = kh.run_ctl(["--tls-ca", self.certs["ca"], "ping"], addr=s.addr,
                       timeout=20)
        self.assertEqual(r.returncode, 1, r)
        with self.assertRaises(OSError):
            with kh.Client(s.port, tls=s.tls_context(client_cert=False),
                           timeout=5) as c:
                c.call("ping")
        out = s_client(["-connect", s.addr, "-CAfile", self.certs["ca"],
                        "-cert", self.certs["client_cert"],
                        "-key", self.certs["client_key"]])
        self.assertIn(b"version", out)
        out = s_client(["-connect", s.addr, "-CAfile", self.certs["ca"]],
                       wait=2)
        self.assertNotIn(b"version", out)

    def test_exposed_listener_with_tokens_and_tls(self):
        port = kh.free_port()
        s = self.tls_server({"listen": "0.0.0.0:%d" % port},
                            tokens={ADMIN: "admin"})
        # (The harness's --listen flag wins over the config: start by hand.)
        s.stop()
        p = kh.spawn([kh.KAPPAD, "--data", s.data, "--config", s.config_path,
                      "--http", "off", "--listen", "0.0.0.0:%d" % port],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            kh.wait_for(lambda: _answers(port, s), 10 * kh.SLOW,
                        "kappad on 0.0.0.0 with tokens and TLS")
        finally:
            p.terminate()
            p.wait(20)
        # Tokens without TLS are not enough.
        with open(s.config_path) as f:
            lines = [line for line in f if not line.startswith("tls_")]
        with open(s.config_path, "w") as f:
            f.writelines(lines)
        r = subprocess.run([kh.KAPPAD, "--data", s.data, "--config",
                            s.config_path, "--http", "off", "--listen",
                            "0.0.0.0:%d" % port], capture_output=True,
                           text=True, timeout=20 * kh.SLOW)
        self.assertEqual(r.returncode, 1)
        self.assertIn("needs auth_tokens_file and TLS", r.stdout + r.stderr)

    def test_http_port_speaks_tls_only(self):
        reader = "rd-tls-0123456789abcdef"
        s = self.tls_server(tokens={ADMIN: "admin", reader: "read"})
        with s.client() as c:
            c.ok("topic_create", topic="t", partitions=2)
        # The harness's HTTP client speaks HTTPS, verifying the server.
        status, _, body = s.http_get("/metrics")
        self.assertEqual(status, 200)
        self.assertIn('kappa_log_end_offset{topic="t",partition="1"}',
                      body)
        status, _, _ = s.http_get("/health")
        self.assertEqual(status, 200)
        import http.client
        conn = http.client.HTTPSConnection("127.0.0.1", s.http_port,
                                           timeout=10 * kh.SLOW,
                                           context=s.tls_context())
        try:
            conn.request("GET", "/api/state",
                         headers={"Authorization": "Bearer " + reader})
            r = conn.getresponse()
            self.assertEqual(r.status, 200)
            self.assertIn(b'"t"', r.read())
        finally:
            conn.close()
        status, headers, _ = s.http_get("/api/state")
        self.assertEqual(status, 401)
        self.assertEqual(headers.get("WWW-Authenticate"), "Bearer")
        # openssl s_client: verified, and the answer came through TLS.
        out = s_client(["-connect", "127.0.0.1:%d" % s.http_port,
                        "-CAfile", self.certs["ca"], "-verify_return_error"],
                       send=b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
                       want=b"HTTP/1.1 200 OK")
        self.assertIn(b"Verify return code: 0 (ok)", out)
        self.assertIn(b"HTTP/1.1 200 OK", out)
        # Plain HTTP gets no HTTP answer, and the server stays up.
        data = plain_exchange(s.http_port,
                              b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertNotIn(b"HTTP/1.1", data)
        self.assertGreater(s.metric("kappa_connections_accepted_total"), 0)

    def test_http_client_certificates(self):
        s = self.tls_server(client_cert=True)
        self.assertEqual(s.http_get("/health")[0], 200)
        import http.client
        import ssl
        conn = http.client.HTTPSConnection(
            "127.0.0.1", s.http_port, timeout=10 * kh.SLOW,
            context=s.tls_context(client_cert=False))
        with self.assertRaises((ssl.SSLError, OSError)):
            try:
                conn.request("GET", "/health")
                conn.getresponse().read()
            finally:
                conn.close()

    def test_exposed_http_needs_tokens_and_tls(self):
        s = self.new_server(start=False)
        port = kh.free_port()
        r = subprocess.run([kh.KAPPAD, "--data", s.data, "--listen", s.addr,
                            "--http", "0.0.0.0:%d" % port],
                           capture_output=True, text=True,
                           timeout=20 * kh.SLOW)
        self.assertEqual(r.returncode, 1, (r.stdout, r.stderr))
        self.assertIn("0.0.0.0 is reachable from other machines: serving "
                      "it needs auth_tokens_file and TLS",
                      r.stdout + r.stderr)
        # With both, it serves HTTPS there.
        s = self.tls_server(tokens={ADMIN: "admin"})
        s.stop()
        p = kh.spawn([kh.KAPPAD, "--data", s.data, "--config", s.config_path,
                      "--listen", s.addr, "--http", "0.0.0.0:%d" % port],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            s.http_port = port
            kh.wait_for(lambda: _http_ok(s), 10 * kh.SLOW,
                        "HTTPS on 0.0.0.0 with tokens and TLS")
        finally:
            p.terminate()
            p.wait(20)

    def test_bad_tls_settings_stop_kappad(self):
        s = self.new_server(start=False)
        cases = [
            ({"tls_cert": self.certs["server_cert"]},
             "TLS needs both tls_cert and tls_key"),
            ({"tls_cert": self.certs["server_cert"],
              "tls_key": self.certs["client_key"]}, "key values mismatch"),
            ({"tls_cert": "/nonexistent.pem",
              "tls_key": self.certs["server_key"]}, "tls_cert /nonexistent.pem"),
            ({"tls_client_ca": self.certs["ca"]},
             "tls_client_ca needs tls_cert and tls_key"),
        ]
        for cfg, want in cases:
            path = os.path.join(s.root, "bad.conf")
            with open(path, "w") as f:
                for k, v in cfg.items():
                    f.write("%s = %s\n" % (k, v))
            r = subprocess.run([kh.KAPPAD, "--data", s.data, "--listen",
                                s.addr, "--http", "off", "--config", path],
                               capture_output=True, text=True,
                               timeout=20 * kh.SLOW)
            self.assertEqual(r.returncode, 1, (cfg, r.stdout, r.stderr))
            self.assertIn(want, r.stdout + r.stderr, cfg)


def plain_exchange(port, request):
    """Sends request over plain TCP to port and returns what came back
    before the server closed (or 5 s passed)."""
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sk:
        sk.sendall(request)
        try:
            while True:
                chunk = sk.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    return data


def s_client(args, wait=10, send=None, want=b"version"):
    """Runs openssl s_client with args, sends send (default: one ping
    frame) and returns what it printed once want came (or after wait
    seconds)."""
    import threading
    import time
    p = subprocess.Popen(["openssl", "s_client", "-ign_eof"] + args,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    out = bytearray()

    def read():
        for chunk in iter(lambda: p.stdout.read1(4096), b""):
            out.extend(chunk)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    try:
        p.stdin.write(send if send is not None
                      else frame({"id": 7, "op": "ping"}))
        p.stdin.flush()
    except BrokenPipeError:
        pass
    deadline = time.monotonic() + wait * kh.SLOW
    while (want not in out and p.poll() is None and
           time.monotonic() < deadline):
        time.sleep(0.05)
    p.kill()
    p.wait(10)
    t.join(5)
    p.stdin.close()
    p.stdout.close()
    return bytes(out)


def _http_ok(s):
    try:
        return s.http_get("/health", timeout=2)[0] == 200
    except OSError:
        return False


def _answers(port, s):
    try:
        with kh.Client(port, tls=s.tls_context(), token=ADMIN,
                       timeout=2) as c:
            return c.call("ping").get("ok") is True
    except OSError:
        return False


if __name__ == "__main__":
    kh.main()
