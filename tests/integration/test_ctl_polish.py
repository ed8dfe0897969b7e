#!/usr/bin/env python3
"""
test_ctl_polish.py - kappactl for a newcomer (issue 14): help per command
(`kappactl CMD --help`, `kappactl help CMD`) with its flags and examples,
`--version`, quiet successes turned into errors or counted warnings
(`group describe` of a group without offsets, `produce` to a missing
topic, `--key-field`/`--ts-field` members missing), `produce --raw` and
`consume --raw`, offline runs that chain with a pipe (`run` prints its
emits and its view in a form `run --input` reads back, and reads records
as consume prints them), and a server that is not kappad (its HTTP port,
a silent one, one answering garbage) told so within a second.
"""

import os
import re
import socket
import subprocess
import tempfile
import threading
import time

import kappa_harness as kh

ADMIN = "adm-polish-0123456789abcdef"

# A processor that records what it was given: per input record, its
# topic, partition, offset, ts, key (and its length) and value, in the
# view under "TOPIC/PARTITION/OFFSET"; it emits {"n": value.n} to "mid"
# keyed by value.user, when the value has them.
PROBE_LUA = """
local M = {}
function M.process(ctx, rec)
  local id = rec.topic .. "/" .. rec.partition .. "/" .. rec.offset
  ctx.state:put(id, { ts = rec.ts, key = rec.key,
                      key_len = rec.key and #rec.key or -1,
                      value = rec.value })
  if type(rec.value) == "table" and rec.value.user then
    ctx:emit("mid", { n = rec.value.n }, rec.value.user)
  end
end
return M
"""

# Sums the "n" of its input per key, and counts records per topic.
SUM_LUA = """
local M = {}
function M.process(ctx, rec)
  ctx.state:incr("sum:" .. (rec.key or "-"), rec.value.n)
  ctx.state:incr("topic:" .. rec.topic, 1)
  ctx.state:put("last_ts:" .. (rec.key or "-"), rec.ts)
end
return M
"""


def lines(text):
    return [l for l in text.splitlines() if l.strip()]


class Listener:
    """A TCP server on a free loopback port that, per connection, does
    what `behave(conn)` does (in a thread); closed by close()."""

    def __init__(self, behave):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.behave = behave
        self.conns = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self.behave, args=(conn,),
                             daemon=True).start()

    def close(self):
        self.done.set()
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def silent(conn):
    """Accepts and says nothing (reads and drops what comes)."""
    try:
        while conn.recv(4096):
            pass
    except OSError:
        pass


def garbage(conn):
    """Answers anything with a line that is not a kappa frame."""
    try:
        if conn.recv(4096):
            conn.sendall(b"garbage\r\n")
        while conn.recv(4096):
            pass
    except OSError:
        pass


def hangs_up(conn):
    conn.close()


