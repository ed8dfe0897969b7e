"""
kappa_harness.py - what the integration tests share: starting and stopping
real kappad processes on free loopback ports, a raw protocol client
(length-prefixed msgpack frames, docs/PROTOCOL.md), running kappactl, and
reading the HTTP endpoints.

Binaries come from the environment (KAPPAD, KAPPACTL, as CTest sets them),
else from $KP_BUILD_DIR or ./build. Every process started here is killed
when the test process exits, also when a test fails or the process itself
dies (PR_SET_PDEATHSIG). A server's temp directory is removed when its test
passed and kept (its path printed) when it failed.
"""

import atexit
import ctypes
import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def _binary(env_name, name):
    path = os.environ.get(env_name)
    if path:
        return path
    build = os.environ.get("KP_BUILD_DIR") or os.path.join(REPO, "build")
    return os.path.join(build, name)


KAPPAD = _binary("KAPPAD", "kappad")
KAPPACTL = _binary("KAPPACTL", "kappactl")


def _sanitized(path):
    """True when the binary was built with AddressSanitizer (slower)."""
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


# Multiplier for waiting deadlines (never for latency assertions).
SLOW = 3.0 if _sanitized(KAPPAD) else 1.0

# ---------------------------------------------------------------------------
# Processes: every one is registered and killed at exit.

_live = []
_live_lock = threading.Lock()


def _kill_all():
    with _live_lock:
        procs = list(_live)
    for p in procs:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(5)
            except Exception:
                pass


atexit.register(_kill_all)


def _on_signal(signum, frame):
    _kill_all()
    sys.exit(128 + signum)


for _sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, _on_signal)

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(args, **kw):
    """Popen that is killed when this process exits or dies."""
    p = subprocess.Popen(args, preexec_fn=_die_with_parent, **kw)
    with _live_lock:
        _live.append(p)
    return p


def free_port():
    """A loopback TCP port that was free a moment ago (bind to port 0)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


# ---------------------------------------------------------------------------
# The raw protocol client.


class ProtocolError(Exception):
    pass


class Client:
    """One connection speaking length-prefixed msgpack frames."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, token=None,
                 tls=None):
        """tls: an ssl.SSLContext to speak TLS with (None: plain TCP)."""
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=host)
        self.next_id = 1
        if token is not None:
            self.ok("auth", token=token)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def settimeout(self, t):
        self.sock.settimeout(t)

    # -- bytes
    def send_raw(self, data):
        self.sock.sendall(data)

    def send_frame(self, body):
        self.sock.sendall(struct.pack(">I", len(body)) + body)

    def _recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("connection closed after %d of %d bytes"
                               % (len(buf), n))
            buf += chunk
        return bytes(buf)

    def recv(self):
        """Reads one response frame and returns it decoded."""
        (n,) = struct.unpack(">I", self._recv_exact(4))
        body = self._recv_exact(n)
        return msgpack.unpackb(body, raw=False, strict_map_key=False)

    def is_closed(self, timeout=5.0):
        """True when the server closed the connection (EOF or reset)."""
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(old)

    # -- requests
    def send(self, op, **fields):
        """Sends one request (id assigned unless given); returns its id."""
        req = dict(fields)
        req["op"] = op
        if "id" not in req:
            req["id"] = self.next_id
            self.next_id += 1
        self.send_frame(msgpack.packb(req, use_bin_type=True))
        return req["id"]

    def call(self, op, **fields):
        """Sends one request and returns its response (checks the id)."""
        rid = self.send(op, **fields)
        resp = self.recv()
        if resp.get("id") != rid:
            raise ProtocolError("response id %r for request %r: %r"
                                % (resp.get("id"), rid, resp))
        return resp

    def ok(self, op, **fields):
        """call() that raises unless the response is ok."""
        resp = self.call(op, **fields)
        if resp.get("ok") is not True:
            raise ProtocolError("%s failed: %r" % (op, resp))
        return resp

    def pipeline(self, reqs):
        """Sends all (op, fields) pairs, then reads as many responses."""
        ids = [self.send(op, **fields) for op, fields in reqs]
        return ids, [self.recv() for _ in ids]

    # -- conveniences
    def produce(self, topic, values, partition=0, keys=None, ts=None, **kw):
        recs = []
        for i, v in enumerate(values):
            r = {"value": v}
            if keys is not None:
                r["key"] = keys[i]
            if ts is not None:
                r["ts"] = ts[i]
            recs.append(r)
        if partition is not None:
            kw["partition"] = partition
        return self.ok("produce", topic=topic, records=recs, **kw)

    def fetch_all(self, topic, partition=0, start=0, max_bytes=1 << 20):
        """Every visible record from start to the end of the partition."""
        out = []
        offset = start
        while True:
            r = self.ok("fetch", topic=topic, partition=partition,
                        offset=offset, max_bytes=max_bytes)
            recs = r["records"]
            out.extend(recs)
            if recs:
                offset = recs[-1]["offset"] + 1
            if not recs or offset >= r["end_offset"]:
                return out


