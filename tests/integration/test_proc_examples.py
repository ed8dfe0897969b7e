#!/usr/bin/env python3
"""
test_proc_examples.py - the example processors through the offline runner
(`kappactl run`), checked against the same logic written in Python:
wordcount, sessions, orders (one failing record) and the C topk plugin.
"""

import collections
import json
import os
import re
import unittest

import kappa_harness as kh

EXAMPLES = os.path.join(kh.REPO, "examples")


def data(name):
    return os.path.join(EXAMPLES, "data", name)


def lua(name):
    return os.path.join(EXAMPLES, "lua", name)


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class ExamplesTest(unittest.TestCase):

    def run_ok(self, *args):
        cp = kh.run_ctl(list(args))
        self.assertEqual(cp.returncode, 0, cp.stderr)
        return kh.json_lines(cp.stdout)

    def test_wordcount(self):
        want = collections.Counter()
        emits = []
        for v in read_jsonl(data("lines.jsonl")):
            for w in re.findall(r"[A-Za-z0-9']+", v["text"].lower()):
                want[w] += 1
                emits.append({"topic": "word-counts", "ts": 0, "key": w,
                              "value": {"word": w, "count": want[w]}})
        # --view: the emitted records, then the view as the last line.
        view = self.run_ok("run", lua("wordcount.lua"), "--input",
                           data("lines.jsonl"), "--view")
        self.assertEqual(view, emits + [{"view": dict(want)}])
        self.assertEqual(self.run_ok("run", lua("wordcount.lua"), "--input",
                                     data("lines.jsonl")), emits)

    def test_sessions(self):
        gap = 60000
        clicks = read_jsonl(data("clicks.jsonl"))
        open_s, want, totals, last_page = {}, [], collections.Counter(), {}
        for c in clicks:
            u, ts = c["user"], c["ts"]
            s = open_s.get(u)
            if s is not None and ts - s["last"] > gap:
                want.append({"topic": "sessions", "ts": ts, "key": u,
                             "value": {"user": u, "start": s["start"],
                                       "end": s["last"],
                                       "clicks": s["count"]}})
                totals[u] += 1
                s = None
            if s is None:
                s = {"start": ts, "last": ts, "count": 1}
            else:
                s["start"] = min(s["start"], ts)
                s["last"] = max(s["last"], ts)
                s["count"] += 1
            open_s[u] = s
            last_page[u] = c["page"]
        self.assertGreater(len(want), 0, "the sample data has no session gap")
        args = ["run", lua("sessions.lua"), "--input", data("clicks.jsonl"),
                "--ts-field", "ts", "--config", '{"gap_ms":%d}' % gap]
        self.assertEqual(self.run_ok(*args), want)
        lines = self.run_ok(*(args + ["--view"]))
        self.assertEqual(lines[:-1], want)
        view = lines[-1]["view"]
        for u, s in open_s.items():
            self.assertEqual(view["session:" + u], s, u)
            self.assertEqual(view["last_page:" + u], last_page[u])
        self.assertEqual({k[len("totals:"):]: v for k, v in view.items()
                          if k.startswith("totals:")}, dict(totals))
        # Every click is in exactly one session (closed or open).
        self.assertEqual(sum(w["value"]["clicks"] for w in want) +
                         sum(s["count"] for s in open_s.values()),
                         len(clicks))

    def test_orders(self):
        allowed = {"created": (None,), "paid": ("created",),
                   "shipped": ("paid",), "cancelled": ("created", "paid")}
        orders, counts, emits, failing = {}, collections.Counter(), [], []
        for n, ev in enumerate(read_jsonl(data("orders.jsonl")), 1):
            oid, kind = ev["order"], ev["type"]
            cur = orders.get(oid, {}).get("status")
            if cur not in allowed[kind]:
                failing.append((n, oid, cur, kind))
                continue
            o = orders.get(oid) or {"id": oid, "items": ev.get("items"),
                                    "total": ev.get("total")}
            o = {k: v for k, v in o.items() if v is not None}
            o["status"] = kind
            o["updated"] = ev["ts"]
            orders[oid] = o
            counts["count:" + kind] += 1
            if cur:
                counts["count:" + cur] -= 1
            emits.append({"topic": "order-status", "ts": ev["ts"], "key": oid,
                          "value": {"order": oid, "status": kind,
                                    "ts": ev["ts"]}})
        self.assertEqual(len(failing), 1, failing)
        line, oid, cur, kind = failing[0]

        args = ["run", lua("orders.lua"), "--input", data("orders.jsonl"),
                "--ts-field", "ts"]
        cp = kh.run_ctl(args + ["--view"])
        self.assertEqual(cp.returncode, 1, cp.stderr)
        err = cp.stderr.splitlines()
        self.assertEqual(len(err), 1, cp.stderr)
        self.assertIn("line %d" % line, err[0])
        self.assertIn("order %s: cannot go from %s to %s"
                      % (oid, cur, kind), err[0])
        self.assertIn("orders.lua:", err[0])
        lines = kh.json_lines(cp.stdout)
        self.assertEqual(lines[:-1], emits)
        view = lines[-1]["view"]
        self.assertEqual({k: v for k, v in view.items()
                          if not k.startswith("count:")}, orders)
        self.assertEqual({k: v for k, v in view.items()
                          if k.startswith("count:")},
                         {k: v for k, v in counts.items()})

        cp = kh.run_ctl(args)
        self.assertEqual(cp.returncode, 1, cp.stderr)
        self.assertEqual(len(cp.stderr.splitlines()), 1, cp.stderr)
        self.assertEqual(kh.json_lines(cp.stdout), emits)

    def test_topk(self):
        so = kh.example_plugin("topk")
        self.assertTrue(os.path.exists(so), so)
        counts = collections.Counter()
        emits = []
        for c in read_jsonl(data("clicks.jsonl")):
            u = c["user"]
            counts[u] += 1
            if counts[u] in (10, 50):
                emits.append({"topic": "topk", "ts": 0, "key": u,
                              "value": {"count": counts[u], "key": u,
                                        "threshold": counts[u]}})
        args = ["run", so, "--input", data("clicks.jsonl"),
                "--config", '{"thresholds":[10,50]}']
        self.assertEqual(self.run_ok(*args), emits)
        self.assertEqual(self.run_ok(*(args + ["--view"])),
                         emits + [{"view": dict(counts)}])
        # A bad config is refused by init: non-zero exit, one line.
        cp = kh.run_ctl(["run", so, "--input", data("clicks.jsonl"),
                         "--config", '{"thresholds":[]}'])
        self.assertNotEqual(cp.returncode, 0)
        self.assertIn("config", cp.stderr)


if __name__ == "__main__":
    kh.main()
