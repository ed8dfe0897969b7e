#!/usr/bin/env python3
"""
test_auth.py - authentication and roles (issue 13): with an
auth_tokens_file, nothing but "auth" works before a valid token; each
operation needs its role (read < write < admin) and a refusal names it;
moving a group's offset back is a reset (admin); kappactl authenticates
with --token-file or KAPPA_TOKEN; the tokens file must be private; a
listener other machines can reach needs tokens and TLS; past
max_connections a few connections are kept for admins. Without tokens
(single-user mode) kappad says at start that any local user is admin.
"""

import os
import socket
import subprocess
import time

import kappa_harness as kh

TOKENS = {"adm-0123456789abcdef": "admin",
          "wri-0123456789abcdef": "write",
          "rea-0123456789abcdef": "read"}
ADMIN, WRITER, READER = list(TOKENS)

# Every operation, with fields that make it do (or try) something real,
# and the least role it needs.
OPS = [
    ("ping", {}, "read"),
    ("fetch", {"topic": "t", "partition": 0, "offset": 0}, "read"),
    ("list_offsets", {"topic": "t", "at": "latest"}, "read"),
    ("topic_list", {}, "read"),
    ("topic_describe", {"topic": "t"}, "read"),
    ("group_commit", {"group": "g", "offsets": [
        {"topic": "t", "partition": 0, "offset": 1}]}, "read"),
    ("group_fetch", {"group": "g"}, "read"),
    ("group_list", {}, "read"),
    ("proc_list", {}, "read"),
    ("proc_status", {"name": "nope"}, "read"),
    ("proc_versions", {"name": "nope"}, "read"),
    ("proc_graph", {}, "read"),
    ("view_get", {"name": "nope", "key": "k"}, "read"),
    ("view_scan", {"name": "nope"}, "read"),
    ("produce", {"topic": "t", "partition": 0,
                 "records": [{"value": 1}]}, "write"),
    ("topic_create", {"topic": "scratch"}, "admin"),
    ("topic_delete", {"topic": "no-such-topic"}, "admin"),
    ("group_delete", {"group": "no-such-group"}, "admin"),
    ("proc_create", {"name": "p", "source": "/nonexistent.lua",
                     "inputs": ["t"]}, "admin"),
    ("proc_pause", {"name": "nope"}, "admin"),
    ("proc_resume", {"name": "nope"}, "admin"),
    ("proc_delete", {"name": "nope"}, "admin"),
    ("proc_reload", {"name": "nope"}, "admin"),
    ("proc_replay", {"name": "nope", "source": "/nonexistent.lua"}, "admin"),
    ("proc_rollback", {"name": "nope"}, "admin"),
    ("proc_gc", {"name": "nope"}, "admin"),
    ("proc_reset", {"name": "nope"}, "admin"),
    ("proc_verify", {"name": "nope"}, "admin"),
]
RANK = {"none": 0, "read": 1, "write": 2, "admin": 3}


