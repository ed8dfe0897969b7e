"""
test_metrics.py - /metrics and /health as an operator sees them.

/metrics is scraped while records are produced and processed and must
parse under a strict reading of the Prometheus text format 0.0.4: every
line is HELP, TYPE or a sample matching the grammar; a family's HELP and
TYPE come once, before its samples, and its samples are contiguous;
counters end in _total; histogram buckets are cumulative, end in +Inf and
+Inf equals _count; label values are escaped. The numbers follow the log,
the processors and the consumer groups. A paused processor's lag rises
and falls when it resumes, and /health turns 503 (naming it) and back to
200; paused-by-errors, failed processors and a nearly full disk are
reasons too.
"""

import json
import math
import re
import threading
import time

import kappa_harness as kh

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_VALUE = r'(?:[^"\\\n]|\\[\\"n])*'
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="%s"' % LABEL_VALUE
VALUE = r"(?:[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|NaN|[+-]Inf)"
SAMPLE = re.compile(r"^(%s)(?:\{((?:%s)(?:,%s)*)?\})? (%s)(?: -?[0-9]+)?$"
                    % (NAME, LABEL, LABEL, VALUE))
HELP = re.compile(r"^# HELP (%s) (.*)$" % NAME)
TYPE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$"
                  % NAME)
ONE_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="(%s)"' % LABEL_VALUE)
PREFIXES = ("kappa_", "process_", "kafka_consumergroup_")


def unescape(v):
    out, i = [], 0
    while i < len(v):
        if v[i] == "\\":
            out.append({"\\": "\\", '"': '"', "n": "\n"}[v[i + 1]])
            i += 2
        else:
            out.append(v[i])
            i += 1
    return "".join(out)


def family_of(name, types):
    """The family a sample name belongs to (histogram suffixes)."""
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[:-len(suffix)]
        if name.endswith(suffix) and types.get(base) == "histogram":
            return base
    return name


def parse_strict(text, test):
    """Checks the exposition strictly; returns {family: {"type",
    "samples": [(name, labels dict, value)]}}."""
    test.assertTrue(text.endswith("\n"), "body must end with a newline")
    families, types, helps = {}, {}, set()
    current, closed = None, set()
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d: %r" % (n, line)
        test.assertNotEqual(line, "", "empty line at %d" % n)
        if line.startswith("#"):
            m = HELP.match(line)
            if m:
                test.assertNotIn(m.group(1), helps, "second HELP " + where)
                test.assertNotIn(m.group(1), families,
                                 "HELP after samples " + where)
                helps.add(m.group(1))
                continue
            m = TYPE.match(line)
            test.assertIsNotNone(m, "bad comment " + where)
            name, typ = m.groups()
            test.assertNotIn(name, types, "second TYPE " + where)
            test.assertNotIn(name, families, "TYPE after samples " + where)
            test.assertTrue(name.startswith(PREFIXES), "prefix " + where)
            if typ == "counter":
                test.assertTrue(name.endswith("_total"),
                                "counter without _total " + where)
            else:
                test.assertFalse(name.endswith("_total"),
                                 "%s named _total %s" % (typ, where))
            types[name] = typ
            continue
        m = SAMPLE.match(line)
        test.assertIsNotNone(m, "not a sample " + where)
        name, labels_text, value = m.group(1), m.group(2) or "", m.group(3)
        labels = {}
        for k, v in ONE_LABEL.findall(labels_text):
            test.assertNotIn(k, labels, "label twice " + where)
            labels[k] = unescape(v)
        fam = family_of(name, types)
        test.assertIn(fam, types, "sample before its TYPE " + where)
        test.assertIn(fam, helps, "sample without HELP " + where)
        if fam != current:
            test.assertNotIn(fam, closed, "family not contiguous " + where)
            if current is not None:
                closed.add(current)
            current = fam
        entry = families.setdefault(fam, {"type": types[fam], "samples": []})
        key = (name, tuple(sorted(labels.items())))
        test.assertNotIn(key, {(s[0], tuple(sorted(s[1].items())))
                               for s in entry["samples"]},
                         "duplicate series " + where)
        entry["samples"].append((name, labels, float(value)))
    for fam, typ in types.items():
        families.setdefault(fam, {"type": typ, "samples": []})
        if typ == "histogram":
            check_histogram(fam, families[fam]["samples"], test)
    return families


