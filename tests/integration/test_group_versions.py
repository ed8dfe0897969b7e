"""
Consumer groups on a processor's output across a blue/green cut-over that
happens between two runs of the consumer: the group's offsets belong to the
version they were read from, so the new version is read from its start.
"""
import json
import os
import time

import kappa_harness as kh

COPY = 'local M={}\nfunction M.process(ctx, rec) ctx:emit("pout", rec.value) end\nreturn M\n'
TWICE = ('local M={}\nfunction M.process(ctx, rec)\n'
         '  ctx:emit("pout", rec.value)\n  ctx:emit("pout", rec.value)\nend\nreturn M\n')


class GroupAcrossCutOverTest(kh.ServerTest):
    def write(self, name, text):
        path = os.path.join(self.server.root, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def consume(self, *args):
        cp = self.server.ctl("consume", *args)
        self.assertCtlOk(cp)
        return [json.loads(l) for l in cp.stdout.splitlines() if l.strip()]

    def wait_version(self, name, version, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.server.client() as c:
                st = c.ok("proc_status", name=name)["proc"]
            if st["version"] == version and st["replay"] is None:
                return
            time.sleep(0.05)
        self.fail("processor %s never reached version %d" % (name, version))

    def test_group_resumes_new_version_from_its_start(self):
        with self.server.client() as c:
            c.ok("topic_create", topic="pin")
            c.produce("pin", [{"n": i} for i in range(10)])
            c.ok("proc_create", name="p", file=self.write("copy.lua", COPY),
                 inputs=["pin"], outputs=["pout"])
        deadline = time.time() + 30
        while len(self.consume("pout")) < 10 and time.time() < deadline:
            time.sleep(0.05)
        first = self.consume("pout", "--group", "G", "--count", "3")
        self.assertEqual([(r["offset"], r["provenance"]["version"])
                          for r in first], [(0, 1), (1, 1), (2, 1)])
        with self.server.client() as c:
            c.ok("proc_replay", name="p", file=self.write("twice.lua", TWICE))
        self.wait_version("p", 2)
        deadline = time.time() + 30
        while len(self.consume("pout")) < 20 and time.time() < deadline:
            time.sleep(0.05)
        second = self.consume("pout", "--group", "G", "--count", "4")
        self.assertEqual([(r["offset"], r["provenance"]["version"])
                          for r in second], [(0, 2), (1, 2), (2, 2), (3, 2)])
        # The next run goes on where this one stopped, in version 2.
        third = self.consume("pout", "--group", "G", "--count", "2")
        self.assertEqual([r["offset"] for r in third], [4, 5])


if __name__ == "__main__":
    kh.main()