class AuthTest(kh.ServerTest):
    class_server = False

    def auth_server(self, config=None, start=True):
        s = self.new_server(config, start=start, tokens=TOKENS)
        if start:
            with s.client() as c:
                c.ok("topic_create", topic="t", partitions=1)
        return s

    def test_nothing_without_a_token(self):
        s = self.auth_server()
        with kh.Client(s.port) as c:
            for op, fields, _ in OPS:
                r = c.call(op, **fields)
                self.assertEqual(r.get("error"), "UNAUTHORIZED", (op, r))
                self.assertIn('"op":"auth"', r["message"])
            r = c.call("auth", token="wrong")
            self.assertEqual(r.get("error"), "UNAUTHORIZED", r)
            self.assertNotIn("wrong", r["message"])
            self.assertEqual(c.call("ping").get("error"), "UNAUTHORIZED")
            # Nothing was done: the topic holds no record.
            r = c.call("auth", token=READER)
            self.assertEqual((r.get("ok"), r.get("role"), r.get("mode")),
                             (True, "read", "tokens"), r)
            c.ok("list_offsets", topic="t", at="latest")
        self.assertEqual(self.end_offset(s), 0)
        self.assertGreaterEqual(s.metric("kappa_auth_failures_total"), 1)

    def end_offset(self, s):
        with s.client() as c:
            d = c.ok("topic_describe", topic="t")
        return d["topic"]["partition_stats"][0]["end_offset"]

    def test_every_op_checks_its_role(self):
        s = self.auth_server()
        for token in (READER, WRITER, ADMIN):
            role = TOKENS[token]
            with s.client(token=token) as c:
                for op, fields, need in OPS:
                    r = c.call(op, **fields)
                    if RANK[role] >= RANK[need]:
                        self.assertNotIn(r.get("error"),
                                         ("FORBIDDEN", "UNAUTHORIZED"),
                                         (role, op, r))
                    else:
                        self.assertEqual(r.get("error"), "FORBIDDEN",
                                         (role, op, r))
                        self.assertIn("'%s' needs the %s role" % (op, need),
                                      r["message"])
                        self.assertIn("has %s" % role, r["message"])
        # The writer's one produce landed; the reader's did not.
        self.assertEqual(self.end_offset(s), 2)
        self.assertGreaterEqual(s.metric("kappa_requests_forbidden_total"), 1)

    def test_moving_a_group_back_needs_admin(self):
        s = self.auth_server()
        with s.client() as c:
            c.produce("t", list(range(10)))
        with s.client(token=READER) as c:
            def commit(off):
                return c.call("group_commit", group="g", offsets=[
                    {"topic": "t", "partition": 0, "offset": off}])
            self.assertTrue(commit(3).get("ok"))
            self.assertTrue(commit(7).get("ok"))
            self.assertTrue(commit(7).get("ok"))
            r = commit(2)
            self.assertEqual(r.get("error"), "FORBIDDEN", r)
            self.assertIn("needs the admin role", r["message"])
            self.assertIn("from 7 to 2", r["message"])
        reader_env = {"KAPPA_TOKEN": READER}
        r = s.ctl("group", "reset", "g", "t", "--to", "earliest",
                  "--execute", env=reader_env)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("FORBIDDEN", r.stderr)
        r = s.ctl("group", "reset", "g", "t", "--to", "earliest",
                  "--execute")
        self.assertEqual(r.returncode, 0, r.stderr)
        with s.client(token=READER) as c:
            got = c.ok("group_fetch", group="g")
        self.assertEqual([o["offset"] for o in got["offsets"]], [0])

    def test_kappactl_tokens(self):
        s = self.auth_server()
        r = s.ctl("topic", "list", env={"KAPPA_TOKEN": ""})
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("UNAUTHORIZED", r.stderr)
        self.assertIn("--token-file", r.stderr)
        r = s.ctl("topic", "list", env={"KAPPA_TOKEN": "not-a-token"})
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("authentication failed: UNAUTHORIZED", r.stderr)
        self.assertNotIn("not-a-token", r.stderr)
        tf = os.path.join(s.root, "my-token")
        with open(tf, "w") as f:
            f.write(WRITER + "\n")
        for args in (["--token-file", tf, "produce", "t"],
                     ["produce", "t", "--token-file", tf],
                     ["produce", "t", "--token-file=" + tf]):
            r = s.ctl(*args, input='{"a":1}\n', env={"KAPPA_TOKEN": ""})
            self.assertEqual(r.returncode, 0, (args, r.stderr))
            self.assertEqual(kh.json_lines(r.stdout), [{"acked": 1}])
        r = s.ctl("--token-file", tf, "topic", "delete", "t",
                  env={"KAPPA_TOKEN": ""})
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("FORBIDDEN", r.stderr)
        self.assertIn("needs the admin role", r.stderr)
        r = s.ctl("--token-file", os.path.join(s.root, "absent"), "ping")
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("--token-file", r.stderr)
        r = s.ctl("topic", "list", env={"KAPPA_TOKEN": READER})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([t["name"] for t in kh.json_lines(r.stdout)], ["t"])

    def test_tokens_file_must_be_private(self):
        s = self.auth_server(start=False)
        path = os.path.join(s.root, "tokens")
        for mode in (0o644, 0o604, 0o620):
            os.chmod(path, mode)
            p = subprocess.run([kh.KAPPAD, "--data", s.data, "--listen",
                                s.addr, "--http", "off", "--config",
                                s.config_path], capture_output=True,
                               text=True, timeout=20 * kh.SLOW)
            self.assertNotEqual(p.returncode, 0, mode)
            out = p.stdout + p.stderr
            self.assertIn("chmod 600", out)
            for tok in TOKENS:
                self.assertNotIn(tok, out)
        os.chmod(path, 0o600)
        with open(path, "a") as f:
            f.write("just-one-word\n")
        p = subprocess.run([kh.KAPPAD, "--data", s.data, "--listen", s.addr,
                            "--http", "off", "--config", s.config_path],
                           capture_output=True, text=True,
                           timeout=20 * kh.SLOW)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("tokens:4: expected 'TOKEN ROLE'", p.stdout + p.stderr)
        self.assertNotIn("just-one-word", p.stdout + p.stderr)

    def run_kappad(self, *args):
        s = self.new_server(start=False)
        return subprocess.run([kh.KAPPAD, "--data", s.data] + list(args),
                              capture_output=True, text=True,
                              timeout=20 * kh.SLOW)

    def test_exposed_listener_needs_tokens_and_tls(self):
        port = kh.free_port()
        for args in (["--listen", "0.0.0.0:%d" % port, "--http", "off"],
                     ["--listen", "[::]:%d" % port, "--http", "off"]):
            p = self.run_kappad(*args)
            self.assertEqual(p.returncode, 1, (args, p.stdout, p.stderr))
            out = p.stdout + p.stderr
            self.assertIn("reachable from other machines", out)
            self.assertIn("auth_tokens_file", out)
            self.assertIn("tls_cert", out)
        p = self.run_kappad("--listen", "127.0.0.1:%d" % port,
                            "--http", "0.0.0.0:%d" % kh.free_port())
        self.assertEqual(p.returncode, 1, (p.stdout, p.stderr))
        self.assertIn("reachable from other machines", p.stdout + p.stderr)
        self.assertIn("keep --http on 127.0.0.1", p.stdout + p.stderr)
        # Nothing listens there now.
        with socket.socket() as sk:
            self.assertNotEqual(sk.connect_ex(("127.0.0.1", port)), 0)

    def test_single_user_mode_says_so(self):
        s = self.new_server()
        with s.client() as c:
            r = c.ok("auth", token="anything")
            self.assertEqual((r["role"], r["mode"]), ("admin", "single-user"))
            c.ok("topic_create", topic="x")
        with open(s.log_path) as f:
            log = f.read()
        self.assertIn("single-user mode", log)
        self.assertIn("any local user can administer", log)

    def test_connections_past_the_cap_are_for_admins(self):
        s = self.auth_server({"max_connections": 3})
        held = [s.client(token=READER) for _ in range(3)]
        for c in held:
            self.addCleanup(c.close)
        # Past the cap, a reader is turned away even with a valid token...
        late = kh.Client(s.port)
        self.addCleanup(late.close)
        r = late.call("auth", token=READER)
        self.assertEqual(r.get("error"), "TOO_MANY_CONNECTIONS", r)
        self.assertIn("kept for admins", r["message"])
        self.assertTrue(late.is_closed())
        late = kh.Client(s.port)
        self.addCleanup(late.close)
        r = late.call("ping")
        self.assertEqual(r.get("error"), "TOO_MANY_CONNECTIONS", r)
        self.assertTrue(late.is_closed())
        # ... while an admin still gets in, and works.
        adm = s.client(token=ADMIN)
        self.addCleanup(adm.close)
        adm.ok("topic_create", topic="made-past-the-cap")
        for c in held:
            c.ok("ping")


    def http(self, s, path, token=None):
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", s.http_port,
                                          timeout=10 * kh.SLOW)
        try:
            headers = {"Authorization": "Bearer " + token} if token else {}
            conn.request("GET", path, headers=headers)
            r = conn.getresponse()
            return r.status, dict(r.getheaders()), r.read().decode()
        finally:
            conn.close()

    def test_http_needs_a_read_token_for_state(self):
        s = self.auth_server()
        for path in ("/metrics", "/health", "/"):
            self.assertEqual(self.http(s, path)[0], 200, path)
        status, headers, body = self.http(s, "/api/state")
        self.assertEqual(status, 401)
        self.assertEqual(headers.get("WWW-Authenticate"), "Bearer")
        self.assertIn("read token", body)
        self.assertNotIn('"topics"', body)
        status, headers, _ = self.http(s, "/api/state", token="nope")
        self.assertEqual(status, 401)
        self.assertIn("invalid_token", headers.get("WWW-Authenticate"))
        status, _, body = self.http(s, "/api/state", token=READER)
        self.assertEqual(status, 200)
        self.assertIn("t", [t["name"] for t in __import__("json").loads(
            body)["topics"]])

    def test_http_metrics_closed_on_request(self):
        s = self.auth_server({"http_open_metrics": "false"})
        for path in ("/metrics", "/health", "/api/state"):
            self.assertEqual(self.http(s, path)[0], 401, path)
            self.assertEqual(self.http(s, path, token=READER)[0], 200, path)
        self.assertEqual(self.http(s, "/")[0], 200)


if __name__ == "__main__":
    kh.main()