def check_histogram(fam, samples, test):
    series = {}
    for name, labels, value in samples:
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        s = series.setdefault(rest, {"buckets": [], "sum": None,
                                     "count": None})
        if name == fam + "_bucket":
            test.assertIn("le", labels, "bucket without le in " + fam)
            s["buckets"].append((float(labels["le"]), value))
        elif name == fam + "_sum":
            s["sum"] = value
        else:
            test.assertEqual(name, fam + "_count")
            s["count"] = value
    for rest, s in series.items():
        what = "%s%r" % (fam, rest)
        test.assertIsNotNone(s["sum"], "no _sum for " + what)
        test.assertIsNotNone(s["count"], "no _count for " + what)
        les = [le for le, _ in s["buckets"]]
        test.assertEqual(les, sorted(les), "le not ascending in " + what)
        test.assertEqual(les[-1], math.inf, "no +Inf bucket in " + what)
        counts = [c for _, c in s["buckets"]]
        test.assertEqual(counts, sorted(counts), "not cumulative: " + what)
        test.assertEqual(counts[-1], s["count"], "+Inf != _count: " + what)
        test.assertGreaterEqual(s["sum"], 0)


def value(families, fam, name=None, **labels):
    """The value of the one sample of fam whose labels include labels."""
    want = {k: str(v) for k, v in labels.items()}
    found = [v for n, l, v in families.get(fam, {"samples": []})["samples"]
             if (name is None or n == name)
             and all(l.get(k) == v for k, v in want.items())]
    if not found:
        return None
    assert len(found) == 1, (fam, labels, found)
    return found[0]


REQUIRED = {
    "kappa_log_end_offset": "gauge",
    "kappa_log_size_bytes": "gauge",
    "kappa_log_segments": "gauge",
    "kappa_log_records_appended_total": "counter",
    "kappa_log_append_duration_seconds": "histogram",
    "kappa_log_fsync_duration_seconds": "histogram",
    "kappa_producer_duplicates_total": "counter",
    "kappa_processor_records_processed_total": "counter",
    "kappa_processor_errors_total": "counter",
    "kappa_processor_dead_lettered_total": "counter",
    "kappa_processor_lag_records": "gauge",
    "kappa_processor_lag_seconds": "gauge",
    "kappa_processor_input_offset": "gauge",
    "kappa_processor_view_keys": "gauge",
    "kappa_processor_view_bytes": "gauge",
    "kappa_processor_reloads_total": "counter",
    "kappa_processor_replay_records_done": "gauge",
    "kappa_processor_replay_records_remaining": "gauge",
    "kappa_processor_replay_records_per_second": "gauge",
    "kappa_consumergroup_committed_offset": "gauge",
    "kappa_consumergroup_lag": "gauge",
    "kafka_consumergroup_lag": "gauge",
    "kappa_connections": "gauge",
    "kappa_received_bytes_total": "counter",
    "kappa_sent_bytes_total": "counter",
    "kappa_healthy": "gauge",
    "process_resident_memory_bytes": "gauge",
}


