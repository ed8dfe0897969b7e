#!/usr/bin/env python3
"""Checks the layering of server/ (docs/ARCHITECTURE.md) from its #include lines.

Usage: check_layout.py SERVER_DIR. Prints each problem and exits 1 when any
(check_layout.py --self-test checks that each rule catches what it should):
  - server/'s top holds anything but folders and kappad.c (kappad.h);
  - a .c file has more than 1,000 lines;
  - two headers share a basename;
  - an include of another folder's header is not written "folder/file.h",
    or names a header that does not exist;
  - a folder includes a folder it may not (the table below: each layer sees
    only the layers beneath it);
  - modules (x.c + x.h) of one folder include each other in a circle, unless
    the top comment of every file on the circle says "include circle" and why.
"""
import collections
import os
import re
import sys

# Which folders each folder may include (besides itself).
ALLOWED = {
    "base": set(),
    "wire": {"base"},
    "log": {"base", "wire"},
    "luahost": {"base"},
    "proc": {"base", "wire", "log", "luahost"},
    "net": {"base", "wire", "log", "proc"},
    "obs": {"base", "wire", "log", "proc", "net"},
    "ctl": {"base", "wire", "log", "luahost", "proc"},
}
PUBLIC_HEADERS = {"kappa_processor.h"}  # plugins/, the processor ABI
MAX_LINES = 1000


def main(root):
    problems = []
    files = {}
    for d, _, names in os.walk(root):
        for n in names:
            if n.endswith((".c", ".h")):
                p = os.path.join(d, n)
                with open(p, errors="replace") as f:
                    files[os.path.relpath(p, root)] = f.read()

    for entry in sorted(os.listdir(root)):
        full = os.path.join(root, entry)
        if os.path.isdir(full):
            if entry not in ALLOWED:
                problems.append("server/%s/ is not a known layer (add it to "
                                "tests/check_layout.py and the docs)" % entry)
        elif entry not in ("kappad.c", "kappad.h"):
            problems.append("server/%s: only folders and kappad.c belong at "
                            "server/'s top" % entry)

    by_base = collections.defaultdict(list)
    for p in files:
        if p.endswith(".h"):
            by_base[os.path.basename(p)].append(p)
    for base, paths in sorted(by_base.items()):
        if len(paths) > 1:
            problems.append("header name %s is used twice: %s" %
                            (base, ", ".join(sorted(paths))))

    for p, text in sorted(files.items()):
        if p.endswith(".c") and text.count("\n") > MAX_LINES:
            problems.append("server/%s has %d lines (over %d)" %
                            (p, text.count("\n"), MAX_LINES))

    module_edges = collections.defaultdict(set)
    for p, text in sorted(files.items()):
        folder = os.path.dirname(p)
        for inc in re.findall(r'^\s*#\s*include\s+"([^"]+)"', text, re.M):
            if inc in PUBLIC_HEADERS:
                continue
            if "/" not in inc:
                target = os.path.join(folder, inc) if folder else inc
                if target not in files:
                    problems.append('server/%s includes "%s": a header of '
                                    'another folder is written "folder/%s"'
                                    % (p, inc, inc))
                    continue
            else:
                target = os.path.normpath(inc)
                if target not in files:
                    problems.append('server/%s includes "%s", which is not '
                                    "under server/" % (p, inc))
                    continue
            tfolder = os.path.dirname(target)
            if tfolder == folder:
                a = os.path.splitext(p)[0]
                b = os.path.splitext(target)[0]
                if a != b:
                    module_edges[a].add(b)
            elif folder and tfolder not in ALLOWED.get(folder, set()):
                problems.append("server/%s includes %s: %s/ may include only "
                                "%s" % (p, inc, folder,
                                        ", ".join(sorted(ALLOWED[folder]))
                                        or "nothing outside itself"))

    problems += module_circles(module_edges, files)
    for line in problems:
        print(line)
    return 1 if problems else 0


def module_circles(edges, files):
    """Circles between modules of one folder not explained at their top."""
    found = []
    state = {}
    seen = set()

    def explained(module):
        for ext in (".c", ".h"):
            text = files.get(module + ext)
            if text is None:
                continue
            head = text.split("*/", 1)[0]
            if "include circle" not in head:
                return False
        return True

    def visit(u, path):
        state[u] = 1
        for v in sorted(edges[u]):
            if state.get(v) == 1:
                loop = path[path.index(v):] + [v] if v in path else [u, v]
                key = frozenset(loop)
                if key not in seen and not all(explained(m) for m in loop[:-1]):
                    seen.add(key)
                    found.append("include circle in server/%s/: %s" % (
                        os.path.dirname(loop[0]),
                        " -> ".join(os.path.basename(m) for m in loop)))
            elif v not in state:
                visit(v, path + [v])
        state[u] = 2

    for u in sorted(edges):
        if u not in state:
            visit(u, [u])
    return found


def self_test():
    """Each rule, broken once in a scratch tree, must be reported."""
    import contextlib
    import io
    import tempfile

    good = {
        "kappad.c": '#include "net/b.h"\n',
        "base/a.h": "/* a */\n", "base/a.c": '#include "a.h"\n',
        "net/b.h": '#include "base/a.h"\n', "net/b.c": '#include "b.h"\n',
    }
    broken = {
        "a layer includes one above": {"base/a.c": '#include "net/b.h"\n'},
        "another folder without its name": {"net/b.c": '#include "a.h"\n'},
        "a .c file at the top": {"stray.c": "\n"},
        "a long file": {"base/a.c": "\n" * (MAX_LINES + 1)},
        "a duplicate header": {"net/a.h": "\n"},
        "a circle in a folder": {"net/c.h": '#include "b.h"\n',
                                 "net/b.c": '#include "c.h"\n',
                                 "net/b.h": '#include "c.h"\n'},
    }
    failures = 0
    for name, change in [("the good tree", {})] + list(broken.items()):
        with tempfile.TemporaryDirectory() as root:
            for rel, text in dict(good, **change).items():
                os.makedirs(os.path.dirname(os.path.join(root, rel)),
                            exist_ok=True)
                with open(os.path.join(root, rel), "w") as f:
                    f.write(text)
            with contextlib.redirect_stdout(io.StringIO()):
                rc = main(root)
        if rc != (0 if not change else 1):
            print("self-test: %s gave exit %d" % (name, rc))
            failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(self_test())
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "server"))
