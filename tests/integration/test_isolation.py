#!/usr/bin/env python3
"""
test_isolation.py - whatever a processor does, the server and the other
processors go on (issue 11). Processors run in worker processes, children
of kappad; one that segfaults, aborts, loops (in compiled Lua, in a C
function, in a pathological pattern match), hangs in init or grows its
memory without bound is stopped within twice its time budget with its CPU
and memory given back: `proc status` shows state "failed" with a reason
saying what happened, /health lists it (processor_failed) and /metrics
shows it. Meanwhile a canary (a Lua count processor over its own topic, fed
continuously) keeps at least half the rate it had alone, and ping answers.
`proc delete` and `proc pause` take effect within a second on a looping
processor, and SIGTERM stops kappad within 5 s whatever its processors do.

The test plugins are tests/plugins/{crash_tenth,abort_tenth,loop_process,
grow_memory,hang_init}.c; the Lua fixtures fixtures/iso_*.lua.
"""

import json
import os
import re
import signal
import threading
import time

import kappa_harness as kh

BUDGET_MS = 500
# A failing processor is stopped within twice its budget; the slack covers
# the watchdog's tick, our polling and (times SLOW) a sanitizer build.
STOP_WITHIN = 2 * BUDGET_MS / 1000.0 + 0.5 * kh.SLOW
MEMORY_LIMIT = 64000000
MIB = 1 << 20
# A worker may hold its processor's memory_limit plus its view's table
# (view_cache_bytes, kept small here) plus its runtime (docs/PROCESSORS.md).
VIEW_CACHE = 8 * MIB
# What the tree may hold beyond the memory limit (the rest of the server);
# a sanitizer build has shadow memory and quarantine on top.
MEMORY_HEADROOM = 64 * MIB * (4 if kh.SLOW > 1 else 1)
# Past this the test kills the server rather than let a host that limits
# nothing take the machine's memory.
MEMORY_GUARD = MEMORY_LIMIT + 512 * MIB * (2 if kh.SLOW > 1 else 1)
IDLE_CPU = 0.3        # CPU seconds the whole tree may use in 1 s when idle
CANARY_RATE = 2000    # records/s offered to the canary
WINDOW = 1.0          # seconds of a rate measurement (at least)
LONG_BUDGET_MS = 600000  # a looping processor that the budget must not stop



def plugin(name):
    """Absolute path of the test plugin NAME.so (the server wants one)."""
    return os.path.abspath(kh.test_plugin(name))


# ---------------------------------------------------------------------------
# The server's process tree, from /proc.