# ---------------------------------------------------------------------------
# kappad.


class Server:
    """One kappad on free loopback ports, with its own temp directory."""

    def __init__(self, config=None, name="kappa", tokens=None, tls=None):
        """tokens: {token: role} written to an auth_tokens_file (0600);
        the harness's own clients then use the first admin token.
        tls: make_certs()'s files; the server then speaks TLS only
        (with tls["require_client_cert"], clients need a certificate) and
        the harness's clients and kappactl use them."""
        self.root = tempfile.mkdtemp(prefix="%s-it-" % name)
        self.data = os.path.join(self.root, "data")
        self.log_path = os.path.join(self.root, "kappad.log")
        self.config_path = None
        self.token = None
        if tokens:
            path = os.path.join(self.root, "tokens")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                for tok, role in tokens.items():
                    f.write("%s %s\n" % (tok, role))
            config = dict(config or {}, auth_tokens_file=path)
            self.token = next((t for t, r in tokens.items() if r == "admin"),
                              None)
        self.tls = tls
        config = dict(config or {})
        if tls:
            config.update(tls_cert=tls["server_cert"],
                          tls_key=tls["server_key"])
            if tls.get("require_client_cert"):
                config["tls_client_ca"] = tls["ca"]
        # The tests load C plugins: on unless a test says otherwise.
        # (A value of None leaves the setting out: the server's default.)
        config.setdefault("native_plugins", "on")
        config = {k: v for k, v in config.items() if v is not None}
        if config:
            self.config_path = os.path.join(self.root, "kappad.conf")
            with open(self.config_path, "w") as f:
                for k, v in config.items():
                    f.write("%s = %s\n" % (k, v))
        self.port = free_port()
        self.http_port = free_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.proc = None
        self.starts = 0

    # -- lifecycle
    def start(self, timeout=10.0):
        """Starts kappad and waits until it answers ping. On the first
        start, ports that another process took since free_port() chose them
        are chosen again (up to 5 times); a restart keeps its ports."""
        for attempt in range(5):
            try:
                return self._start_once(timeout)
            except AssertionError:
                taken = (self.starts == 1 and self.proc.poll() is not None
                         and "address already in use" in self.log_tail(5))
                if not taken or attempt == 4:
                    raise
                self.starts = 0
                self.port, self.http_port = free_port(), free_port()
                self.addr = "127.0.0.1:%d" % self.port

    def _start_once(self, timeout):
        assert self.proc is None or self.proc.poll() is not None
        args = [KAPPAD, "--data", self.data, "--listen", self.addr,
                "--http", "127.0.0.1:%d" % self.http_port]
        if self.config_path:
            args += ["--config", self.config_path]
        log = open(self.log_path, "ab")
        log.write(b"---- start %d\n" % self.starts)
        log.flush()
        self.proc = spawn(args, stdin=subprocess.DEVNULL, stdout=log,
                          stderr=subprocess.STDOUT)
        log.close()
        self.starts += 1
        self.wait_ready(timeout * SLOW)
        return self

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("kappad exited with %s while starting:\n%s"
                                     % (self.proc.returncode, self.log_tail()))
            try:
                with Client(self.port, timeout=2.0, token=self.token,
                            tls=self.tls_context()) as c:
                    if c.call("ping").get("ok") is True:
                        return
            except (OSError, EOFError, ProtocolError) as e:
                last = e
            time.sleep(0.05)
        raise AssertionError("kappad did not answer ping within %.0f s (%r):\n%s"
                             % (timeout, last, self.log_tail()))

    def stop(self, timeout=30.0, sig=signal.SIGTERM):
        """SIGTERM and wait; returns the exit status (None if not running)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError("kappad did not stop within %.0f s of SIGTERM:\n%s"
                                 % (timeout * SLOW, self.log_tail()))

    def stop_ok(self, testcase, sig=signal.SIGTERM):
        """stop() and assert a graceful exit with status 0 and a clean log."""
        rc = self.stop(sig=sig)
        testcase.assertEqual(rc, 0, "kappad exit status after %s:\n%s"
                             % (signal.Signals(sig).name, self.log_tail()))
        testcase.assertEqual(self.sanitizer_reports(), [])

    def sanitizer_reports(self):
        """Lines of the log where a sanitizer reported an error."""
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return []
        return [line for line in text.splitlines()
                if "Sanitizer" in line and "ERROR" in line
                or "runtime error:" in line]

    def kill(self):
        """SIGKILL and wait."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self):
        """stop (graceful, must exit 0) then start on the same dir/ports."""
        rc = self.stop()
        if rc not in (0, None):
            raise AssertionError("kappad exited %s on SIGTERM:\n%s"
                                 % (rc, self.log_tail()))
        return self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self, keep):
        """Kills the process; removes the directory unless keep."""
        self.kill()
        if keep:
            sys.stderr.write("kappa test: kept data of failed test in %s\n"
                             % self.root)
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    # -- clients
    def tls_context(self, client_cert=True):
        """The ssl.SSLContext the harness's clients use (None: no TLS)."""
        if not self.tls:
            return None
        import ssl
        ctx = ssl.create_default_context(cafile=self.tls["ca"])
        if client_cert and self.tls.get("require_client_cert"):
            ctx.load_cert_chain(self.tls["client_cert"],
                                self.tls["client_key"])
        return ctx

    def tls_args(self):
        """kappactl's options for this server's TLS ([] without it)."""
        if not self.tls:
            return []
        args = ["--tls-ca", self.tls["ca"]]
        if self.tls.get("require_client_cert"):
            args += ["--tls-cert", self.tls["client_cert"],
                     "--tls-key", self.tls["client_key"]]
        return args

    def client(self, timeout=10.0, token=None):
        """A client, authenticated with token, else the admin token (when
        tokens are configured)."""
        return Client(self.port, timeout=timeout * SLOW,
                      token=token if token is not None else self.token,
                      tls=self.tls_context())

    def ctl(self, *args, input=None, timeout=60.0, env=None):
        """Runs kappactl with KAPPA_ADDR (and KAPPA_TOKEN, when tokens are
        configured and env sets none) set; returns CompletedProcess (text)."""
        e = dict(env or {})
        if self.token is not None and "KAPPA_TOKEN" not in e:
            e["KAPPA_TOKEN"] = self.token
        return run_ctl(self.tls_args() + list(args), addr=self.addr,
                       input=input, timeout=timeout, env=e)

    def ctl_popen(self, *args, **kw):
        env = dict(os.environ, KAPPA_ADDR=self.addr)
        env.pop("KAPPA_TOKEN", None)
        if self.token is not None:
            env["KAPPA_TOKEN"] = self.token
        return spawn([KAPPACTL] + list(args), env=env, **kw)

    def http_get(self, path, timeout=10.0):
        """GET path on the HTTP port (HTTPS when the server has TLS);
        returns (status, headers, body text)."""
        if self.tls:
            conn = http.client.HTTPSConnection(
                "127.0.0.1", self.http_port, timeout=timeout * SLOW,
                context=self.tls_context())
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.http_port,
                                              timeout=timeout * SLOW)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read().decode("utf-8", "replace")
            return r.status, dict(r.getheaders()), body
        finally:
            conn.close()

    def metrics(self):
        status, _, body = self.http_get("/metrics")
        if status != 200:
            raise AssertionError("/metrics answered %d" % status)
        return body

    def metric(self, name, labels=None):
        """The value of one sample in /metrics, or None."""
        return parse_metric(self.metrics(), name, labels)


