#!/usr/bin/env python3
"""
test_dashboard.py - the dashboard page (GET / on the HTTP port) in headless
Chromium, and its JSON snapshot (GET /api/state).

While records flow into a topic and a Lua processor runs, a rate-limited
replay is started; the page must show the processor, its state and
versions, the replay's progress bar with an ETA, and non-empty lag and
throughput charts. A screenshot is kept as a test artifact
($KP_BUILD_DIR/artifacts/dashboard.png, path printed). After the cut-over
the page shows the new version live; when kappad stops it shows
"disconnected", and it recovers when kappad is back.

Issue 14: a processor's output is listed by its logical name with the
physical topic it points to (counts -> counts.v2 after a replay), its
other version topics under it and marked as such; a processor that failed
or was paused by its error rate is flagged in red with its reason, one
paused by the operator is not; and one second after the page is opened it
shows topics, processors and numbers (rates too), not "connecting" and
dashes.

Chromium is driven through the DevTools protocol over a pipe
(--remote-debugging-pipe), with nothing but the standard library. The test
skips, saying so, when Chromium is not installed (.ci/run installs it).
"""

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

import kappa_harness as kh

CHROMIUM = os.environ.get("KP_CHROMIUM") or shutil.which("chromium") or \
    "/usr/bin/chromium"
HAVE_CHROMIUM = os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)

# Launch flags that work on this machine (closed network, root, no GPU).
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
    "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
    "--remote-debugging-pipe",
]

WIDTH, HEIGHT = 1400, 1000