def _fields(pid):
    """The fields of /proc/PID/stat after the command, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _stat(pid):
    """(state, ppid, utime + stime in s) of pid, or None when it is gone."""
    fields = _fields(pid)
    if fields is None:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return fields[0], int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks


# Every descendant of a server seen so far: {pid: start time}, so that a
# worker that outlives a failed test (its kappad died) is killed at cleanup.
_seen = {}


def kill_seen():
    """SIGKILLs the descendants seen so far that still run (same pid and
    start time)."""
    for pid, start in list(_seen.items()):
        fields = _fields(pid)
        if fields is not None and fields[19] == start and fields[0] != "Z":
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        _seen.pop(pid, None)


def tree(root):
    """{pid: (state, cpu seconds)} of root and all its descendants."""
    stats = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _stat(int(d))
            if st is not None:
                stats[int(d)] = st
    if root not in stats:
        return {}
    kids = {}
    for pid, (_, ppid, _) in stats.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        out[pid] = (stats[pid][0], stats[pid][2])
        todo.extend(kids.get(pid, []))
    for pid in out:
        if pid != root and pid not in _seen:
            fields = _fields(pid)
            if fields is not None:
                _seen[pid] = fields[19]
    return out


def descendants(root):
    """The live (not zombie) descendants of root, without root."""
    return {pid for pid, (state, _) in tree(root).items()
            if pid != root and state != "Z"}


def alive_pids(pids):
    """Those of pids that still exist and are not zombies."""
    out = set()
    for pid in pids:
        st = _stat(pid)
        if st is not None and st[0] != "Z":
            out.add(pid)
    return out


def tree_cpu(root, seconds=1.0):
    """CPU seconds (user + system) the tree of root used over seconds, with
    each process's share (processes that exit meanwhile count for what they
    used before the first sample, i.e. nothing)."""
    before = tree(root)
    time.sleep(seconds)
    after = tree(root)
    per = {pid: cpu - before.get(pid, ("", 0.0))[1]
           for pid, (_, cpu) in after.items()}
    return sum(per.values()), per


def rss_anon(pid):
    """RssAnon of pid in bytes (0 when gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss_anon(root):
    return sum(rss_anon(pid) for pid in tree(root))


class RssSampler:
    """Samples the tree's RssAnon every 10 ms; kills the server past guard."""

    def __init__(self, server, guard):
        self.server = server
        self.guard = guard
        self.peak = 0
        self.guard_hit = False
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        pid = self.server.proc.pid
        while not self.stopping.is_set():
            rss = tree_rss_anon(pid)
            self.peak = max(self.peak, rss)
            if rss > self.guard:
                self.guard_hit = True
                for p in tree(pid):
                    try:
                        os.kill(p, signal.SIGKILL)
                    except OSError:
                        pass
                return
            self.stopping.wait(0.01)

    def stop(self):
        self.stopping.set()
        self.thread.join(10)
        return self.peak


# ---------------------------------------------------------------------------
# The canary: a Lua count processor over its own topic, fed at a steady
# rate (catching up with a schedule, so a slow moment of the producer does
# not lower the offered rate).


class Canary:

    def __init__(self, server, rate=CANARY_RATE):
        self.server = server
        self.rate = rate
        self.topic = kh.unique("canary-in")
        self.name = kh.unique("canary")
        self.sent = 0
        self.error = None
        self.stopping = threading.Event()
        self.thread = None
        kh.create_topic(server, self.topic)
        with server.client() as c:
            c.ok("proc_create", name=self.name, file=kh.fixture("iso_count.lua"),
                 inputs=[self.topic])
        kh.wait_status(server, self.name, lambda st: st["state"] == "running",
                       10, "canary running")

    def _run(self):
        try:
            with self.server.client() as c:
                start = time.monotonic()
                while not self.stopping.is_set():
                    due = int(self.rate * (time.monotonic() - start)) - self.sent
                    if due > 0:
                        n = min(due, 1000)
                        c.produce(self.topic, [{"i": self.sent + k}
                                               for k in range(n)])
                        self.sent += n
                    self.stopping.wait(0.02)
        except Exception as e:  # reported by stop()
            self.error = e

    def start(self):
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.thread is not None:
            self.stopping.set()
            self.thread.join(30)
            self.thread = None

    def processed(self):
        return kh.raw_status(self.server, self.name)["records_processed"]

    def status(self):
        return kh.raw_status(self.server, self.name)

    def rate_alone(self, testcase):
        """Waits until the canary keeps up, then its rate over WINDOW."""
        kh.wait_status(self.server, self.name,
                       lambda st: self.sent > 0 and st["lag"] <= self.rate // 10,
                       10, "canary to keep up")
        t0, p0 = time.monotonic(), self.processed()
        time.sleep(WINDOW)
        t1, p1 = time.monotonic(), self.processed()
        rate = (p1 - p0) / (t1 - t0)
        testcase.assertGreater(rate, self.rate * 0.5,
                               "canary alone processes %.0f rec/s of %d offered"
                               % (rate, self.rate))
        return rate


# ---------------------------------------------------------------------------


def metric_lines(text, name, **labels):
    """(labels dict, value) of each sample of name whose labels include
    labels."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^%s\{(.*)\} (\S+)$" % re.escape(name), line)
        if not m:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1)))
        if all(got.get(k) == str(v) for k, v in labels.items()):
            out.append((got, float(m.group(2))))
    return out


class IsolationTest(kh.ServerTest):
    class_server = False

    # -- helpers
    def fresh_server(self, jit=False, plain_faults=False, config=None):
        """A server for this test; jit: KAPPA_LUA_JIT=on; plain_faults: a
        sanitizer build leaves SIGSEGV alone and lets malloc return NULL
        (else ASan turns a worker's segfault or failed malloc into a report
        and exit status 1)."""
        self.addCleanup(kill_seen)  # after the server's cleanup (LIFO)
        # Budgets that must not stop a looping processor are above the
        # server's default ceiling.
        config = dict(config or {})
        config.setdefault("max_time_budget_ms", LONG_BUDGET_MS)
        env = {}
        # Either way explicitly: the interpreted case (the count hook
        # interrupts) and the compiled one (the worker is killed).
        env["KAPPA_LUA_JIT"] = "on" if jit else "off"
        if plain_faults and kh.SLOW > 1:
            env["ASAN_OPTIONS"] = ":".join(
                o for o in (os.environ.get("ASAN_OPTIONS"), "handle_segv=0",
                            "allocator_may_return_null=1") if o)
        if env:
            return kh.new_fault_server(self, config=config, env=env)
        return self.new_server(config)

    def assertWorkersGone(self, s, workers, name):
        """The worker processes that came with processor name are gone."""
        deadline = time.monotonic() + 1.0 * kh.SLOW
        while alive_pids(workers) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(alive_pids(workers), set(),
                         "processes of kappad (pid %d) that came with "
                         "processor %s outlive its failure" % (s.proc.pid, name))

    def assertAlive(self, s, what):
        if not s.alive():
            rc = s.proc.returncode
            how = ("killed by signal %d" % -rc) if rc < 0 else ("exit %d" % rc)
            self.fail("kappad died (%s) %s: a processor took the server down\n%s"
                      % (how, what, s.log_tail(20)))

    def create(self, s, name, path, inputs, budget_ms=BUDGET_MS, **extra):
        with s.client() as c:
            return c.ok("proc_create", name=name, file=path, inputs=inputs,
                        time_budget_ms=budget_ms, **extra)["proc"]

    def bad_processor(self, s, path, budget_ms=BUDGET_MS, **extra):
        """Creates a processor over a topic of its own; (name, topic)."""
        topic, name = kh.unique("bad-in"), kh.unique("bad")
        kh.create_topic(s, topic)
        self.create(s, name, path, [topic], budget_ms, **extra)
        kh.wait_status(s, name, lambda st: st["state"] == "running", 10,
                       "%s running" % name)
        return name, topic

    def wait_failed(self, s, name, t0, within=STOP_WITHIN):
        """Polls (raw protocol) until name is failed; asserts that came
        within `within` s of t0 and that ping kept answering (each in
        under a second). Returns (status, seconds since t0)."""
        slowest = 0.0
        last = None
        deadline = t0 + within + 5.0 * kh.SLOW
        while True:
            self.assertAlive(s, "while processor %s misbehaved" % name)
            try:
                with s.client(timeout=2.0) as c:
                    p0 = time.monotonic()
                    self.assertIs(c.call("ping").get("ok"), True)
                    slowest = max(slowest, time.monotonic() - p0)
                    last = c.ok("proc_status", name=name)["proc"]
            except (OSError, EOFError, kh.ProtocolError) as e:
                last = e
            now = time.monotonic()
            if isinstance(last, dict) and last["state"] == "failed":
                break
            if now > deadline:
                self.assertAlive(s, "while processor %s misbehaved" % name)
                self.fail("processor %s not failed %.1f s after it began to "
                          "misbehave; last status: %r\n%s"
                          % (name, now - t0, last, s.log_tail(15)))
            time.sleep(0.02)
        took = now - t0
        self.assertLess(took, within,
                        "processor %s stopped %.2f s after it began to "
                        "misbehave (budget %d ms); reason: %s"
                        % (name, took, BUDGET_MS, last.get("reason")))
        self.assertLess(slowest, 1.0, "ping took %.2f s while %s misbehaved"
                        % (slowest, name))
        return last, took

    def assertReasonHas(self, st, words):
        reason = st.get("reason") or ""
        for w in words:
            self.assertIn(w, reason, "reason %r lacks %r" % (reason, w))

    def assertReported(self, s, name, words):
        """/health lists name as processor_failed (message with words);
        /metrics has its live version in state failed."""
        status, _, body = s.http_get("/health")
        doc = json.loads(body)
        self.assertEqual(status, 503, body)
        found = [r for r in doc["reasons"]
                 if r.get("kind") == "processor_failed"
                 and r.get("processor") == name]
        self.assertEqual(len(found), 1, "/health reasons: %r" % doc["reasons"])
        for w in words:
            self.assertIn(w, found[0]["message"], found[0])
        text = s.metrics()
        info = metric_lines(text, "kappa_processor_version_info",
                            processor=name, state="failed")
        self.assertEqual([v for _, v in info], [1.0],
                         "kappa_processor_version_info of %s: %r"
                         % (name, metric_lines(text,
                                               "kappa_processor_version_info",
                                               processor=name)))
        self.assertEqual(kh.parse_metric(text, "kappa_healthy"), 0.0)

    def assertCanaryKeptUp(self, canary, alone, t0, p0, until):
        """The canary's rate from t0 (p0 processed) to at least `until`
        (and at least WINDOW) is >= half its rate alone."""
        end = max(until, t0 + WINDOW)
        delay = end - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        p1, t1 = canary.processed(), time.monotonic()
        rate = (p1 - p0) / (t1 - t0)
        self.assertGreaterEqual(
            rate, 0.5 * alone,
            "canary processed %.0f rec/s while the other misbehaved, %.0f "
            "alone" % (rate, alone))
        st = canary.status()
        self.assertEqual(st["state"], "running", st)

    def assertIdle(self, s, what):
        """No process of the server's tree burns CPU (the canary's producer
        stopped first)."""
        time.sleep(0.2)
        used, per = tree_cpu(s.proc.pid)
        busy = {pid: round(cpu, 2) for pid, cpu in per.items() if cpu > 0.05}
        self.assertLess(used, IDLE_CPU,
                        "the server's processes used %.2f s of CPU in 1 s %s "
                        "(kappad %d; per process: %r)"
                        % (used, what, s.proc.pid, busy))

    def stop_server(self, s):
        """SIGTERM: exits 0 within 10 s (times SLOW), no sanitizer report."""
        self.assertAlive(s, "before the end of the test")
        s.proc.send_signal(signal.SIGTERM)
        try:
            rc = s.proc.wait(10 * kh.SLOW)
        except Exception:
            s.kill()
            self.fail("kappad did not stop within %.0f s of SIGTERM\n%s"
                      % (10 * kh.SLOW, s.log_tail(15)))
        self.assertEqual(rc, 0, s.log_tail(15))
        self.assertEqual(s.sanitizer_reports(), [])

    def misbehave(self, s, path, words, records=20, **extra):
        """The common part: canary alone, then the bad processor over its
        own topic given `records` records at t0; stopped within the budget
        with a reason holding words, reported, the canary kept up, the tree
        idle afterwards. Returns (name, status)."""
        canary = Canary(s).start()
        self.addCleanup(canary.stop)
        before = descendants(s.proc.pid)
        name, topic = self.bad_processor(s, path, **extra)
        workers = descendants(s.proc.pid) - before
        alone = canary.rate_alone(self)
        p0 = canary.processed()
        t0 = time.monotonic()
        with s.client() as c:
            c.produce(topic, [{"i": i} for i in range(records)])
        st, took = self.wait_failed(s, name, t0)
        self.assertReasonHas(st, words)
        self.assertCanaryKeptUp(canary, alone, t0, p0, time.monotonic())
        self.assertAlive(s, "after processor %s failed" % name)
        self.assertReported(s, name, words)
        canary.stop()
        self.assertIsNone(canary.error, "canary producer: %r" % canary.error)
        self.assertIdle(s, "after processor %s failed (%s)"
                        % (name, st.get("reason")))
        self.assertWorkersGone(s, workers, name)
        # It stays failed, and can be deleted.
        self.assertEqual(kh.raw_status(s, name)["state"], "failed")
        with s.client() as c:
            c.ok("proc_delete", name=name)
        return name, st

    # ------------------------------------------------------------------
    # Crashes.

    def test_c_segfault(self):
        s = self.fresh_server(plain_faults=True)
        name, st = self.misbehave(s, plugin("crash_tenth"),
                                  ["worker process", "signal 11"])
        self.assertLess(st["inputs"][0]["offset"], 10, st)
        self.stop_server(s)

    def test_c_abort(self):
        s = self.fresh_server()
        name, st = self.misbehave(s, plugin("abort_tenth"),
                                  ["worker process", "signal 6"])
        self.assertLess(st["inputs"][0]["offset"], 10, st)
        self.stop_server(s)

    # ------------------------------------------------------------------
    # Endless loops: the time budget.

    def test_c_endless_loop(self):
        s = self.fresh_server()
        self.misbehave(s, plugin("loop_process"), ["time budget"])
        self.stop_server(s)

    def test_lua_interpreted_loop(self):
        s = self.fresh_server()
        self.misbehave(s, kh.fixture("iso_loop.lua"), ["time budget"])
        self.stop_server(s)

    def test_lua_jit_loop(self):
        s = self.fresh_server(jit=True)
        self.misbehave(s, kh.fixture("iso_loop.lua"), ["time budget"])
        self.stop_server(s)

    def test_lua_pathological_pattern(self):
        s = self.fresh_server()
        self.misbehave(s, kh.fixture("iso_pattern.lua"), ["time budget"])
        self.stop_server(s)

    def test_c_init_hang(self):
        # A create whose init hangs ends within the budget: either refused
        # (the documented answer to a failed init: nothing remains) or
        # created in state failed; either way the reason names the budget.
        s = self.fresh_server()
        canary = Canary(s).start()
        self.addCleanup(canary.stop)
        topic, name = kh.unique("bad-in"), kh.unique("hang")
        kh.create_topic(s, topic)
        alone = canary.rate_alone(self)
        before = descendants(s.proc.pid)
        p0 = canary.processed()
        t0 = time.monotonic()
        try:
            with s.client(timeout=STOP_WITHIN + 2.0) as c:
                resp = c.call("proc_create", name=name,
                              file=plugin("hang_init"), inputs=[topic],
                              time_budget_ms=BUDGET_MS)
        except (OSError, EOFError) as e:
            self.assertAlive(s, "while an init hung")
            self.fail("proc_create with a hanging init did not answer "
                      "within %.1f s: %r" % (STOP_WITHIN + 2.0, e))
        took = time.monotonic() - t0
        self.assertAlive(s, "while an init hung")
        if resp.get("ok") is True:
            st, took = self.wait_failed(s, name, t0)
            self.assertReasonHas(st, ["time budget"])
            self.assertReported(s, name, ["time budget"])
        else:
            self.assertLess(took, STOP_WITHIN, "proc_create answered after "
                            "%.2f s: %r" % (took, resp))
            self.assertIn("time budget", resp.get("message") or "", resp)
            with s.client() as c:
                self.assertError(c.call("proc_status", name=name), "NOT_FOUND")
        self.assertCanaryKeptUp(canary, alone, t0, p0, time.monotonic())
        canary.stop()
        self.assertIdle(s, "after the init of %s hung" % name)
        self.assertWorkersGone(s, descendants(s.proc.pid) - before, name)
        self.stop_server(s)

    # ------------------------------------------------------------------
    # Memory without bound.

    def memory_hog(self, path):
        s = self.fresh_server(plain_faults=True,
                              config={"view_cache_bytes": VIEW_CACHE})
        canary = Canary(s).start()
        self.addCleanup(canary.stop)
        before = descendants(s.proc.pid)
        name, topic = self.bad_processor(s, path, memory_limit=MEMORY_LIMIT)
        workers = descendants(s.proc.pid) - before
        alone = canary.rate_alone(self)
        baseline = tree_rss_anon(s.proc.pid)
        sampler = RssSampler(s, MEMORY_GUARD)
        self.addCleanup(sampler.stop)
        p0 = canary.processed()
        t0 = time.monotonic()
        with s.client() as c:
            # One MiB per record for the C hog: enough records to pass the
            # limit many times over.
            for _ in range(4):
                c.produce(topic, [{"i": i} for i in range(500)])
        try:
            st, took = self.wait_failed(s, name, t0)
        except AssertionError:
            self.assertFalse(sampler.guard_hit,
                             "the server's processes held more than %d MiB of "
                             "anonymous memory (limit %d bytes): the test "
                             "killed them" % (MEMORY_GUARD // MIB, MEMORY_LIMIT))
            raise
        finally:
            peak = sampler.stop()
        self.assertLess(peak, MEMORY_LIMIT + VIEW_CACHE + MEMORY_HEADROOM,
                        "the server's processes peaked at %.0f MiB of "
                        "anonymous memory (limit %.0f MiB, before %.0f MiB)"
                        % (peak / MIB, MEMORY_LIMIT / MIB, baseline / MIB))
        self.assertReasonHas(st, ["memory"])
        self.assertCanaryKeptUp(canary, alone, t0, p0, time.monotonic())
        self.assertReported(s, name, ["memory"])
        canary.stop()
        self.assertIdle(s, "after processor %s failed" % name)
        self.assertWorkersGone(s, workers, name)
        after = tree_rss_anon(s.proc.pid)
        self.assertLess(after, baseline + 32 * MIB * (4 if kh.SLOW > 1 else 1),
                        "the memory is not given back: %.0f MiB anonymous "
                        "after the failure, %.0f MiB before the hog grew "
                        "(peak %.0f MiB)"
                        % (after / MIB, baseline / MIB, peak / MIB))
        with s.client() as c:
            c.ok("proc_delete", name=name)
        self.stop_server(s)

    def test_c_memory_growth(self):
        self.memory_hog(plugin("grow_memory"))

    def test_lua_memory_growth(self):
        self.memory_hog(kh.fixture("iso_hog.lua"))

    # ------------------------------------------------------------------
    # Operators acting on a looping processor.

    def looping(self, s):
        """A C processor looping in process, with a budget that will not
        stop it; (name, its worker processes)."""
        before = descendants(s.proc.pid)
        name, topic = self.bad_processor(s, plugin("loop_process"),
                                         budget_ms=LONG_BUDGET_MS)
        with s.client() as c:
            c.produce(topic, [{"i": 0}])

        def spinning():
            used, per = tree_cpu(s.proc.pid, 0.3)
            return used > 0.15
        kh.wait_for(spinning, 5, "the looping processor to spin")
        workers = descendants(s.proc.pid) - before
        return name, workers

    def test_delete_looping_processor(self):
        s = self.fresh_server()
        canary = Canary(s).start()
        self.addCleanup(canary.stop)
        kh.wait_status(s, canary.name, lambda st: st["records_processed"] > 0,
                       10, "canary processing")
        name, workers = self.looping(s)
        self.assertTrue(workers, "no worker process of kappad (pid %d) runs "
                        "processor %s: processors must run in child "
                        "processes" % (s.proc.pid, name))
        alone = canary.rate_alone(self)
        p0, t0 = canary.processed(), time.monotonic()
        with s.client() as c:
            resp = c.call("proc_delete", name=name)
        took = time.monotonic() - t0
        self.assertAlive(s, "after deleting a looping processor")
        self.assertIs(resp.get("ok"), True, resp)
        self.assertLess(took, 1.0, "proc_delete of a looping processor took "
                        "%.2f s" % took)
        deadline = t0 + 1.0
        while alive_pids(workers) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(alive_pids(workers), set(),
                         "worker processes of deleted processor %s still run "
                         "1 s after proc_delete" % name)
        with s.client() as c:
            self.assertError(c.call("proc_status", name=name), "NOT_FOUND")
        self.assertCanaryKeptUp(canary, alone, t0, p0, time.monotonic())
        canary.stop()
        self.assertIdle(s, "after a looping processor was deleted")
        self.stop_server(s)

    def test_pause_looping_processor(self):
        s = self.fresh_server()
        canary = Canary(s).start()
        self.addCleanup(canary.stop)
        name, workers = self.looping(s)
        alone = canary.rate_alone(self)
        p0, t0 = canary.processed(), time.monotonic()
        with s.client() as c:
            resp = c.call("proc_pause", name=name)
        took = time.monotonic() - t0
        self.assertAlive(s, "after pausing a looping processor")
        self.assertIs(resp.get("ok"), True, resp)
        self.assertLess(took, 1.0, "proc_pause of a looping processor took "
                        "%.2f s" % took)
        # (wait_status's timeout is times SLOW: this is 1 s in any build.)
        kh.wait_status(s, name, lambda st: st["state"] == "paused",
                       1.0 / kh.SLOW, "processor %s paused within 1 s of "
                       "proc_pause" % name)
        self.assertCanaryKeptUp(canary, alone, t0, p0, time.monotonic())
        canary.stop()
        # Paused means its loop no longer runs.
        self.assertIdle(s, "after the looping processor %s was paused" % name)
        self.assertEqual(kh.raw_status(s, name)["state"], "paused")
        with s.client() as c:
            c.ok("proc_delete", name=name)
        self.stop_server(s)

    # ------------------------------------------------------------------
    # Shutdown.

    def test_c_plugin_cannot_escape_its_worker(self):
        """A native plugin runs under its worker's seccomp filter: no
        sockets, no programs, no fork, no signals to kappad."""
        if kh.SLOW > 1:
            self.skipTest("the seccomp filter is off under AddressSanitizer "
                          "(its leak check needs ptrace and clone)")
        s = self.fresh_server()
        name, topic = self.bad_processor(s, plugin("escape"))
        with s.client() as c:
            c.produce(topic, [{"i": 1}])
        kh.wait_caught_up(s, name)
        view = kh.view_scan(s, name)
        self.assertEqual(view, {"socket": "blocked", "fork": "blocked",
                                "execve": "blocked",
                                "kill_parent": "blocked"}, view)
        self.assertAlive(s, "after processor %s tried to escape" % name)
        self.assertEqual(kh.proc_status(s, name)["state"], "running")
        self.stop_server(s)

    def test_sigterm_with_looping_processors(self):
        s = self.fresh_server(jit=True)
        loopers = [plugin("loop_process"), plugin("loop_process"),
                   kh.fixture("iso_loop.lua"), kh.fixture("iso_pattern.lua")]
        topics = [self.bad_processor(s, path, budget_ms=LONG_BUDGET_MS)[1]
                  for path in loopers]
        with s.client() as c:
            for topic in topics:
                c.produce(topic, [{"i": 0}])
        # All of them in their loops.
        kh.wait_for(lambda: tree_cpu(s.proc.pid, 0.5)[0] > 0.4, 5,
                    "the looping processors to spin")
        tree_before = descendants(s.proc.pid)
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        try:
            rc = s.proc.wait(5.0)
        except Exception:
            s.kill()
            self.fail("kappad did not stop within 5 s of SIGTERM with %d "
                      "looping processors\n%s" % (len(loopers), s.log_tail(15)))
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, "kappad exit status after SIGTERM (%.2f s)\n%s"
                         % (took, s.log_tail(15)))
        deadline = time.monotonic() + 1.0
        while alive_pids(tree_before) and time.monotonic() < deadline:
            time.sleep(0.02)
        left = alive_pids(tree_before)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.assertEqual(left, set(), "processes of kappad's tree outlived it")
        self.assertEqual(s.sanitizer_reports(), [])


if __name__ == "__main__":
    kh.main()
