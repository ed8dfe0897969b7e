"""
test_groups.py - consumer groups through kappactl: consume --group commits
and resumes, group list/describe show offsets and lag, group reset prints a
plan and changes offsets only with --execute.
"""

import json

import kappa_harness as kh

BASE_TS = 1704067200000   # 2024-01-01T00:00:00Z


class Groups(kh.ServerTest):

    def setUp(self):
        self.topic = kh.unique("g")
        self.assertCtlOk(self.server.ctl("topic", "create", self.topic))
        self.produce(self.topic, 100)

    def produce(self, topic, n, *args, first=0):
        text = "".join(json.dumps({"n": i, "t": BASE_TS + i * 1000}) + "\n"
                       for i in range(first, first + n))
        cp = self.server.ctl("produce", topic, "--ts-field", "t", *args,
                             input=text)
        self.assertCtlOk(cp)

    def ctl_lines(self, *args):
        cp = self.server.ctl(*args)
        self.assertCtlOk(cp)
        return kh.json_lines(cp.stdout)

    def consumed(self, *args):
        return [r["offset"] for r in self.ctl_lines("consume", self.topic, *args)]

    def describe(self, group):
        """{(topic, partition): line} from group describe, for our topic."""
        out = {}
        for line in self.ctl_lines("group", "describe", group):
            if line.get("topic") == self.topic:
                self.assertEqual(line.get("group"), group)
                out[(line["topic"], line["partition"])] = line
        return out

    def offset_of(self, group, partition=0):
        line = self.describe(group)[(self.topic, partition)]
        return line["offset"]

    def test_group_resumes_where_it_stopped(self):
        g = kh.unique("grp")
        self.assertEqual(self.consumed("--group", g, "--count", "30"),
                         list(range(30)))
        d = self.describe(g)[(self.topic, 0)]
        self.assertEqual((d["offset"], d["end_offset"], d["lag"]), (30, 100, 70))
        self.assertEqual(self.consumed("--group", g, "--count", "30"),
                         list(range(30, 60)))
        self.assertEqual(self.consumed("--group", g), list(range(60, 100)))
        d = self.describe(g)[(self.topic, 0)]
        self.assertEqual((d["offset"], d["end_offset"], d["lag"]), (100, 100, 0))
        self.assertEqual(self.consumed("--group", g), [])
        # New records: lag grows, the group reads only those.
        self.produce(self.topic, 5, first=100)
        self.assertEqual(self.describe(g)[(self.topic, 0)]["lag"], 5)
        self.assertEqual(self.consumed("--group", g), list(range(100, 105)))
        # --from overrides the committed position; the group follows it.
        self.assertEqual(self.consumed("--group", g, "--from", "95", "--count", "2"),
                         [95, 96])
        self.assertEqual(self.offset_of(g), 97)
        # Consuming without a group touches no group.
        self.consumed()
        self.assertEqual(self.offset_of(g), 97)

    def test_group_list(self):
        g1, g2 = kh.unique("gl"), kh.unique("gl")
        self.consumed("--group", g1, "--count", "1")
        self.consumed("--group", g2, "--count", "1")
        names = [line["group"] for line in self.ctl_lines("group", "list")]
        self.assertIn(g1, names)
        self.assertIn(g2, names)
        self.assertEqual(names, sorted(names))
        self.assertNotIn(kh.unique("never"), names)

    def test_describe_unknown_group(self):
        cp = self.server.ctl("group", "describe", kh.unique("nobody"))
        # Either nothing to show, or an error line: never a crash.
        if cp.returncode == 0:
            self.assertEqual(kh.json_lines(cp.stdout), [])
        else:
            self.assertCtlFails(cp)

    def test_reset_plan_then_execute(self):
        g = kh.unique("reset")
        self.consumed("--group", g)
        self.assertEqual(self.offset_of(g), 100)

        plan = self.ctl_lines("group", "reset", g, self.topic, "--to", "earliest")
        self.assertEqual(len(plan), 1, plan)
        self.assertEqual((plan[0]["topic"], plan[0]["partition"], plan[0]["current"],
                          plan[0]["new"], plan[0]["executed"]),
                         (self.topic, 0, 100, 0, False))
        self.assertEqual(self.offset_of(g), 100, "a plan changed the offsets")
        self.assertEqual(self.consumed("--group", g), [])

        done = self.ctl_lines("group", "reset", g, self.topic, "--to", "earliest",
                              "--execute")
        self.assertEqual((done[0]["new"], done[0]["executed"]), (0, True))
        d = self.describe(g)[(self.topic, 0)]
        self.assertEqual((d["offset"], d["lag"]), (0, 100))
        self.assertEqual(self.consumed("--group", g, "--count", "5"), [0, 1, 2, 3, 4])

        self.ctl_lines("group", "reset", g, self.topic, "--to", "50", "--execute")
        self.assertEqual(self.offset_of(g), 50)
        self.assertEqual(self.consumed("--group", g, "--count", "1"), [50])

        self.ctl_lines("group", "reset", g, self.topic, "--to",
                       "@%d" % (BASE_TS + 80000), "--execute")
        self.assertEqual(self.offset_of(g), 80)
        self.ctl_lines("group", "reset", g, self.topic, "--to",
                       "@2024-01-01T00:00:20Z", "--execute")
        self.assertEqual(self.offset_of(g), 20)

        self.ctl_lines("group", "reset", g, self.topic, "--to", "latest", "--execute")
        self.assertEqual(self.offset_of(g), 100)
        self.assertEqual(self.consumed("--group", g), [])

        # An offset beyond the end is kept within the log.
        out = self.ctl_lines("group", "reset", g, self.topic, "--to", "5000")
        self.assertEqual(out[0]["new"], 100)

    def test_reset_a_group_that_never_read(self):
        g = kh.unique("fresh")
        plan = self.ctl_lines("group", "reset", g, self.topic, "--to", "10")
        self.assertEqual((plan[0]["current"], plan[0]["new"]), (None, 10))
        self.ctl_lines("group", "reset", g, self.topic, "--to", "10", "--execute")
        self.assertEqual(self.consumed("--group", g, "--count", "2"), [10, 11])

    def test_groups_over_partitions(self):
        topic = kh.unique("gp")
        self.assertCtlOk(self.server.ctl("topic", "create", topic,
                                         "--partitions", "3"))
        text = "".join(json.dumps({"k": "k%d" % (i % 11), "n": i}) + "\n"
                       for i in range(300))
        self.assertCtlOk(self.server.ctl("produce", topic, "--key-field", "k",
                                         input=text))
        g = kh.unique("gpg")
        first = kh.json_lines(self.server.ctl("consume", topic, "--group", g,
                                              "--count", "100").stdout)
        rest = kh.json_lines(self.server.ctl("consume", topic, "--group", g).stdout)
        self.assertEqual(len(first), 100)
        self.assertEqual(len(rest), 200)
        seen = sorted(r["value"]["n"] for r in first + rest)
        self.assertEqual(seen, list(range(300)), "records lost or read twice")
        lines = [ln for ln in self.ctl_lines("group", "describe", g)
                 if ln["topic"] == topic]
        self.assertEqual(sorted(ln["partition"] for ln in lines), [0, 1, 2])
        for ln in lines:
            self.assertEqual(ln["offset"], ln["end_offset"])
            self.assertEqual(ln["lag"], 0)
        self.assertEqual(sum(ln["end_offset"] for ln in lines), 300)
        plan = self.ctl_lines("group", "reset", g, topic, "--to", "earliest",
                              "--execute")
        self.assertEqual(sorted(p["partition"] for p in plan), [0, 1, 2])
        self.assertEqual(len(kh.json_lines(self.server.ctl(
            "consume", topic, "--group", g).stdout)), 300)


if __name__ == "__main__":
    kh.main()