def parse_metric(text, name, labels=None):
    want = ""
    if labels:
        want = "{" + ",".join('%s="%s"' % (k, v) for k, v in labels.items()) + "}"
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        parts = line.rsplit(" ", 1)
        if len(parts) == 2 and parts[0] == name + want:
            return float(parts[1])
    return None


def make_certs(directory):
    """A CA, a server certificate for 127.0.0.1 / localhost and a client
    certificate, both signed by the CA (openssl CLI, P-256 keys). Returns
    their paths: ca, server_cert, server_key, client_cert, client_key."""
    os.makedirs(directory, exist_ok=True)
    p = {k: os.path.join(directory, k + ".pem") for k in
         ("ca", "ca_key", "server_cert", "server_key", "client_cert",
          "client_key")}

    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
           "-nodes"]
    run("req", "-x509", *key, "-keyout", p["ca_key"], "-out", p["ca"],
        "-days", "2", "-subj", "/CN=kappa test CA")
    for who, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
                     ("client", "extendedKeyUsage=clientAuth")):
        csr = os.path.join(directory, who + ".csr")
        extfile = os.path.join(directory, who + ".ext")
        with open(extfile, "w") as f:
            f.write(ext + "\n")
        run("req", *key, "-keyout", p[who + "_key"], "-out", csr,
            "-subj", "/CN=kappa test " + who)
        run("x509", "-req", "-in", csr, "-CA", p["ca"], "-CAkey",
            p["ca_key"], "-CAcreateserial", "-out", p[who + "_cert"],
            "-days", "2", "-extfile", extfile)
    return p