class CtlPolishTest(kh.ServerTest):

    def ctl(self, *args, **kw):
        return self.server.ctl(*args, **kw)

    def timed_ctl(self, args, addr, **kw):
        t0 = time.monotonic()
        cp = kh.run_ctl(args, addr=addr, timeout=30, **kw)
        return cp, time.monotonic() - t0

    # -- help ---------------------------------------------------------

    def test_help_per_command(self):
        for words in (["run"], ["produce"], ["consume"], ["ping"],
                      ["topic", "create"], ["proc", "reload"],
                      ["group", "reset"], ["view", "scan"], ["top"]):
            with self.subTest(cmd=words):
                forms = [kh.run_ctl(words + ["--help"]),
                         kh.run_ctl(words + ["-h"]),
                         kh.run_ctl(["help"] + words)]
                for cp in forms:
                    self.assertEqual(cp.returncode, 0, cp.stderr)
                    self.assertEqual(cp.stderr, "")
                out = forms[0].stdout
                self.assertEqual(forms[1].stdout, out)
                self.assertEqual(forms[2].stdout, out)
                self.assertIn("usage:\n  kappactl %s" % " ".join(words), out)
                self.assertIn("\nflags:\n", out)
                self.assertRegex(out, r"\nexamples?:\n  .*kappactl ")
        # The help does not need a server, and wins over other arguments.
        cp = kh.run_ctl(["proc", "reload", "wc", "--file", "x.lua", "--help"],
                        addr="127.0.0.1:1")
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertIn("--no-watch", cp.stdout)
        # run's help says how its input is read and how runs chain.
        out = kh.run_ctl(["run", "--help"]).stdout
        for want in ("--input-format", "auto", "records", "values",
                     '{"view":', "--input -"):
            self.assertIn(want, out)

    def test_help_of_a_group(self):
        for args in (["topic", "--help"], ["help", "topic"], ["topic", "-h"]):
            cp = kh.run_ctl(args)
            self.assertEqual(cp.returncode, 0, cp.stderr)
            for verb in ("create", "list", "describe", "delete"):
                self.assertIn("kappactl topic %s" % verb, cp.stdout)
        cp = kh.run_ctl(["help", "proc"])
        for verb in ("create", "reload", "replay", "rollback", "verify",
                     "graph", "versions", "gc", "reset"):
            self.assertIn("kappactl proc %s" % verb, cp.stdout)

    def test_help_unknown(self):
        for args in (["help", "nosuch"], ["help", "topic", "nosuch"],
                     ["topic", "nosuch", "--help"]):
            cp = kh.run_ctl(args)
            self.assertEqual(cp.returncode, 2, cp)
            self.assertEqual(cp.stdout, "")
            self.assertEqual(len(cp.stderr.splitlines()), 1, cp.stderr)
            self.assertTrue(cp.stderr.startswith("kappactl: "), cp.stderr)

    def test_full_help(self):
        full = kh.run_ctl(["--help"])
        self.assertEqual(full.returncode, 0)
        self.assertEqual(kh.run_ctl(["help"]).stdout, full.stdout)
        self.assertEqual(kh.run_ctl(["-h"]).stdout, full.stdout)
        for want in ("topic create NAME", "produce TOPIC", "consume TOPIC",
                     "proc graph", "run FILE --input", "top [--json]",
                     "--raw", "--version", "help [COMMAND]"):
            self.assertIn(want, full.stdout)
        # Every command's usage in the full text is its per-command one.
        for words in (["run"], ["consume"], ["proc", "replay"]):
            one = kh.run_ctl(["help"] + words).stdout
            usage = one.split("\n\n")[0].splitlines()[1].strip()
            self.assertIn("  " + usage[len("kappactl "):], full.stdout)

    def test_help_flags_are_accepted(self):
        """Every flag a command's help lists is one its parser takes
        (no 'unknown option'), so the help and the code do not drift."""
        full = kh.run_ctl(["--help"]).stdout
        cmds = []
        for m in re.finditer(r"^  ([a-z]+(?: [a-z]+)?)\b", full, re.M):
            words = m.group(1).split()
            if len(words) == 2 and words[1] not in (
                    kh.run_ctl(["help", words[0]]).stdout):
                words = words[:1]
            if words not in cmds:
                cmds.append(words)
        self.assertGreater(len(cmds), 25, cmds)
        closed = "127.0.0.1:%d" % kh.free_port()
        checked = 0
        for words in cmds:
            cp = kh.run_ctl(["help"] + words)
            if cp.returncode != 0:
                continue    # a group word of the full text, e.g. "proc"
            flags = cp.stdout.split("\nflags:\n", 1)[1].split("  (and", 1)[0]
            for line in flags.splitlines():
                toks = line.split()
                if not toks or not toks[0].startswith("--"):
                    continue
                args = list(words) + [toks[0]]
                if len(toks) > 1 and re.match(r"^@?[A-Z][A-Z0-9_.\[\]]*$",
                                              toks[1]):
                    args.append("1")
                r = kh.run_ctl(args, addr=closed, input="", timeout=30)
                for bad in ("unknown option", "takes no value",
                            "needs a value"):
                    self.assertNotIn(bad, r.stderr, args)
                checked += 1
        self.assertGreater(checked, 50)

    def test_version(self):
        for args in (["--version"], ["version"]):
            cp = kh.run_ctl(args)
            self.assertEqual(cp.returncode, 0, cp.stderr)
            self.assertRegex(cp.stdout, r"^kappactl \d+\.\d+\.\d+\S*\n$")
        ping = kh.json_lines(self.ctl("ping").stdout)[0]
        self.assertEqual(cp.stdout, "kappactl %s\n" % ping["version"])

    # -- quiet successes ----------------------------------------------

    def test_group_describe_without_offsets(self):
        g = kh.unique("nogroup")
        cp = self.ctl("group", "describe", g)
        self.assertCtlFails(cp, "no group '%s' (it has committed no offsets)"
                            % g)
        self.assertEqual(cp.returncode, 1)
        self.assertEqual(cp.stdout, "")
        # Once it has committed, it is described as before.
        t = kh.unique("t")
        kh.create_topic(self.server, t)
        self.assertCtlOk(self.ctl("produce", t, input='{"a":1}\n'))
        self.assertCtlOk(self.ctl("consume", t, "--group", g))
        got = kh.json_lines(self.ctl("group", "describe", g).stdout)
        self.assertEqual([(r["topic"], r["offset"], r["lag"]) for r in got],
                         [(t, 1, 0)])

    def test_produce_to_missing_topic(self):
        t = kh.unique("nosuch")
        for data in ("", '{"a":1}\n'):
            cp = self.ctl("produce", t, input=data)
            self.assertCtlFails(cp, "UNKNOWN_TOPIC")
            self.assertEqual(cp.returncode, 1)
            self.assertEqual(cp.stdout, "")
        # A partition the topic does not have, also before reading.
        t = kh.unique("t")
        kh.create_topic(self.server, t)
        cp = self.ctl("produce", t, "--partition", "1", input="")
        self.assertCtlFails(cp, "no partition 1")

    def test_produce_with_auto_create(self):
        s = self.new_server({"auto_create_topics": "true"})
        t = kh.unique("auto")
        # Nothing to send: the topic is still missing, and that is said.
        cp = s.ctl("produce", t, input="")
        self.assertCtlFails(cp, "UNKNOWN_TOPIC")
        self.assertEqual(cp.stdout, "")
        # A record: the server creates the topic, as it is configured to.
        cp = s.ctl("produce", t, input='{"a":1}\n{"a":2}\n')
        self.assertCtlOk(cp)
        self.assertEqual(kh.json_lines(cp.stdout), [{"acked": 2}])

    def test_produce_missing_key_and_ts_members(self):
        t = kh.unique("t")
        kh.create_topic(self.server, t)
        data = ('{"user":"a","ts":1000}\n{"x":1}\n[1,2]\n'
                '{"user":"b","ts":"1970-01-01T00:00:02Z"}\n{"user":null}\n')
        cp = self.ctl("produce", t, "--key-field", "user", input=data)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(kh.json_lines(cp.stdout), [{"acked": 5}])
        self.assertEqual(cp.stderr.splitlines(), [
            "kappactl: line 2: no member 'user'; sent without a key",
            "kappactl: line 3: no member 'user'; sent without a key",
            "kappactl: 2 records had no member 'user' (sent without a key)",
        ])
        got = kh.json_lines(self.ctl("consume", t).stdout)
        self.assertEqual([r["key"] for r in got], ["a", None, None, "b", None])
        # --ts-field: the same, and the records still get the server's time.
        t2 = kh.unique("t")
        kh.create_topic(self.server, t2)
        before = int(time.time() * 1000) - 60000
        cp = self.ctl("produce", t2, "--ts-field", "ts", input=data)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        err = cp.stderr.splitlines()
        self.assertEqual(err[-1], "kappactl: 3 records had no member 'ts' "
                                  "(sent with the server's time)")
        self.assertEqual(err[0], "kappactl: line 2: no member 'ts'; sent "
                                 "with the server's time")
        self.assertEqual(len(err), 4, err)
        ts = [r["ts"] for r in kh.json_lines(self.ctl("consume", t2).stdout)]
        self.assertEqual(ts[0], 1000)
        self.assertEqual(ts[3], 2000)
        self.assertTrue(all(x > before for x in (ts[1], ts[2], ts[4])), ts)

    # -- raw ----------------------------------------------------------

    def test_produce_raw_and_consume_raw(self):
        t = kh.unique("t")
        kh.create_topic(self.server, t)
        data = 'plain text\n{"a": 1}\n\n  \nlast\r\nnot "json\n'
        cp = self.ctl("produce", t, "--raw", input=data)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(kh.json_lines(cp.stdout), [{"acked": 5}])
        self.assertEqual(cp.stderr, "")
        got = kh.json_lines(self.ctl("consume", t).stdout)
        self.assertEqual([r["value"] for r in got],
                         ["plain text", '{"a": 1}', "  ", "last",
                          'not "json'])
        cp = self.ctl("consume", t, "--raw")
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(cp.stdout, 'plain text\n{"a": 1}\n  \nlast\nnot "json\n')
        # Values that are not strings print as JSON.
        t2 = kh.unique("t")
        kh.create_topic(self.server, t2)
        self.assertCtlOk(self.ctl("produce", t2,
                                  input='{"a":[1,2]}\n5\n"s"\nnull\n'))
        cp = self.ctl("consume", t2, "--raw", "--count", "4")
        self.assertEqual(cp.stdout, '{"a":[1,2]}\n5\ns\nnull\n')

    def test_raw_refuses_key_and_ts_fields(self):
        for flag in ("--key-field", "--ts-field"):
            cp = self.ctl("produce", "t", "--raw", flag, "user", input="x\n")
            self.assertCtlFails(cp, "--key-field and --ts-field need JSON")
            self.assertEqual(cp.returncode, 2)
        # --raw itself is accepted (the topic does not exist here).
        self.assertCtlFails(self.ctl("produce", kh.unique("no"), "--raw",
                                     input="x\n"), "UNKNOWN_TOPIC")

    # -- run ----------------------------------------------------------

    def write(self, name, text):
        d = tempfile.mkdtemp(prefix="kappa-polish-", dir=self.server.root)
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def run_pipe(self, command):
        cp = subprocess.run(command, shell=True, capture_output=True,
                            text=True, timeout=60 * kh.SLOW)
        return cp

    def test_run_view_follows_the_emits(self):
        probe = self.write("probe.lua", PROBE_LUA)
        events = self.write("ev.jsonl", '{"user":"a","n":1}\n'
                                        '{"user":"b","n":2}\n')
        cp = kh.run_ctl(["run", probe, "--input", events, "--view"])
        self.assertCtlOk(cp)
        got = kh.json_lines(cp.stdout)
        self.assertEqual(got[:2], [
            {"topic": "mid", "ts": 0, "key": "a", "value": {"n": 1}},
            {"topic": "mid", "ts": 0, "key": "b", "value": {"n": 2}}])
        self.assertEqual(len(got), 3)
        self.assertEqual(sorted(got[2]["view"]), ["input/0/0", "input/0/1"])

    def test_run_chains_with_a_pipe(self):
        probe = self.write("probe.lua", PROBE_LUA)
        total = self.write("sum.lua", SUM_LUA)
        events = self.write("ev.jsonl", "".join(
            '{"user":"%s","n":%d,"at":%d}\n' % (u, n, 1000 * n)
            for n, u in enumerate("abab", 1)))
        ctl = kh.KAPPACTL
        for view in ("", " --view"):
            with self.subTest(upstream_view=bool(view)):
                cp = self.run_pipe(
                    "%s run %s --input %s --ts-field at%s | "
                    "%s run %s --input - --view"
                    % (ctl, probe, events, view, ctl, total))
                self.assertEqual(cp.returncode, 0, cp.stderr)
                self.assertEqual(cp.stderr, "")
                out = kh.json_lines(cp.stdout)
                self.assertEqual(len(out), 1, out)
                # Keys, topic and event times came through the pipe; the
                # upstream view line was not taken for a record.
                self.assertEqual(out[0]["view"], {
                    "sum:a": 4, "sum:b": 6, "topic:mid": 4,
                    "last_ts:a": 3000, "last_ts:b": 4000})

    def test_run_reads_consume_output(self):
        t = kh.unique("t")
        kh.create_topic(self.server, t, partitions=2)
        with self.server.client() as c:
            c.produce(t, [{"user": "x", "n": 1}, {"n": 2}], partition=1,
                      keys=[b"\xff\x00", None], ts=[5000, 6000])
        probe = self.write("probe.lua", PROBE_LUA)
        consumed = self.ctl("consume", t).stdout
        self.assertIn('"base64:', consumed)
        cp = kh.run_ctl(["run", probe, "--input", "-", "--view"],
                        input=consumed)
        self.assertCtlOk(cp)
        out = kh.json_lines(cp.stdout)
        self.assertEqual(out[0], {"topic": "mid", "ts": 5000, "key": "x",
                                  "value": {"n": 1}})
        view = out[-1]["view"]
        self.assertEqual(view["%s/1/0" % t]["ts"], 5000)
        self.assertEqual(view["%s/1/0" % t]["key_len"], 2)  # decoded
        self.assertEqual(view["%s/1/1" % t]["key_len"], -1)  # no key
        self.assertEqual(view["%s/1/1" % t]["value"], {"n": 2})
        # --input-format values: the same lines are whole values.
        cp = kh.run_ctl(["run", probe, "--input", "-", "--view",
                         "--input-format", "values"], input=consumed)
        self.assertCtlOk(cp)
        view = kh.json_lines(cp.stdout)[-1]["view"]
        self.assertEqual(sorted(view), ["input/0/0", "input/0/1"])
        self.assertEqual(view["input/0/1"]["value"]["partition"], 1)

    def test_run_input_detection(self):
        probe = self.write("probe.lua", PROBE_LUA)

        def view_of(text, *extra):
            cp = kh.run_ctl(["run", probe, "--input", "-", "--view"] +
                            list(extra), input=text)
            return cp, (kh.json_lines(cp.stdout) or [{}])[-1].get("view")

        # A value with members outside the record set stays a value.
        cp, view = view_of('{"topic":"t","value":1,"user":"u"}\n')
        self.assertCtlOk(cp)
        self.assertEqual(list(view), ["input/0/0"])
        # View lines before the deciding line: values when values win ...
        cp, view = view_of('{"view":{"a":1}}\n{"n":2}\n')
        self.assertCtlOk(cp)
        self.assertEqual(view["input/0/0"]["value"], {"view": {"a": 1}})
        self.assertEqual(view["input/0/1"]["value"], {"n": 2})
        # ... skipped when records do, and so is a view line alone.
        cp, view = view_of('{"view":{"a":1}}\n{"topic":"t","value":3}\n')
        self.assertEqual(view, {"t/0/0": {"ts": 0, "key_len": -1,
                                          "value": 3}})
        cp, view = view_of('{"view":{"a":1}}\n')
        self.assertCtlOk(cp)
        self.assertEqual(view, {})
        # --input-format records: a line that is no record is reported.
        cp, view = view_of('{"value":1}\n[2]\n', "--input-format", "records")
        self.assertCtlFails(cp, "line 2: not a record")
        self.assertEqual(list(view), ["input/0/0"])
        cp = kh.run_ctl(["run", probe, "--input", "-", "--input-format",
                         "xml"], input="")
        self.assertCtlFails(cp, "--input-format")
        self.assertEqual(cp.returncode, 2)

    # -- not kappad ----------------------------------------------------

    def assertToldQuickly(self, args, addr, want, limit=1.0):
        cp, took = self.timed_ctl(args, addr)
        self.assertCtlFails(cp, want)
        self.assertEqual(cp.returncode, 1)
        self.assertLess(took, limit * kh.SLOW + 0.8, cp.stderr)
        return cp

    def test_http_port(self):
        http = "127.0.0.1:%d" % self.server.http_port
        for args in (["ping"], ["topic", "list"], ["consume", "t"],
                     ["produce", "t"]):
            cp = self.assertToldQuickly(args, http, "answered like an HTTP "
                                        "server, not kappad", limit=0.5)
        self.assertEqual(cp.stderr,
                         "kappactl: %s answered like an HTTP server, not kappad "
                         "(is it kappad's --http port?)\n" % http)

    def test_silent_and_garbage_servers(self):
        quiet = Listener(silent)
        noise = Listener(garbage)
        gone = Listener(hangs_up)
        certs = kh.make_certs(os.path.join(self.server.root, "certs"))
        try:
            cp = self.assertToldQuickly(["ping"], quiet.addr,
                                        "did not answer within 1 s", 1.5)
            self.assertIn(quiet.addr, cp.stderr)
            self.assertToldQuickly(["--tls-ca", certs["ca"], "ping"],
                                   quiet.addr,
                                   "did not answer the TLS handshake", 1.5)
            self.assertToldQuickly(["topic", "list"], noise.addr,
                                   'does not speak the kappa protocol (it '
                                   'answered "garbage\\x0d\\x0a")', 0.5)
            self.assertToldQuickly(["ping"], gone.addr,
                                   "closed the connection without "
                                   "answering", 0.5)
        finally:
            quiet.close()
            noise.close()
            gone.close()

    def test_tokens_tls_and_long_requests(self):
        certs = kh.make_certs(os.path.join(self.server.root, "certs2"))
        s = self.new_server(tokens={ADMIN: "admin"}, tls=dict(certs))
        # With a token (auth is the first exchange) and TLS, the HTTPS
        # port is told apart as well.
        self.assertToldQuickly(["--tls-ca", certs["ca"], "ping"],
                               "127.0.0.1:%d" % s.http_port,
                               "answered like an HTTP server", 0.5)
        r = kh.run_ctl(["--tls-ca", certs["ca"], "ping"],
                       addr="127.0.0.1:%d" % s.http_port,
                       env={"KAPPA_TOKEN": ADMIN})
        self.assertCtlFails(r, "answered like an HTTP server")
        # The 1 s limit is for the first exchange only: a follow that
        # waits 2.5 s for its record still gets it.
        self.assertCtlOk(s.ctl("topic", "create", "t"))
        p = s.ctl_popen(*(s.tls_args() + ["consume", "t", "--follow",
                                           "--count", "1"]),
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True)
        time.sleep(2.5)
        self.assertCtlOk(s.ctl("produce", "t", input='{"late":true}\n'))
        out, err = p.communicate(timeout=30 * kh.SLOW)
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual([r["value"] for r in kh.json_lines(out)],
                         [{"late": True}])
        # A plain client at the TLS port is told within a second too.
        cp, took = self.timed_ctl(["ping"], s.addr)
        self.assertCtlFails(cp, "--tls-ca")
        self.assertLess(took, 1.0 * kh.SLOW + 0.8, cp.stderr)


if __name__ == "__main__":
    kh.main()
