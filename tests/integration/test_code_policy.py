#!/usr/bin/env python3
"""
test_code_policy.py - what code kappad loads (issue 13, "Code loading"):
native .so plugins only with native_plugins = on (off by default, also for
a processor restored at restart), and with tokens configured, code only
from processors_dir (default data/processors; "any" opts out), checked
after following symlinks, for create, reload and replay alike.
"""

import os
import shutil

import kappa_harness as kh

ADMIN = "adm-fedcba9876543210"


def copies(server):
    root = os.path.join(server.data, "code")
    return [f for _, _, files in os.walk(root) for f in files]


class NativePluginsTest(kh.ServerTest):
    class_server = False

    def test_off_by_default(self):
        s = self.new_server({"native_plugins": None})
        so = os.path.abspath(kh.test_plugin("count_by_user"))
        with s.client() as c:
            c.ok("topic_create", topic="in")
            r = c.call("proc_create", name="c", file=so, inputs=["in"])
            self.assertEqual(r.get("error"), "FORBIDDEN", r)
            self.assertIn("native .so plugins are off", r["message"])
            self.assertIn("native_plugins = on", r["message"])
            self.assertEqual(c.ok("proc_list")["procs"], [])
            # Lua is not affected.
            c.ok("proc_create", name="l", file=kh.fixture("iso_count.lua"),
                 inputs=["in"])
        self.assertEqual(len(copies(s)), 1, copies(s))

    def test_restart_with_plugins_off_fails_the_processor(self):
        s = self.new_server()
        so = os.path.abspath(kh.test_plugin("count_by_user"))
        with s.client() as c:
            c.ok("topic_create", topic="in")
            c.ok("proc_create", name="c", file=so, inputs=["in"])
        kh.wait_proc(s, "c", lambda st: st["state"] == "running")
        s.stop_ok(self)
        with open(s.config_path, "a") as f:
            f.write("native_plugins = off\n")
        s.start()
        st = kh.wait_proc(s, "c", lambda st: st["state"] == "failed")
        self.assertIn("native .so plugins are off", st["reason"])


class NotAProcessorTest(kh.ServerTest):
    """A file that is not Lua is refused without quoting it, unless every
    user may read it anyway (then the parser's message helps its author)."""
    class_server = False

    def test_private_file_is_not_quoted(self):
        s = self.new_server()
        d = os.path.join(s.root, "src")
        os.makedirs(d)
        secret = os.path.join(d, "secret.lua")
        with open(secret, "w") as f:
            f.write("hunter2 ok\nroot:$y$j9T$SECRETHASH:19000:0:99999:7:::\n")
        link = os.path.join(d, "evil.lua")
        os.symlink(secret, link)
        with s.client() as c:
            c.ok("topic_create", topic="in")
            for path in (secret, link):
                os.chmod(secret, 0o600)
                r = c.call("proc_create", name="p", file=path, inputs=["in"])
                self.assertFalse(r.get("ok"), r)
                self.assertIn("not a Lua processor", r["message"])
                self.assertIn("(line 1)", r["message"])
                for word in ("hunter2", "SECRETHASH", "root", "near"):
                    self.assertNotIn(word, r["message"])
                self.assertIn(path, r["message"])
            os.chmod(secret, 0o644)
            r = c.call("proc_create", name="p", file=secret, inputs=["in"])
            self.assertIn("secret.lua:1:", r["message"])
            self.assertIn("near", r["message"])
            self.assertEqual(c.ok("proc_list")["procs"], [])
        self.assertEqual(copies(s), [])


class ProcessorsDirTest(kh.ServerTest):
    class_server = False

    def setUp(self):
        self.s = self.new_server(tokens={ADMIN: "admin"})
        self.inside = os.path.join(self.s.data, "processors")
        self.assertTrue(os.path.isdir(self.inside),
                        "processors_dir is created at start")
        with self.s.client() as c:
            c.ok("topic_create", topic="in")

    def put(self, directory, name, fixture="iso_count.lua"):
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, name)
        shutil.copyfile(kh.fixture(fixture), path)
        return path

    def test_only_code_in_processors_dir(self):
        outside = self.put(os.path.join(self.s.root, "elsewhere"), "o.lua")
        inside = self.put(self.inside, "i.lua")
        link = os.path.join(self.inside, "sneaky.lua")
        os.symlink(outside, link)
        dotdot = os.path.join(self.inside, "..", "..", "elsewhere", "o.lua")
        with self.s.client() as c:
            for path in (outside, link, dotdot):
                r = c.call("proc_create", name="p", file=path, inputs=["in"])
                self.assertEqual(r.get("error"), "FORBIDDEN", (path, r))
                self.assertIn("not in processors_dir", r["message"])
                self.assertIn(path, r["message"])
            self.assertEqual(copies(self.s), [])
            c.ok("proc_create", name="p", file=inside, inputs=["in"])
            for op, extra in (("proc_reload", {}), ("proc_replay", {})):
                r = c.call(op, name="p", file=outside, **extra)
                self.assertEqual(r.get("error"), "FORBIDDEN", (op, r))
                self.assertIn("not in processors_dir", r["message"])
            c.ok("proc_reload", name="p", file=inside)
        st = kh.wait_proc(self.s, "p", lambda st: st["state"] == "running")
        self.assertEqual(st["version"], 1)


class ProcessorsDirAnyTest(kh.ServerTest):
    class_server = False

    def test_any_opts_out(self):
        s = self.new_server({"processors_dir": "any"},
                            tokens={ADMIN: "admin"})
        with s.client() as c:
            c.ok("topic_create", topic="in")
            c.ok("proc_create", name="p", file=kh.fixture("iso_count.lua"),
                 inputs=["in"])

    def test_single_user_mode_reads_anywhere(self):
        s = self.new_server()
        with s.client() as c:
            c.ok("topic_create", topic="in")
            c.ok("proc_create", name="p", file=kh.fixture("iso_count.lua"),
                 inputs=["in"])


if __name__ == "__main__":
    kh.main()
