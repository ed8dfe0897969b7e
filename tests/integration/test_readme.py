#!/usr/bin/env python3
"""
test_readme.py - the README's "Using it" section runs as written (issue
14): every ```sh block in it, in order, from the clone's root, against a
kappad of this test's own. The only changes made to the text are the
addresses (the README's 127.0.0.1:7070 and :7071 become this server's
free ports) and build/ (the build under test). A command that fails fails
the test, naming it.
"""

import os
import re
import shutil
import subprocess

import kappa_harness as kh

README = os.path.join(kh.REPO, "README.md")


def using_it_blocks(text):
    """The ```sh blocks between "## Using it" and the next "## " heading."""
    start = text.index("\n## Using it\n")
    end = text.find("\n## ", start + 1)
    section = text[start:end if end >= 0 else len(text)]
    return re.findall(r"\n```sh\n(.*?)\n```", section, re.S)


class ReadmeTest(kh.ServerTest):
    class_server = False

    def test_using_it_runs_as_written(self):
        with open(README) as f:
            blocks = using_it_blocks(f.read())
        self.assertGreaterEqual(len(blocks), 2)
        s = self.new_server()
        build = os.path.dirname(kh.KAPPACTL)
        env = dict(os.environ)
        env.pop("KAPPA_TOKEN", None)
        env.pop("KAPPA_ADDR", None)
        if shutil.which("curl") is None:
            self.skipTest("curl is not installed (the README uses it)")
        transcript = ""
        for n, block in enumerate(blocks, 1):
            script = (block.replace("127.0.0.1:7070", s.addr)
                      .replace("127.0.0.1:7071", "127.0.0.1:%d" % s.http_port)
                      .replace("build/", build + "/"))
            if "KAPPA_ADDR" not in script:
                script = "export KAPPA_ADDR=%s\n%s" % (s.addr, script)
            r = subprocess.run(["sh", "-e", "-x", "-c", script], cwd=kh.REPO,
                               env=env, capture_output=True, text=True,
                               timeout=120 * kh.SLOW)
            transcript += r.stdout
            trace = [line for line in r.stderr.splitlines()
                     if line.startswith("+ ")]
            self.assertEqual(r.returncode, 0,
                             "block %d stopped at %s\n%s" %
                             (n, trace[-1] if trace else "(start)",
                              r.stderr[-3000:]))
        # What the comments promise shows in the output.
        self.assertIn('{"acked":2}', transcript)
        self.assertIn("kappa_log_end_offset", transcript)
        self.assertIn("identical", transcript)
        lines = [ln for ln in transcript.splitlines() if ln.strip()]
        # The offline pipeline (wordcount | top --view) ends with top's view.
        self.assertTrue(lines[-1].startswith('{"view":'), lines[-1])
        self.assertIn('"top":{', lines[-1].replace(" ", ""))


if __name__ == "__main__":
    kh.main()