class Metrics(kh.ServerTest):

    def scrape(self, server=None):
        status, headers, body = (server or self.server).http_get("/metrics")
        self.assertEqual(status, 200)
        ctype = {k.lower(): v for k, v in headers.items()}["content-type"]
        self.assertIn("version=0.0.4", ctype)
        return parse_strict(body, self)

    def health(self, server):
        status, _, body = server.http_get("/health")
        doc = json.loads(body)
        self.assertEqual(doc["status"], "ok" if status == 200 else "unhealthy")
        self.assertIn(status, (200, 503))
        self.assertEqual(status == 200, doc["reasons"] == [], doc)
        for r in doc["reasons"]:
            self.assertIsInstance(r["kind"], str)
            self.assertIsInstance(r["message"], str)
        return status, doc

    def test_scrape_while_producing_and_processing(self):
        s = self.server
        topic, name = kh.unique("in"), kh.unique("p")
        kh.create_topic(s, topic, partitions=2)
        kh.ctl_json(s, "proc", "create", name, "--file",
                    kh.fixture("config_echo.lua"), "--input", topic)
        stop = threading.Event()
        produced = [0]

        def produce():
            with s.client() as c:
                while not stop.is_set() and produced[0] < 4000:
                    for part in (0, 1):
                        c.produce(topic, [{"i": i} for i in range(50)],
                                  partition=part)
                    produced[0] += 100

        t = threading.Thread(target=produce)
        t.start()
        try:
            scrapes = 0
            while t.is_alive() or scrapes < 3:
                self.scrape()
                scrapes += 1
                time.sleep(0.02)
        finally:
            stop.set()
            t.join()
        st = kh.wait_caught_up(s, name)
        with s.client() as c:
            c.ok("group_commit", group="g-" + name,
                 offsets=[{"topic": topic, "partition": 0, "offset": 10}])
        f = self.scrape()
        for fam, typ in REQUIRED.items():
            self.assertIn(fam, f, "family %s missing" % fam)
            self.assertEqual(f[fam]["type"], typ, fam)
        per_part = produced[0] // 2
        for part in (0, 1):
            lbl = {"topic": topic, "partition": part}
            self.assertEqual(value(f, "kappa_log_end_offset", **lbl), per_part)
            self.assertEqual(value(f, "kappa_log_records_appended_total",
                                   **lbl), per_part)
            self.assertGreater(value(f, "kappa_log_size_bytes", **lbl), 0)
            self.assertEqual(value(f, "kappa_log_append_duration_seconds",
                                   "kappa_log_append_duration_seconds_count",
                                   **lbl), per_part // 50)
            self.assertGreater(value(f, "kappa_log_fsync_duration_seconds",
                                     "kappa_log_fsync_duration_seconds_count",
                                     **lbl), 0)
            self.assertEqual(value(f, "kappa_processor_input_offset",
                                   processor=name, version=1, **lbl),
                             per_part)
        pv = {"processor": name, "version": 1}
        self.assertEqual(value(f, "kappa_processor_records_processed_total",
                               **pv), produced[0])
        self.assertEqual(st["records_processed"], produced[0])
        self.assertEqual(value(f, "kappa_processor_lag_records", **pv), 0)
        self.assertEqual(value(f, "kappa_processor_lag_seconds", **pv), 0)
        self.assertEqual(value(f, "kappa_processor_errors_total", **pv), 0)
        self.assertEqual(value(f, "kappa_processor_view_keys", **pv),
                         st["view_keys"])
        self.assertEqual(value(f, "kappa_processor_version_info", role="live",
                               state="running", **pv), 1)
        g = {"topic": topic, "partition": 0}
        self.assertEqual(value(f, "kappa_consumergroup_committed_offset",
                               group="g-" + name, **g), 10)
        self.assertEqual(value(f, "kappa_consumergroup_lag",
                               group="g-" + name, **g), per_part - 10)
        self.assertEqual(value(f, "kafka_consumergroup_lag",
                               consumergroup="g-" + name, **g), per_part - 10)
        self.assertGreater(value(f, "process_resident_memory_bytes"), 0)
        self.assertGreater(value(f, "kappa_received_bytes_total"), 0)
        self.assertEqual(value(f, "kappa_healthy"), 1)

    def test_duplicates_counted(self):
        topic = kh.unique("dup")
        kh.create_topic(self.server, topic)
        with self.server.client() as c:
            for _ in range(3):
                c.produce(topic, [{"x": 1}], producer_id=77, seq=0)
        f = self.scrape()
        self.assertEqual(value(f, "kappa_producer_duplicates_total",
                               topic=topic, partition=0), 2)
        self.assertEqual(value(f, "kappa_log_end_offset", topic=topic,
                               partition=0), 1)

    def test_lag_rises_when_paused_and_health(self):
        s = self.new_server({"health_lag_records": 20,
                             "health_lag_seconds": 0.5})
        topic, name = kh.unique("in"), kh.unique("lag")
        kh.create_topic(s, topic)
        kh.ctl_json(s, "proc", "create", name, "--file",
                    kh.fixture("config_echo.lua"), "--input", topic)
        base = 1_700_000_000_000
        with s.client() as c:
            c.produce(topic, [{"i": i} for i in range(10)],
                      ts=[base + i for i in range(10)])
        kh.wait_caught_up(s, name)
        self.assertEqual(self.health(s)[0], 200)
        pv = {"processor": name, "version": 1}

        kh.ctl_json(s, "proc", "pause", name)
        # Paused by an operator is not a reason by itself; lag is.
        self.assertEqual(self.health(s)[0], 200)
        with s.client() as c:
            c.produce(topic, [{"i": i} for i in range(100)],
                      ts=[base + 60_000 + i for i in range(100)])
        f = self.scrape(s)
        self.assertEqual(value(f, "kappa_processor_lag_records", **pv), 100)
        # Newest event time minus that of the last processed record.
        self.assertAlmostEqual(value(f, "kappa_processor_lag_seconds", **pv),
                               (60_000 + 99 - 9) / 1000.0)
        self.assertEqual(value(f, "kappa_processor_version_info", role="live",
                               state="paused", **pv), 1)

        def unhealthy():
            status, doc = self.health(s)
            return doc if status == 503 else None

        doc = kh.wait_for(unhealthy, 10, "/health to turn 503")
        lagging = [r for r in doc["reasons"]
                   if r["kind"] == "processor_lagging"]
        self.assertEqual(len(lagging), 1, doc)
        r = lagging[0]
        self.assertEqual((r["processor"], r["version"]), (name, 1))
        self.assertEqual((r["lag_records"], r["threshold_records"]), (100, 20))
        self.assertGreaterEqual(r["over_seconds"], 0.5)
        self.assertIn(name, r["message"])
        self.assertEqual(value(self.scrape(s), "kappa_healthy"), 0)

        kh.ctl_json(s, "proc", "resume", name)
        kh.wait_caught_up(s, name)
        f = self.scrape(s)
        self.assertEqual(value(f, "kappa_processor_lag_records", **pv), 0)
        self.assertEqual(value(f, "kappa_processor_lag_seconds", **pv), 0)
        self.assertEqual(value(f, "kappa_processor_records_processed_total",
                               **pv), 110)
        self.assertEqual(self.health(s), (200, {"status": "ok",
                                                "reasons": []}))
        self.assertEqual(value(self.scrape(s), "kappa_healthy"), 1)
        s.stop_ok(self)

    def test_health_paused_by_errors_and_failed(self):
        s = self.new_server()
        topic, out = kh.unique("in"), kh.unique("counts")
        kh.create_topic(s, topic)
        with s.client() as c:
            c.produce(topic, [{"user": "u", "i": i, "bad": True}
                              for i in range(100)])
        er = kh.unique("er")
        kh.ctl_json(s, "proc", "create", er, "--file",
                    kh.fixture("raise_on_bad.lua"), "--input", topic,
                    "--output", out, "--config", '{"output":"%s"}' % out,
                    "--max-error-rate", "0.1")
        kh.wait_proc(s, er, lambda st: st["state"] == "paused")
        status, doc = self.health(s)
        self.assertEqual(status, 503)
        self.assertEqual([(r["kind"], r["processor"]) for r in doc["reasons"]],
                         [("processor_paused", er)])
        self.assertIn("error rate", doc["reasons"][0]["message"])
        f = self.scrape(s)
        self.assertGreater(value(f, "kappa_processor_errors_total",
                                 processor=er, version=1), 0)
        self.assertEqual(value(f, "kappa_processor_errors_total",
                               processor=er, version=1),
                         value(f, "kappa_processor_dead_lettered_total",
                               processor=er, version=1))
        kh.ctl_json(s, "proc", "delete", er)
        self.assertEqual(self.health(s)[0], 200)

        spin_topic, spin = kh.unique("in"), kh.unique("spin")
        kh.create_topic(s, spin_topic)
        with s.client() as c:
            c.produce(spin_topic, [{"i": 1}, {"spin": True}])
        kh.ctl_json(s, "proc", "create", spin, "--file",
                    kh.fixture("spin.lua"), "--input", spin_topic,
                    "--time-budget-ms", "300")
        kh.wait_proc(s, spin, lambda st: st["state"] == "failed")
        status, doc = self.health(s)
        self.assertEqual(status, 503)
        self.assertEqual([(r["kind"], r["processor"]) for r in doc["reasons"]],
                         [("processor_failed", spin)])
        self.assertIn("time budget", doc["reasons"][0]["message"])
        self.scrape(s)

    def test_health_disk_low(self):
        s = self.new_server({"health_min_free_percent": 100})
        status, doc = self.health(s)
        self.assertEqual(status, 503)
        self.assertEqual([r["kind"] for r in doc["reasons"]], ["disk_low"])
        r = doc["reasons"][0]
        self.assertEqual(r["path"], s.data)
        self.assertGreater(r["total_bytes"], 0)
        self.assertLessEqual(r["free_bytes"], r["total_bytes"])
        s.stop_ok(self)

    def test_bad_health_settings_refused(self):
        for key, bad in (("health_lag_seconds", "-1"),
                         ("health_min_free_percent", "101"),
                         ("health_lag_records", "many")):
            s = self.new_server({key: bad}, start=False)
            with self.assertRaises(AssertionError) as cm:
                s.start(timeout=5)
            self.assertIn(key, str(cm.exception))


if __name__ == "__main__":
    kh.main()