def run_ctl(args, addr=None, input=None, timeout=60.0, env=None):
    e = dict(os.environ)
    e.pop("KAPPA_ADDR", None)
    e.pop("KAPPA_TOKEN", None)
    if addr is not None:
        e["KAPPA_ADDR"] = addr
    if env:
        e.update(env)
    p = spawn([KAPPACTL] + [str(a) for a in args], env=e,
              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
              stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(input=input if input is not None else "",
                                 timeout=timeout * SLOW)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError("kappactl %s timed out after %.0f s; stderr: %s"
                             % (" ".join(map(str, args)), timeout * SLOW, err))
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def json_lines(text):
    """Parses JSON lines (blank lines ignored)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# ---------------------------------------------------------------------------
# unittest glue.


class ServerTest(unittest.TestCase):
    """
    A TestCase with one server per class (self.server, started in setUpClass)
    and fresh servers per test on demand (self.new_server()). Directories of
    servers whose tests failed are kept.
    """

    server_config = None     # config dict for the class's server
    class_server = True      # start one server for the whole class

    @classmethod
    def setUpClass(cls):
        cls._failed = False
        cls.server = None
        if cls.class_server:
            cls.server = Server(cls.server_config, name=cls.__name__)
            try:
                cls.server.start()
            except Exception:
                cls.server.cleanup(keep=True)
                raise

    @classmethod
    def tearDownClass(cls):
        """Stops the class's server: it must exit 0 with a clean log."""
        s = cls.server
        if s is None:
            return
        rc = s.stop() if s.alive() else 0
        reports = s.sanitizer_reports()
        bad = rc != 0 or reports
        s.cleanup(keep=cls._failed or bad)
        if bad:
            raise AssertionError("kappad exit status %s on SIGTERM; sanitizer "
                                 "reports: %s\n%s" % (rc, reports, s.log_tail()))

    def failed(self):
        """True when this test has failed or errored so far."""
        result = getattr(self._outcome, "result", None)
        if result is None:
            return True
        return any(t is self or getattr(t, "test_case", None) is self
                   for t, _ in list(result.errors) + list(result.failures))

    def tearDown(self):
        if self.failed():
            type(self)._failed = True

    def new_server(self, config=None, start=True, tokens=None, tls=None):
        s = Server(config, name=type(self).__name__, tokens=tokens, tls=tls)

        def done():
            s.cleanup(keep=self.failed())

        self.addCleanup(done)
        if start:
            s.start()
        return s

    # -- assertions a user would make
    def write_code(self, server, name, text):
        """Writes a processor's source into server's directory; its path."""
        path = os.path.join(server.root, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def assertCtlOk(self, cp, msg=""):
        self.assertEqual(cp.returncode, 0, "%s kappactl %s failed: stderr=%r"
                         % (msg, " ".join(cp.args[1:]), cp.stderr))

    def assertCtlFails(self, cp, contains=None):
        """Non-zero exit and exactly one non-empty line on stderr."""
        self.assertNotEqual(cp.returncode, 0, "kappactl %s should fail; stdout=%r"
                            % (" ".join(cp.args[1:]), cp.stdout))
        self.assertGreater(cp.returncode, 0, "kappactl died of a signal")
        lines = cp.stderr.splitlines()
        self.assertEqual(len(lines), 1, "want one line on stderr, got %r"
                         % cp.stderr)
        self.assertTrue(lines[0].strip(), "empty error line")
        if contains is not None:
            self.assertIn(contains.lower(), lines[0].lower())

    def assertError(self, resp, code, rid=None):
        self.assertIs(resp.get("ok"), False, "want error %s, got %r"
                      % (code, resp))
        self.assertEqual(resp.get("error"), code, repr(resp))
        self.assertIsInstance(resp.get("message"), str, repr(resp))
        if rid is not None:
            self.assertEqual(resp.get("id"), rid, repr(resp))


_topic_seq = [0]


def unique(prefix="t"):
    _topic_seq[0] += 1
    return "%s-%d-%d" % (prefix, os.getpid(), _topic_seq[0])


def main():
    unittest.main(verbosity=2)


# ---------------------------------------------------------------------------
# Processors (helpers for tests/integration/test_proc_*.py).

FIXTURES = os.path.join(HERE, "fixtures")


def fixture(name):
    """Absolute path of tests/integration/fixtures/NAME."""
    return os.path.join(FIXTURES, name)


def _build_dir():
    return os.environ.get("KP_BUILD_DIR") or os.path.join(REPO, "build")


def _built_so(env_name, subdirs, name):
    """Path of a built NAME.so: the directory in $env_name, else the build
    directory's subdirs."""
    d = os.environ.get(env_name) or os.path.join(_build_dir(), *subdirs)
    return os.path.join(d, name + ".so")


def test_plugin(name):
    """Path of a test plugin NAME.so (tests/plugins of the build)."""
    return _built_so("KP_TEST_PLUGIN_DIR", ("tests", "plugins"), name)


def example_plugin(name):
    """Path of a built example plugin NAME.so (examples of the build)."""
    return _built_so("KP_EXAMPLES_BUILD_DIR", ("examples",), name)


def wait_for(pred, timeout, what="condition", interval=0.05):
    """Polls pred() until it returns a true value (returned) or timeout
    seconds (times SLOW) pass (AssertionError naming what and the last
    value)."""
    deadline = time.monotonic() + timeout * SLOW
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s; last: %r"
                                 % (timeout * SLOW, what, last))
        time.sleep(interval)


def ctl_json(server, *args, timeout=60.0):
    """Runs kappactl; asserts exit 0; returns the parsed JSON lines."""
    cp = server.ctl(*args, timeout=timeout)
    if cp.returncode != 0:
        raise AssertionError("kappactl %s failed (%d): %s"
                             % (" ".join(map(str, args)), cp.returncode,
                                cp.stderr))
    return json_lines(cp.stdout)


def proc_status(server, name):
    """`kappactl proc status NAME` as a dict."""
    return ctl_json(server, "proc", "status", name)[0]


def wait_proc(server, name, pred, timeout=20.0, what=None):
    """Polls proc status until pred(status) holds; returns that status."""
    box = {}

    def check():
        st = proc_status(server, name)
        box["last"] = st
        return st if pred(st) else None

    try:
        return wait_for(check, timeout, what or "processor %s" % name,
                        interval=0.1)
    except AssertionError as e:
        raise AssertionError("%s\nlast status: %r\n%s"
                             % (e, box.get("last"), server.log_tail(15)))


def wait_caught_up(server, name, timeout=30.0):
    """Waits until the processor has lag 0 (and is running); returns its
    status."""
    return wait_proc(server, name,
                     lambda st: st["lag"] == 0 and all(
                         i["offset"] == i["end_offset"] for i in st["inputs"]),
                     timeout, "processor %s to catch up" % name)


def view_scan(server, name, prefix=None, limit=100000):
    """The view as a dict via `kappactl view scan`."""
    args = ["view", "scan", name, "--limit", str(limit)]
    if prefix is not None:
        args += ["--prefix", prefix]
    return {item["key"]: item["value"] for item in ctl_json(server, *args)}


def consume_all(server, topic):
    """Every record of every partition of topic via `kappactl consume`."""
    return ctl_json(server, "consume", topic)


def create_topic(server, name, partitions=1):
    ctl_json(server, "topic", "create", name, "--partitions", str(partitions))


def produce_keyed(client, topic, values, key_field="user", batch=500):
    """Produces values (dicts) keyed by value[key_field], letting the
    server route by key, in batches."""
    for i in range(0, len(values), batch):
        chunk = values[i:i + batch]
        client.produce(topic, chunk, partition=None,
                       keys=[str(v[key_field]) for v in chunk])


def write_jsonl(path, values):
    with open(path, "w") as f:
        for v in values:
            f.write(json.dumps(v) + "\n")
    return path


def _proc_fields(pid):
    """The fields of /proc/PID/stat after the command, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_tree(pid):
    """pid and its descendants (kappad and its processors' workers)."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            fields = _proc_fields(int(d))
            if fields is not None:
                kids.setdefault(int(fields[1]), []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_seconds(pid):
    """User plus system CPU time so far, in seconds, of a process and its
    live descendants: kappad runs processors in worker processes."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in process_tree(pid):
        fields = _proc_fields(p)
        if fields is not None:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


# ---------------------------------------------------------------------------
# Processor versions (helpers for tests/integration/test_versions_*.py):
# reload, replay, rollback, reset and verify over the raw protocol.


def raw_status(server, name):
    """proc_status NAME over the raw protocol (one short connection)."""
    with server.client() as c:
        return c.ok("proc_status", name=name)["proc"]


def raw_versions(server, name):
    """proc_versions NAME: {version number: entry}."""
    with server.client() as c:
        return {v["version"]: v
                for v in c.ok("proc_versions", name=name)["versions"]}


def wait_status(server, name, pred, timeout=20.0, what=None, interval=0.02):
    """Polls proc_status (raw) until pred(status) holds; returns it."""
    box = {}

    def check():
        st = raw_status(server, name)
        box["last"] = st
        return st if pred(st) else None

    try:
        return wait_for(check, timeout, what or "processor %s" % name,
                        interval=interval)
    except AssertionError as e:
        raise AssertionError("%s\nlast status: %r\n%s"
                             % (e, box.get("last"), server.log_tail(15)))


def wait_lag0(server, name, timeout=30.0, version=None):
    """Waits until the live version (optionally number `version`) has
    processed every visible input record; returns the status."""
    return wait_status(
        server, name,
        lambda st: (version is None or st["version"] == version)
        and st["state"] == "running" and st["lag"] == 0
        and all(i["offset"] == i["end_offset"] for i in st["inputs"]),
        timeout, "processor %s to catch up" % name)


def fetch_topic(client, topic, partition=0, start=0, generation=None):
    """(generation, every record of one partition from start). Raises
    ProtocolError on an error response (e.g. TOPIC_SWITCHED)."""
    out = []
    offset = start
    gen = generation
    while True:
        kw = {} if gen is None else {"generation": gen}
        r = client.ok("fetch", topic=topic, partition=partition,
                      offset=offset, max_bytes=1 << 20, **kw)
        gen = r.get("generation", gen)
        recs = r["records"]
        out.extend(recs)
        if recs:
            offset = recs[-1]["offset"] + 1
        if not recs or offset >= r["end_offset"]:
            return gen, out


class UserProducer:
    """
    Produces {"user": "u<k>", "i": i} records (i = 0, 1, ... across the
    whole run) to explicit partitions of a topic, round-robin per batch,
    and remembers what went where: self.sent[(partition, offset)] = value.
    start() runs a background thread producing `batch` records (a random
    size in the range when a tuple) every `pause` seconds until stop().
    """

    def __init__(self, server, topic, partitions=1, users=20, seed=7,
                 batch=(20, 50), pause=0.003, ts=None):
        import random
        self.server = server
        self.topic = topic
        self.partitions = partitions
        self.users = users
        self.rng = random.Random(seed)
        self.batch_range = batch if isinstance(batch, tuple) else (batch, batch)
        self.pause = pause
        self.ts = ts
        self.sent = {}
        self.next_i = 0
        self.next_part = 0
        self.lock = threading.Lock()
        self.thread = None
        self.stopping = threading.Event()
        self.error = None
        self.batches = 0

    def produce(self, client, n, ts=None):
        """Produces n records now (one batch) on client; returns them."""
        with self.lock:
            part = self.next_part
            self.next_part = (self.next_part + 1) % self.partitions
            vals = [{"user": "u%d" % self.rng.randrange(self.users),
                     "i": self.next_i + k} for k in range(n)]
            self.next_i += n
        recs = []
        for k, v in enumerate(vals):
            r = {"value": v, "key": v["user"]}
            if ts is not None:
                r["ts"] = ts + k
            recs.append(r)
        resp = client.ok("produce", topic=self.topic, partition=part,
                         records=recs)
        base = resp["results"][0]["base_offset"]
        with self.lock:
            for k, v in enumerate(vals):
                self.sent[(part, base + k)] = v
            self.batches += 1
        return vals

    def produce_many(self, n, chunk=500, ts=None):
        with self.server.client() as c:
            while n > 0:
                k = min(chunk, n)
                self.produce(c, k, ts=ts)
                n -= k

    def _run(self):
        try:
            with self.server.client() as c:
                while not self.stopping.is_set():
                    self.produce(c, self.rng.randint(*self.batch_range))
                    if self.pause:
                        self.stopping.wait(self.pause)
        except Exception as e:  # reported by stop()
            self.error = e

    def start(self):
        self.stopping.clear()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """Stops the thread; raises what it failed with, if anything."""
        if self.thread is not None:
            self.stopping.set()
            self.thread.join(30)
            self.thread = None
        if self.error is not None:
            raise AssertionError("producer failed: %r" % (self.error,))

    def values(self):
        with self.lock:
            return list(self.sent.values())

    def count_users(self, pred=None):
        """Counter of users over every record sent (that pred accepts)."""
        import collections
        return collections.Counter(v["user"] for v in self.values()
                                   if pred is None or pred(v))


def assert_one_per_input(testcase, records, sent, proc, input_topic,
                         version=None, msg=""):
    """
    Asserts that output records hold exactly one record per input record
    of `sent` ({(partition, offset): value}, see UserProducer): by the
    provenance headers {proc, version, topic, partition, offset}, with no
    gap and no duplicate, and (when version is given) all written by that
    version. Returns {(partition, offset): output record}.
    """
    by_input = {}
    dups = []
    for r in records:
        h = r.get("headers")
        testcase.assertIsInstance(h, dict, "%s output without provenance: %r"
                                  % (msg, r))
        testcase.assertEqual(h.get("proc"), proc, "%s %r" % (msg, r))
        testcase.assertEqual(h.get("topic"), input_topic, "%s %r" % (msg, r))
        if version is not None:
            testcase.assertEqual(h.get("version"), version,
                                 "%s output of another version: %r" % (msg, r))
        k = (h["partition"], h["offset"])
        if k in by_input:
            dups.append(k)
        by_input[k] = r
    missing = sorted(set(sent) - set(by_input))
    extra = sorted(set(by_input) - set(sent))
    testcase.assertEqual(
        (dups[:10], missing[:10], extra[:10]), ([], [], []),
        "%s outputs vs inputs: %d duplicated, %d missing, %d unknown "
        "(first ones shown as (partition, offset)); %d outputs for %d inputs"
        % (msg, len(dups), len(missing), len(extra), len(records), len(sent)))
    return by_input


def wait_topic(client, topic, n, partition=0, timeout=10.0):
    """(generation, records) of one partition once it holds at least n
    visible records (outputs of a caught-up processor become visible
    promptly, not necessarily at once)."""
    box = {}

    def check():
        box["got"] = fetch_topic(client, topic, partition)
        return box["got"] if len(box["got"][1]) >= n else None

    try:
        return wait_for(check, timeout, "%d records in %s" % (n, topic))
    except AssertionError:
        raise AssertionError("%s holds %d records, want %d"
                             % (topic, len(box["got"][1]), n))


# ---------------------------------------------------------------------------
# Fault injection (helpers for tests/integration/test_regressions_*.py):
# servers started with an LD_PRELOAD shim, extra environment or a small
# descriptor limit.


def shim_path(name):
    """Path of the fault shim NAME.so (tests/shims of the build)."""
    return _built_so("KP_SHIM_DIR", ("tests", "shims"), name)


class FaultServer(Server):
    """
    A Server whose kappad runs with extra environment (env), an LD_PRELOAD
    shim (preload: a path) and/or a RLIMIT_NOFILE of nofile descriptors.
    An ASan kappad preloading a shim built without ASan gets
    verify_asan_link_order=0 (for that process only).
    """

    def __init__(self, config=None, name="kappa", env=None, preload=None,
                 nofile=None):
        Server.__init__(self, config, name)
        self.env = dict(env or {})
        self.preload = preload
        self.nofile = nofile
        self.wrap = []   # a command kappad runs under (e.g. unshare)

    def _environ(self):
        env = dict(os.environ)
        env.update(self.env)
        if self.preload:
            env["LD_PRELOAD"] = " ".join(
                p for p in (env.get("LD_PRELOAD"), self.preload) if p)
            if _sanitized(KAPPAD):
                opts = env.get("ASAN_OPTIONS", "")
                env["ASAN_OPTIONS"] = ":".join(
                    o for o in (opts, "verify_asan_link_order=0") if o)
        return env

    def _preexec(self):
        _die_with_parent()
        if self.nofile:
            import resource
            resource.setrlimit(resource.RLIMIT_NOFILE,
                               (self.nofile, self.nofile))

    def _start_once(self, timeout):
        assert self.proc is None or self.proc.poll() is not None
        args = self.wrap + [KAPPAD, "--data", self.data, "--listen", self.addr,
                "--http", "127.0.0.1:%d" % self.http_port]
        if self.config_path:
            args += ["--config", self.config_path]
        log = open(self.log_path, "ab")
        log.write(b"---- start %d\n" % self.starts)
        log.flush()
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT,
                                     env=self._environ(),
                                     preexec_fn=self._preexec)
        with _live_lock:
            _live.append(self.proc)
        log.close()
        self.starts += 1
        self.wait_ready(timeout * SLOW)
        return self


def new_fault_server(testcase, config=None, env=None, preload=None,
                     nofile=None, start=True):
    """A FaultServer for one test (ServerTest): killed at cleanup, its
    directory kept when the test failed."""
    s = FaultServer(config, name=type(testcase).__name__, env=env,
                    preload=preload, nofile=nofile)
    testcase.addCleanup(lambda: s.cleanup(keep=testcase.failed()))
    if start:
        s.start()
    return s


def rss_mib(pid):
    """Resident set size of a process, in MiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def frame(req):
    """One request frame (length prefix and msgpack body) for send_raw."""
    body = msgpack.packb(req, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


# ---------------------------------------------------------------------------
# The "batches" form of fetch (docs/PROTOCOL.md, "Stored batches"), decoded
# from the protocol document alone: what an independent client does.

def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data, crc=0):
    """CRC32C (Castagnoli, reflected polynomial 0x82F63B78) of data;
    crc32c(b"123456789") == 0xE3069283."""
    c = crc ^ 0xFFFFFFFF
    table = _CRC32C
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


class BatchError(Exception):
    """A batch of a "batches" fetch failed its checks."""


BATCH_MAGIC = b"KPB2"
BATCH_HEADER = struct.Struct("<QI4sIIIIqqQIL")   # 64 bytes
RECORD_HEADER = struct.Struct("<IIqi")           # 20 bytes
BATCH_FLAG_HEADERS = 1


def decode_batch_header(buf, pos=0):
    """The header of the batch at buf[pos:] as a dict; BatchError when it
    is short, has another magic, or fails its CRC."""
    if len(buf) - pos < BATCH_HEADER.size:
        raise BatchError("batch at byte %d: %d bytes left, header needs 64"
                         % (pos, len(buf) - pos))
    (base, blen, magic, body_crc, count, last_delta, flags, first_ts,
     max_ts, pid, seq, hcrc) = BATCH_HEADER.unpack_from(buf, pos)
    if magic != BATCH_MAGIC:
        raise BatchError("batch at byte %d: magic %r" % (pos, magic))
    if crc32c(buf[pos:pos + 60]) != hcrc:
        raise BatchError("batch at byte %d: header CRC mismatch" % pos)
    if blen < 64 + 20 or count < 1 or flags & ~BATCH_FLAG_HEADERS:
        raise BatchError("batch at byte %d: bad header fields" % pos)
    return {"base_offset": base, "batch_len": blen, "body_crc": body_crc,
            "count": count, "last_offset_delta": last_delta, "flags": flags,
            "first_ts": first_ts, "max_ts": max_ts, "producer_id": pid,
            "producer_seq": seq}


def decode_batches(blob, offset=0):
    """The records at or after offset of a run of stored batches (the
    `batches` bin of a fetch), as the records form shows them: dicts with
    offset, ts, key (bytes or None), value (decoded) and headers (decoded,
    only when the record has some). Checks both CRCs of every batch and its
    layout; raises BatchError on any mismatch."""
    out = []
    pos = 0
    blob = bytes(blob)
    while pos < len(blob):
        h = decode_batch_header(blob, pos)
        end = pos + h["batch_len"]
        if end > len(blob):
            raise BatchError("batch at offset %d cut short" % h["base_offset"])
        if crc32c(blob[pos + 64:end]) != h["body_crc"]:
            raise BatchError("batch at offset %d: records' CRC mismatch"
                             % h["base_offset"])
        p = pos + 64
        prev = None
        n = 0
        while p < end:
            rec_len, delta, ts, key_len = RECORD_HEADER.unpack_from(blob, p)
            body_end = p + 4 + rec_len
            if body_end > end or (prev is not None and delta <= prev):
                raise BatchError("batch at offset %d: bad record %d"
                                 % (h["base_offset"], n))
            q = p + 20
            key = None
            if key_len >= 0:
                key = blob[q:q + key_len]
                q += key_len
            headers = None
            if h["flags"] & BATCH_FLAG_HEADERS:
                (hdr_len,) = struct.unpack_from("<I", blob, q)
                q += 4
                if hdr_len:
                    headers = msgpack.unpackb(blob[q:q + hdr_len], raw=False,
                                              strict_map_key=False)
                q += hdr_len
            value = msgpack.unpackb(blob[q:body_end], raw=False,
                                    strict_map_key=False)
            rec_offset = h["base_offset"] + delta
            if rec_offset >= offset:
                rec = {"offset": rec_offset, "ts": ts, "key": key,
                       "value": value}
                if headers is not None:
                    rec["headers"] = headers
                out.append(rec)
            prev = delta
            n += 1
            p = body_end
        if n != h["count"] or prev != h["last_offset_delta"]:
            raise BatchError("batch at offset %d: %d records, header says %d"
                             % (h["base_offset"], n, h["count"]))
        pos = end
    return out


def fetch_batches_all(client, topic, partition=0, start=0, max_bytes=1 << 20):
    """Every visible record from start to the end of the partition, read
    with format "batches" and decoded with decode_batches."""
    out = []
    offset = start
    while True:
        r = client.ok("fetch", topic=topic, partition=partition,
                      offset=offset, max_bytes=max_bytes, format="batches")
        recs = decode_batches(r["batches"], offset)
        out.extend(recs)
        if recs:
            offset = recs[-1]["offset"] + 1
        if not recs or offset >= r["end_offset"]:
            return out
