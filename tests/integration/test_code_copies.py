#!/usr/bin/env python3
"""
test_code_copies.py - the copies kappad keeps of processor code (part of
issue 13, "Code loading"): written 0600 in a 0700 directory, whatever the
source file's mode; a create or reload that fails leaves no copy behind
(PROTOCOL.md: "nothing of the processor remains"); a delete removes the
copies once no version of any processor runs that code.
"""

import os
import shutil
import stat

import kappa_harness as kh


def copies(server):
    """Every file under data/code, relative, with its mode."""
    root = os.path.join(server.data, "code")
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            out[os.path.relpath(p, root)] = stat.S_IMODE(os.stat(p).st_mode)
    return out


class CodeCopiesTest(kh.ServerTest):
    class_server = False

    def setUp(self):
        self.s = self.new_server()
        with self.s.client() as c:
            c.ok("topic_create", topic="in")
        self.dir = os.path.join(self.s.root, "src")
        os.makedirs(self.dir, exist_ok=True)

    def source(self, name, fixture, mode=0o600):
        path = os.path.join(self.dir, name)
        shutil.copyfile(kh.fixture(fixture), path)
        os.chmod(path, mode)
        return path

    def create(self, name, path):
        with self.s.client() as c:
            return c.call("proc_create", name=name, file=path, inputs=["in"])

    def test_copies_are_private(self):
        self.assertTrue(self.create("a", self.source("a.lua", "iso_count.lua",
                                                     0o644))["ok"])
        self.assertTrue(self.create("b", os.path.abspath(
            kh.test_plugin("count_by_user")))["ok"])
        got = copies(self.s)
        self.assertEqual(len(got), 2, got)
        for f, mode in got.items():
            self.assertEqual(mode, 0o600, "%s is %o" % (f, mode))
        root = os.path.join(self.s.data, "code")
        for d, dirs, _ in os.walk(root):
            self.assertEqual(stat.S_IMODE(os.stat(d).st_mode), 0o700, d)

    def test_failed_create_leaves_nothing(self):
        r = self.create("bad", self.source("bad.lua", "syntax_error.lua"))
        self.assertFalse(r["ok"], r)
        self.assertEqual(copies(self.s), {})
        r = self.create("raises", self.source("r.lua", "init_raises.lua"))
        self.assertFalse(r["ok"], r)
        self.assertEqual(copies(self.s), {})

    def test_delete_removes_copies_no_version_needs(self):
        path = self.source("n.lua", "iso_count.lua")
        self.assertTrue(self.create("one", path)["ok"])
        self.assertTrue(self.create("two", path)["ok"])   # the same code
        self.assertEqual(len(copies(self.s)), 1)
        with self.s.client() as c:
            c.ok("proc_delete", name="one")
        self.assertEqual(len(copies(self.s)), 1, "two still runs it")
        with self.s.client() as c:
            c.ok("proc_delete", name="two")
        self.assertEqual(copies(self.s), {})

    def test_failed_reload_leaves_only_the_running_copy(self):
        self.assertTrue(self.create("r", self.source("r.lua",
                                                     "iso_count.lua"))["ok"])
        before = copies(self.s)
        with self.s.client() as c:
            resp = c.call("proc_reload", name="r",
                          file=self.source("broken.lua", "syntax_error.lua"))
        self.assertFalse(resp.get("ok"), resp)
        self.assertEqual(copies(self.s), before)


if __name__ == "__main__":
    kh.main()