def artifacts_dir():
    build = os.environ.get("KP_BUILD_DIR") or os.path.join(kh.REPO, "build")
    d = os.path.join(build, "artifacts")
    os.makedirs(d, exist_ok=True)
    return d


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe: we
    write NUL-terminated JSON messages to its fd 3 and read its fd 4."""

    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="kappa-chromium-")
        self.log_path = os.path.join(self.profile, "chromium.log")
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()

        def child_setup():
            # Move both ends above the low fds first, then onto 3 and 4.
            a = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)
            kh._die_with_parent()

        log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(
                [CHROMIUM] + CHROMIUM_FLAGS +
                ["--user-data-dir=" + os.path.join(self.profile, "profile"),
                 "--window-size=%d,%d" % (WIDTH, HEIGHT), "about:blank"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                pass_fds=(3, 4), preexec_fn=child_setup)
        finally:
            log.close()
            os.close(to_child_r)
            os.close(from_child_w)
        self.next_id = 1
        self.buf = b""
        self.session = None

    def close(self):
        try:
            if self.proc.poll() is None:
                try:
                    self.call("Browser.close", timeout=5)
                except Exception:
                    pass
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
        finally:
            for fd in (self.to_child, self.from_child):
                try:
                    os.close(fd)
                except OSError:
                    pass
            shutil.rmtree(self.profile, ignore_errors=True)

    def log_tail(self, n=20):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def _read_message(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("chromium did not answer in time:\n%s"
                                     % self.log_tail())
            ready, _, _ = select.select([self.from_child], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.from_child, 1 << 20)
            if not chunk:
                raise AssertionError("chromium closed its pipe (exit %s):\n%s"
                                     % (self.proc.poll(), self.log_tail()))
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=True, timeout=30.0):
        """Sends one command (to the page's session unless session=False)
        and returns its result; events in between are dropped."""
        rid = self.next_id
        self.next_id += 1
        msg = {"id": rid, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self.to_child, data):]
        deadline = time.monotonic() + timeout * kh.SLOW
        while True:
            m = self._read_message(deadline)
            if m.get("id") != rid:
                continue
            if "error" in m:
                raise AssertionError("%s failed: %r" % (method, m["error"]))
            return m.get("result", {})

    def open(self, url, before=None):
        """Opens url in a new page; before: a script run in the page
        before its own scripts."""
        target = self.call("Target.createTarget", {"url": "about:blank"},
                           session=False)["targetId"]
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1,
                   "mobile": False})
        self.call("Page.enable")
        self.call("Runtime.enable")
        if before:
            self.call("Page.addScriptToEvaluateOnNewDocument",
                      {"source": before})
        self.call("Page.navigate", {"url": url})

    def eval(self, expression):
        r = self.call("Runtime.evaluate",
                      {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in r:
            raise AssertionError("page script failed: %r"
                                 % r["exceptionDetails"])
        return r["result"].get("value")

    def screenshot(self, path):
        """A PNG of the whole page (not only the viewport)."""
        m = self.call("Page.getLayoutMetrics")
        size = m.get("cssContentSize") or m["contentSize"]
        height = max(HEIGHT, int(size["height"]) + 1)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": WIDTH, "height": height, "deviceScaleFactor": 1,
                   "mobile": False})
        try:
            data = self.call("Page.captureScreenshot", {"format": "png"})
        finally:
            self.call("Emulation.setDeviceMetricsOverride",
                      {"width": WIDTH, "height": HEIGHT,
                       "deviceScaleFactor": 1, "mobile": False})
        with open(path, "wb") as f:
            f.write(base64.b64decode(data["data"]))
        return path


# What the page shows, read from its DOM (data-testid attributes) and its
# canvases (coloured pixels: the series lines, not the grey axes).
READ_PAGE = r"""
(() => {
  if (!document.querySelector('[data-testid="chart-lag"]')) return null;
  const q = (s, root) => (root || document).querySelector(s);
  const qa = (s, root) => Array.from((root || document).querySelectorAll(s));
  const text = (s, root) => { const e = q(s, root); return e ? e.textContent : null; };
  const inked = (id) => {
    const c = document.getElementById(id);
    if (!c || !c.width || !c.height) return 0;
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) {
      const mx = Math.max(d[i], d[i+1], d[i+2]), mn = Math.min(d[i], d[i+1], d[i+2]);
      if (d[i+3] > 128 && mx - mn > 60) n++;
    }
    return n;
  };
  const chart = (tid, id) => {
    const c = q('[data-testid="' + tid + '"]');
    return { points: +c.dataset.points, series: +(c.dataset.series || 0),
             inked: inked(id),
             legend: qa('[data-testid="legend-item"]', c.parentNode).map(e => e.textContent) };
  };
  return {
    conn: text('[data-testid="conn-status"]'),
    health: text('[data-testid="health-status"]'),
    health_reasons: qa('[data-testid="health-reason"]').map(e => e.textContent),
    banner: text('[data-testid="banner"]'),
    meta: text('[data-testid="server-meta"]'),
    topics: qa('[data-testid="topic-row"]').map(r => ({
      name: r.dataset.name, text_name: text('[data-testid="topic-name"]', r),
      physical: r.dataset.physical || null,
      text: r.cells[0].textContent,
      records: text('[data-testid="topic-records"]', r) })),
    topic_versions: qa('[data-testid="topic-version-row"]').map(r => ({
      name: r.dataset.name, logical: r.dataset.logical,
      generation: +r.dataset.generation, text: r.cells[0].textContent,
      // the logical row this version row is listed under
      under: (() => { let e = r.previousElementSibling;
        while (e && e.dataset.testid !== "topic-row") e = e.previousElementSibling;
        return e ? e.dataset.name : null; })() })),
    topic_count: text('[data-testid="count-topics"]'),
    procs: qa('[data-testid="proc-row"]').map(r => ({
      name: r.dataset.name, text_name: text('[data-testid="proc-name"]', r),
      state: text('[data-testid="proc-state"]', r),
      version: text('[data-testid="proc-version"]', r),
      lag: text('[data-testid="proc-lag"]', r),
      last_error: text('[data-testid="proc-last-error"]', r),
      flagged: r.dataset.flagged || null,
      alerts: qa('[data-testid="proc-alert"]', r).map(e => ({
        text: e.textContent, color: getComputedStyle(e).color,
        visible: e.getBoundingClientRect().height > 0 })),
      state_bg: q('[data-testid="proc-state"]', r) ?
        getComputedStyle(q('[data-testid="proc-state"]', r)).backgroundColor : null,
      row_bg: getComputedStyle(r.cells[0]).backgroundColor,
      elements_in_error: qa('[data-testid="proc-last-error"] *', r).length,
      chips: qa('[data-testid="version-chip"]', r).map(c => ({
        version: +c.dataset.version, role: c.dataset.role,
        state: c.dataset.state, text: c.textContent })) })),
    replays: qa('[data-testid="replay"]').map(r => ({
      name: r.dataset.name, version: +r.dataset.version,
      state: text('[data-testid="replay-state"]', r),
      progress: +q('[data-testid="replay-progress"]', r).getAttribute("aria-valuenow"),
      bar_width: q('[data-testid="replay-progress"] > div', r).style.width,
      percent: text('[data-testid="replay-percent"]', r),
      eta: text('[data-testid="replay-eta"]', r),
      detail: text('[data-testid="replay-detail"]', r) })),
    pipeline: {
      nodes: qa('[data-testid="pipeline-node"]').map(n => ({
        kind: n.dataset.kind, name: n.dataset.name,
        stalled: n.dataset.stalled, flagged: n.dataset.flagged || null,
        w: n.getBBox().width, h: n.getBBox().height })),
      links: qa('[data-testid="pipeline-link"]').map(l => ({
        from: l.dataset.from, to: l.dataset.to,
        length: l.getTotalLength() })) },
    lag: chart("chart-lag", "chart-lag"),
    tput: chart("chart-throughput", "chart-tput"),
  };
})()
"""

# Installed before the page's own script (Page.addScriptToEvaluateOnNewDocument):
# 1000 ms after the navigation started (performance.now()'s origin), what
# the page shows is kept in window.__kappaAt1s, then read by the test.
SNAPSHOT_AT_1S = r"""
(() => {
  const snap = () => {
    const q = (s, root) => (root || document).querySelector(s);
    const qa = (s, root) => Array.from((root || document).querySelectorAll(s));
    const text = (s, root) => { const e = q(s, root); return e ? e.textContent : null; };
    window.__kappaAt1s = {
      at_ms: performance.now(),
      conn: text('[data-testid="conn-status"]'),
      cards: qa('.card').map(c => ({ label: text('.label', c),
                                     value: text('.value', c) })),
      topics: qa('[data-testid="topic-row"]').map(r => ({
        name: r.dataset.name,
        cells: Array.from(r.cells).map(c => c.textContent) })),
      procs: qa('[data-testid="proc-row"]').map(r => ({
        name: r.dataset.name,
        cells: Array.from(r.cells).map(c => c.textContent) })),
    };
  };
  setTimeout(snap, Math.max(0, 1000 - performance.now()));
})()
"""

NASTY = 'q"uote\\ <b>bold</b> \x01 \u00e9 \U0001F600 \u2028 end'


class Producer(threading.Thread):
    """Produces small keyed batches into topic until stopped."""

    def __init__(self, server, topic, per_batch=5, interval=0.1):
        super().__init__(daemon=True)
        self.server, self.topic = server, topic
        self.per_batch, self.interval = per_batch, interval
        self.stop_event = threading.Event()
        self.count = 0
        self.error = None

    def run(self):
        try:
            with self.server.client() as c:
                while not self.stop_event.is_set():
                    vals = [{"user": "u%d" % ((self.count + i) % 13),
                             "i": self.count + i}
                            for i in range(self.per_batch)]
                    c.produce(self.topic, vals, partition=None,
                              keys=[v["user"] for v in vals])
                    self.count += len(vals)
                    self.stop_event.wait(self.interval)
        except Exception as e:   # reported by the test
            self.error = e

    def stop(self):
        self.stop_event.set()
        self.join(10)


class HttpTest(kh.ServerTest):
    class_server = False

    def get_raw(self, server, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s"
                                    % (server.http_port, path),
                                    timeout=10 * kh.SLOW) as r:
            return r.status, r.headers, r.read()

    def state(self, server):
        status, headers, body = self.get_raw(server, "/api/state")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("application/json"))
        # Strict: the body is UTF-8 and JSON, whatever the names hold.
        return json.loads(body.decode("utf-8"))


@unittest.skipUnless(HAVE_CHROMIUM,
                     "chromium is not installed (apt-get install chromium; "
                     ".ci/run installs it): dashboard browser test skipped")
class DashboardBrowserTest(HttpTest):

    def page(self, browser):
        return browser.eval(READ_PAGE)

    def wait_page(self, browser, pred, what, timeout=20.0):
        box = {}

        def check():
            p = self.page(browser)
            box["last"] = p
            return p if p and pred(p) else None

        try:
            return kh.wait_for(check, timeout, what, interval=0.2)
        except AssertionError as e:
            raise AssertionError("%s\npage: %s\nchromium:\n%s" % (
                e, json.dumps(box.get("last"), indent=1), browser.log_tail()))

    @staticmethod
    def proc(page, name):
        for p in page["procs"]:
            if p["name"] == name:
                return p
        return None

    def test_token_from_fragment_or_form(self):
        token = "read-0123456789abcdef"
        s = self.new_server(tokens={"adm-0123456789abcdef": "admin",
                                    token: "read"})
        browser = Browser()
        self.addCleanup(browser.close)
        base = "http://127.0.0.1:%d/" % s.http_port
        # Without a token the page asks for one and shows no data.
        browser.open(base)
        self.wait_page(browser, lambda p: p["conn"] != "connected" and
                       browser.eval('document.getElementById("auth")'
                                    '.className') == "show",
                       "the page to ask for a token")
        # Typed into the form: the page connects.
        browser.eval('document.getElementById("token-input").value = "%s";'
                     'document.getElementById("auth").requestSubmit();'
                     % token)
        self.wait_page(browser, lambda p: p["conn"] == "connected",
                       "the page to connect with the typed token")
        self.assertEqual(browser.eval('sessionStorage.getItem("kappa.token")'),
                         token)
        # From #token=: kept in sessionStorage, taken off the address.
        browser2 = Browser()
        self.addCleanup(browser2.close)
        browser2.open(base + "#token=" + token)
        self.wait_page(browser2, lambda p: p["conn"] == "connected",
                       "the page to connect with the fragment's token")
        self.assertNotIn("token", browser2.eval("location.href"))

    def test_data_within_one_second(self):
        """What the page shows 1 s after it was opened (navigation start,
        taken in the page itself): connected, the topics and processors by
        name, and numbers in every card and rate column, not "connecting"
        and dashes (the first fetch is immediate, the second follows it
        soon so that rates show)."""
        s = self.new_server()
        with s.client() as c:
            c.ok("topic_create", topic="events", partitions=2)
            c.produce("events", [{"user": "u%d" % (i % 7), "i": i}
                                 for i in range(200)], partition=None,
                      keys=["u%d" % (i % 7) for i in range(200)])
            c.ok("proc_create", name="cbu",
                 file=kh.fixture("count_by_user.lua"), inputs=["events"],
                 outputs=["counts"])
        kh.wait_caught_up(s, "cbu")
        producer = Producer(s, "events")
        producer.start()
        self.addCleanup(producer.stop)
        browser = Browser()
        self.addCleanup(browser.close)
        # A first page in this browser, so that the one measured does not
        # pay for the browser's own start-up.
        browser.open("about:blank")
        browser.open("http://127.0.0.1:%d/" % s.http_port,
                     before=SNAPSHOT_AT_1S)
        snap = kh.wait_for(lambda: browser.eval("window.__kappaAt1s"), 10,
                           "the snapshot taken 1 s after opening")
        shot = browser.screenshot(os.path.join(artifacts_dir(),
                                               "dashboard-1s.png"))
        print("dashboard screenshot after 1 s: %s" % shot, flush=True)
        producer.stop()
        self.assertIsNone(producer.error)
        dump = json.dumps(snap, indent=1, ensure_ascii=False)
        self.assertLess(snap["at_ms"], 1200, dump)
        self.assertEqual(snap["conn"], "connected", dump)
        cards = {c["label"]: c["value"] for c in snap["cards"]}
        for label, value in cards.items():
            self.assertNotIn(value.strip(), ("", "–", "-"),
                             "card %r at 1 s\n%s" % (label, dump))
            float(value.rstrip("kMG"))   # a number
        self.assertEqual(cards["Processors"], "1", dump)
        self.assertEqual({t["name"] for t in snap["topics"]},
                         {"events", "counts", "cbu.dlq"}, dump)
        self.assertEqual([p["name"] for p in snap["procs"]], ["cbu"], dump)
        for row in snap["topics"] + snap["procs"]:
            self.assertNotIn("–", row["cells"], "a dash at 1 s\n%s" % dump)
        events = [t for t in snap["topics"] if t["name"] == "events"][0]
        self.assertGreaterEqual(int(events["cells"][3]), 200, dump)

    def test_logical_topics_name_their_physical_topic(self):
        """After a replay the output counts resolves to counts.v2 (and the
        dead-letter topic cbu.dlq to cbu.dlq.v2): the page lists one row
        per logical name naming its physical topic, and the version topics
        under it, marked as such, not as unrelated topics."""
        s = self.new_server()
        with s.client() as c:
            c.ok("topic_create", topic="events")
            c.produce("events", [{"user": "u%d" % (i % 5), "i": i}
                                 for i in range(100)], partition=0)
            c.ok("proc_create", name="cbu",
                 file=kh.fixture("count_by_user.lua"), inputs=["events"],
                 outputs=["counts"])
        kh.wait_caught_up(s, "cbu")
        with s.client() as c:
            self.assertEqual(c.ok("proc_replay", name="cbu")["version"], 2)
        kh.wait_proc(s, "cbu", lambda st: st["version"] == 2 and
                     st["replay"] is None and st["lag"] == 0,
                     what="the replay of cbu to cut over")

        # /api/state: each physical topic says what it is a version of.
        topics = {t["name"]: t for t in self.state(s)["topics"]}
        self.assertEqual(sorted(topics), ["cbu.dlq", "cbu.dlq.v2", "counts",
                                          "counts.v2", "events"])
        role = {n: (t["logical"], t["generation"], t["current"])
                for n, t in topics.items()}
        self.assertEqual(role, {
            "events": (None, None, True),
            "counts": ("counts", 1, False),
            "counts.v2": ("counts", 2, True),
            "cbu.dlq": ("cbu.dlq", 1, False),
            "cbu.dlq.v2": ("cbu.dlq", 2, True)})

        browser = Browser()
        self.addCleanup(browser.close)
        browser.open("http://127.0.0.1:%d/" % s.http_port)
        p = self.wait_page(browser, lambda p: p["conn"] == "connected" and
                           p["topics"], "the page to list topics")
        rows = {t["name"]: t for t in p["topics"]}
        dump = json.dumps(p["topics"] + p["topic_versions"], indent=1)
        self.assertEqual(sorted(rows), ["cbu.dlq", "counts", "events"], dump)
        self.assertEqual(rows["counts"]["physical"], "counts.v2", dump)
        self.assertIn("counts → counts.v2", rows["counts"]["text"], dump)
        self.assertEqual(rows["cbu.dlq"]["physical"], "cbu.dlq.v2", dump)
        self.assertIn("cbu.dlq → cbu.dlq.v2", rows["cbu.dlq"]["text"], dump)
        self.assertNotIn("→", rows["events"]["text"], dump)
        # Its numbers are those of the physical topic it points to.
        self.assertEqual(rows["counts"]["records"],
                         str(topics["counts.v2"]["end_offset"]), dump)
        # Version 1's physical topics: listed under their logical name.
        vers = {(v["under"], v["name"]): v for v in p["topic_versions"]}
        self.assertEqual(sorted(vers), [("cbu.dlq", "cbu.dlq"),
                                        ("counts", "counts")], dump)
        for v in vers.values():
            self.assertEqual((v["logical"], v["generation"]),
                             (v["under"], 1), dump)
            self.assertIn("version topic of " + v["under"], v["text"], dump)
        self.assertEqual(p["topic_count"], "3", dump)
        browser.screenshot(os.path.join(artifacts_dir(),
                                        "dashboard-aliases.png"))

    def test_failed_or_paused_processor_flagged_red(self):
        """A processor paused by its error rate and one stopped for its
        time budget are flagged in red with their reasons (the row, its
        state, a visible line saying why; /health's reasons on top); a
        running one and one paused by the operator are not."""
        s = self.new_server()
        with s.client() as c:
            for t in ("good", "bad", "loop"):
                c.ok("topic_create", topic=t)
            c.ok("proc_create", name="ok", file=kh.fixture("count_by_user.lua"),
                 inputs=["good"], outputs=["counts"])
            c.ok("proc_create", name="held",
                 file=kh.fixture("count_by_user.lua"), inputs=["good"],
                 outputs=["held_counts"])
            c.ok("proc_pause", name="held")
            c.ok("proc_create", name="erring",
                 file=kh.fixture("raise_on_bad.lua"), inputs=["bad"],
                 outputs=["erring_out"], config={"output": "erring_out"},
                 max_error_rate=0.5, error_window_min=5)
            c.ok("proc_create", name="looping",
                 file=kh.fixture("iso_loop.lua"), inputs=["loop"],
                 time_budget_ms=100)
            c.produce("good", [{"user": "u", "i": i} for i in range(10)],
                      partition=0)
            c.produce("bad", [{"user": "u", "i": i, "bad": True}
                              for i in range(10)], partition=0)
            c.produce("loop", [{"i": 0}], partition=0)
        erring = kh.wait_proc(s, "erring", lambda st: st["state"] == "paused")
        self.assertIn("error rate", erring["reason"])
        looping = kh.wait_proc(s, "looping",
                               lambda st: st["state"] == "failed")
        self.assertIn("time budget", looping["reason"])
        kh.wait_caught_up(s, "ok")
        self.assertEqual(self.state(s)["health"]["status"], "unhealthy")

        browser = Browser()
        self.addCleanup(browser.close)
        browser.open("http://127.0.0.1:%d/" % s.http_port)

        def shown(p):
            procs = {r["name"]: r for r in p["procs"]}
            return (p["conn"] == "connected" and
                    sorted(procs) == ["erring", "held", "looping", "ok"] and
                    procs["looping"]["state"] == "failed" and
                    procs["erring"]["state"] == "paused")

        p = self.wait_page(browser, shown, "the page to show the processors")
        browser.screenshot(os.path.join(artifacts_dir(),
                                        "dashboard-flagged.png"))
        procs = {r["name"]: r for r in p["procs"]}
        dump = json.dumps(p["procs"], indent=1, ensure_ascii=False)
        red = "rgb(211, 58, 44)"    # --bad
        for name, why in (("erring", "error rate"),
                          ("looping", "time budget")):
            r = procs[name]
            self.assertEqual(r["flagged"], "true", dump)
            self.assertTrue(any(why in a["text"] for a in r["alerts"]), dump)
            for a in r["alerts"]:
                self.assertEqual(a["color"], red, dump)
                self.assertTrue(a["visible"], dump)
            self.assertEqual(r["state_bg"], red, dump)
            self.assertNotEqual(r["row_bg"], procs["ok"]["row_bg"], dump)
        for name in ("ok", "held"):
            self.assertEqual(procs[name]["flagged"], "false", dump)
            self.assertEqual(procs[name]["alerts"], [], dump)
            self.assertNotEqual(procs[name]["state_bg"], red, dump)
        self.assertEqual(procs["held"]["state"], "paused")
        self.assertTrue(p["health"].startswith("unhealthy"), p["health"])
        self.assertTrue(any("erring" in m and "error rate" in m
                            for m in p["health_reasons"]), p["health_reasons"])
        self.assertTrue(any("looping" in m for m in p["health_reasons"]),
                        p["health_reasons"])
        flagged = {n["name"]: n["flagged"] for n in p["pipeline"]["nodes"]
                   if n["kind"] == "proc"}
        self.assertEqual(flagged, {"ok": "false", "held": "false",
                                   "erring": "true", "looping": "true"})

    def test_dashboard(self):
        t0 = time.monotonic()
        s = self.new_server()
        with s.client() as c:
            c.ok("topic_create", topic="events", partitions=2)
            c.ok("topic_create", topic="odd")
            # History for the replay: 3000 records of about 1 KiB. A
            # replay's rate limit is checked between reads of up to 256 KiB,
            # so records this size let rate=300 pace it over a few seconds.
            pad = "p" * 1000
            for start in range(0, 3000, 100):
                vals = [{"user": "u%d" % (i % 13), "i": i, "pad": pad}
                        for i in range(start, start + 100)]
                c.produce("events", vals, partition=None,
                          keys=[v["user"] for v in vals])
            c.ok("proc_create", name="cbu",
                 file=kh.fixture("count_by_user.lua"), inputs=["events"],
                 outputs=["counts"])
            # Downstream of cbu: reads its logical output (a pipeline).
            c.ok("proc_create", name="cbu_top",
                 file=kh.fixture("count_emit_offset.lua"), inputs=["counts"],
                 outputs=["top"], config={"output": "top"})
            c.ok("proc_create", name="odd_one",
                 file=kh.fixture("raise_on_bad.lua"), inputs=["odd"],
                 outputs=["odd_out"], config={"output": "odd_out"})
            # An error message with quotes, markup, control characters and
            # non-ASCII: escaped in /api/state, shown as text on the page.
            c.produce("odd", [{"user": "x", "i": NASTY, "bad": True}],
                      partition=0)

        producer = Producer(s, "events")
        producer.start()
        self.addCleanup(producer.stop)

        browser = Browser()
        self.addCleanup(browser.close)
        url = "http://127.0.0.1:%d/" % s.http_port
        browser.open(url)
        self.wait_page(browser, lambda p: p["conn"] == "connected" and
                       self.proc(p, "cbu") and self.proc(p, "odd_one") and
                       self.proc(p, "odd_one")["last_error"],
                       "the page to show both processors")

        # The JSON snapshot, strictly parsed.
        st = self.state(s)
        self.assertEqual(sorted(st), ["health", "pipeline", "processors",
                                      "server", "topics"])
        self.assertEqual(st["pipeline"]["edges"],
                         [{"from": "cbu", "to": "cbu_top", "topic": "counts"}])
        self.assertIsInstance(st["server"]["now_ms"], int)
        self.assertLessEqual(st["server"]["started_ms"],
                             st["server"]["now_ms"])
        topics = {t["name"]: t for t in st["topics"]}
        for name in ("events", "odd", "counts", "cbu.dlq", "odd_out"):
            self.assertIn(name, topics)
        ev = topics["events"]
        self.assertEqual(ev["partitions"], 2)
        self.assertEqual(len(ev["end_offsets"]), 2)
        self.assertEqual(sum(ev["end_offsets"]), ev["end_offset"])
        self.assertGreaterEqual(ev["end_offset"], 3000)
        self.assertGreater(ev["bytes"], 0)
        self.assertGreaterEqual(ev["records_appended"], 3000)
        procs = {p["name"]: p for p in st["processors"]}
        self.assertEqual(sorted(procs), ["cbu", "cbu_top", "odd_one"])
        cbu = procs["cbu"]
        self.assertEqual(cbu["state"], "running")
        self.assertEqual(cbu["lang"], "lua")
        self.assertEqual(cbu["version"], 1)
        self.assertIsNone(cbu["replay"])
        self.assertEqual(cbu["version_count"], 1)
        self.assertEqual([(v["version"], v["role"]) for v in cbu["versions"]],
                         [(1, "live")])
        for k in ("lag", "records_processed", "errors", "inputs"):
            self.assertIn(k, cbu)
        odd = procs["odd_one"]
        # Errors are one line: control bytes arrive as spaces; and they
        # name the script, not the server's copy of it under data/code.
        self.assertIn("raise_on_bad.lua:17: bad record " +
                      NASTY.split("\u2028")[0].replace("\x01", " "),
                      odd["last_error"])
        self.assertNotIn("/code/", odd["last_error"])

        # The pipeline is drawn: topics and processors as boxes, arrows
        # from what a processor reads to it and from it to what it writes.
        def drawn(p):
            nodes = {(n["kind"], n["name"]): n for n in p["pipeline"]["nodes"]}
            links = {(l["from"], l["to"]): l for l in p["pipeline"]["links"]}
            want_nodes = [("proc", "cbu"), ("proc", "cbu_top"),
                          ("topic", "events"), ("topic", "counts"),
                          ("topic", "top")]
            want_links = [("topic:events", "proc:cbu"),
                          ("proc:cbu", "topic:counts"),
                          ("topic:counts", "proc:cbu_top"),
                          ("proc:cbu_top", "topic:top")]
            return (all(k in nodes and nodes[k]["w"] > 20 and
                        nodes[k]["h"] > 10 for k in want_nodes) and
                    all(k in links and links[k]["length"] > 10
                        for k in want_links))

        p = self.wait_page(browser, drawn, "the page to draw the pipeline")
        self.assertTrue(all(n["stalled"] == "false"
                            for n in p["pipeline"]["nodes"]
                            if n["kind"] == "proc"), p["pipeline"])

        # ... and on the page the same message is text, not markup.
        p = self.page(browser)
        odd_row = self.proc(p, "odd_one")
        self.assertIn("<b>bold</b>", odd_row["last_error"])
        self.assertEqual(odd_row["elements_in_error"], 0)
        self.assertEqual(self.proc(p, "cbu")["state"], "running")

        # Bytes that are not UTF-8 (a bin value): replaced, still JSON.
        with s.client() as c:
            c.produce("odd", [{"user": "y", "i": b"bin\xff\xfe\xc3(",
                               "bad": True}], partition=0)
        err = kh.wait_for(lambda: (lambda e: e if e and "record bin" in e
                                   else None)(
            {x["name"]: x for x in self.state(s)["processors"]}
            ["odd_one"]["last_error"]), 10, "the bin record's error")
        self.assertIn("bad record bin\ufffd\ufffd\ufffd(", err)

        # A replay that takes a few seconds.
        with s.client() as c:
            r = c.ok("proc_replay", name="cbu", rate=300)
        self.assertEqual(r["version"], 2)

        def replay_shown(p):
            cbu_row = self.proc(p, "cbu")
            reps = [x for x in p["replays"] if x["name"] == "cbu"]
            return (cbu_row and cbu_row["state"] == "running" and
                    reps and reps[0]["version"] == 2 and
                    0 < reps[0]["progress"] < 100 and
                    reps[0]["eta"] not in ("", "–") and
                    {c["role"] for c in cbu_row["chips"]} ==
                    {"live", "building"} and
                    p["lag"]["points"] >= 3 and p["lag"]["inked"] > 20 and
                    p["tput"]["points"] >= 2 and p["tput"]["inked"] > 20)

        p = self.wait_page(browser, replay_shown,
                           "the page to show the replay and both charts",
                           timeout=15)
        shot = browser.screenshot(os.path.join(artifacts_dir(),
                                               "dashboard.png"))
        print("dashboard screenshot: %s" % shot, flush=True)

        cbu_row = self.proc(p, "cbu")
        self.assertEqual(cbu_row["text_name"], "cbu")
        self.assertEqual(cbu_row["version"], "v1 rev 1")
        chips = {c["version"]: c for c in cbu_row["chips"]}
        self.assertEqual(chips[1]["role"], "live")
        self.assertEqual(chips[2]["role"], "building")
        rep = [x for x in p["replays"] if x["name"] == "cbu"][0]
        self.assertEqual(rep["state"], "running")
        self.assertIn("ETA", rep["detail"])
        self.assertIn("records/s", rep["detail"])
        # The page writes one decimal ("16.0%"); the browser may normalise
        # it ("16%"), so compare the number.
        self.assertTrue(rep["bar_width"].endswith("%"), rep["bar_width"])
        self.assertAlmostEqual(float(rep["bar_width"][:-1]),
                               round(rep["progress"], 1), places=3)
        self.assertIn("events", [t["name"] for t in p["topics"]])
        self.assertIn("lag cbu", p["lag"]["legend"])
        self.assertTrue(any(k.startswith("replay cbu v2")
                            for k in p["lag"]["legend"]), p["lag"]["legend"])
        self.assertIn("produced (input topics)", p["tput"]["legend"])
        self.assertIn("written by processors", p["tput"]["legend"])
        st = self.state(s)
        rp = {x["name"]: x for x in st["processors"]}["cbu"]["replay"]
        if rp is not None:   # it may have just cut over
            for k in ("records_done", "records_to_go", "records_per_second",
                      "eta_ms", "rate_limit", "version", "state"):
                self.assertIn(k, rp)
            self.assertEqual(rp["rate_limit"], 300)

        # The cut-over: v2 live, v1 retired, no replay left.
        def cut_over(p):
            row = self.proc(p, "cbu")
            roles = {c["version"]: c["role"] for c in row["chips"]} if row else {}
            return (row and row["version"].startswith("v2") and
                    roles == {1: "retired", 2: "live"} and not p["replays"])

        self.wait_page(browser, cut_over, "the page to show the cut-over",
                       timeout=60)
        producer.stop()
        self.assertIsNone(producer.error)

        # kappad goes away: "disconnected"; it comes back: recovered.
        pid_before = st["server"]["pid"]
        s.stop_ok(self)
        p = self.wait_page(browser, lambda p: p["conn"] == "disconnected",
                           "the page to show disconnected", timeout=10)
        self.assertIn("disconnected", p["banner"])
        browser.screenshot(os.path.join(artifacts_dir(),
                                        "dashboard-disconnected.png"))
        s.start()
        p = self.wait_page(browser, lambda p: p["conn"] == "connected" and
                           "restarted" in (p["banner"] or ""),
                           "the page to recover after the restart",
                           timeout=15)
        self.assertNotEqual(self.state(s)["server"]["pid"], pid_before)
        row = self.proc(p, "cbu")
        self.assertTrue(row["version"].startswith("v2"), row)
        print("dashboard test took %.1f s" % (time.monotonic() - t0),
              flush=True)


class DashboardRoutesTest(HttpTest):

    def test_routes(self):
        """GET / is the page (no external assets); unknown paths 404."""
        s = self.new_server()
        status, headers, body = self.get_raw(s, "/")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/html"))
        html = body.decode("utf-8")
        self.assertIn('data-testid="chart-lag"', html)
        self.assertIn("/api/state", html)
        for ext in ('src="http', "src='http", 'href="http', "@import",
                    "<script src", "<link rel=\"stylesheet\""):
            self.assertNotIn(ext, html)
        status, _, body2 = self.get_raw(s, "/index.html")
        self.assertEqual((status, body2), (200, body))
        st = self.state(s)
        self.assertEqual((st["topics"], st["processors"]), ([], []))
        with self.assertRaises(urllib.error.HTTPError) as cm:
            self.get_raw(s, "/nope")
        self.assertEqual(cm.exception.code, 404)


if __name__ == "__main__":
    kh.main()
