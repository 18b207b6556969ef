#!/usr/bin/env python3
"""berth's house rules, checked (tests/lint.sh layers).

1. Includes are written from the repository root ("executor/base/fs.h") and
   point downward only (doc/development.md, "Source layout"):
       cli, spank -> executor -> runtime -> dockerd, cache -> convert
       -> source -> base -> conf
   A runtime file may include executor/executor.h and executor/task.h:
   the interface it implements.  executor.h includes no runtime/ or
   dockerd/ header; nothing outside cli/ includes cli/.
2. No import circle between source files: file A uses a function defined
   in file B and B one defined in A (read from the built objects with nm;
   the runtimes' ops tables are data, not calls, and are not counted).

Usage: lint_layers.py [--graph] [BUILD]   (--graph prints the include
graph between folders, with counts, and checks nothing)."""
import os
import re
import subprocess
import sys
from collections import defaultdict

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SOURCE_DIRS = ("conf", "executor", "cli", "spank")

# folder -> the folders its files may include (itself always allowed)
ALLOWED = {
    "conf": set(),
    "base": {"conf"},
    "source": {"base", "conf"},
    "convert": {"source", "base", "conf"},
    "cache": {"convert", "source", "base", "conf"},
    "dockerd": {"base", "conf"},
    "runtime": {"executor-interface", "dockerd", "cache", "convert", "source", "base", "conf"},
    "executor": {"cache", "convert", "source", "base", "conf"},
    "spank": {"executor", "executor-interface", "runtime", "dockerd", "cache", "convert",
              "source", "base", "conf"},
    "cli": {"executor", "executor-interface", "runtime", "dockerd", "cache", "convert",
            "source", "base", "conf"},
}
INTERFACE = {"executor/executor.h", "executor/task.h"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer(path):
    parts = path.split("/")
    if parts[0] != "executor":
        return parts[0]
    if len(parts) == 2:
        return "executor"
    return parts[1]  # base/dl counts as base


def sources():
    for top in SOURCE_DIRS:
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in sorted(files):
                if f.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(d, f), ROOT)


def includes(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return INCLUDE.findall(f.read())


def check_includes():
    bad = []
    for src in sources():
        for inc in includes(src):
            if not os.path.isfile(os.path.join(ROOT, inc)):
                bad.append(f"{src}: #include \"{inc}\" is not a path from the root")
                continue
            have, want = layer(src), layer(inc)
            if have == want:
                continue
            if inc in INTERFACE and "executor-interface" in ALLOWED[have]:
                continue
            if want not in ALLOWED.get(have, set()):
                bad.append(f"{src}: #include \"{inc}\" points upward ({have} may not include {want})")
    return bad


def defined_and_used(obj):
    out = subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout
    defs, uses = set(), set()
    for line in out.splitlines():
        f = line.split()
        if len(f) == 3 and f[1] == "T":
            defs.add(f[2])
        elif len(f) == 2 and f[0] == "U":
            uses.add(f[1])
    return defs, uses


def circles(build):
    objdir = os.path.join(ROOT, build, "obj")
    objs = []
    for d, _, files in os.walk(objdir):
        objs += [os.path.join(d, f) for f in files if f.endswith(".o")]
    if not objs:
        return [f"no objects under {objdir}: run make first"]
    owner, uses = {}, {}
    for o in objs:
        name = os.path.relpath(o, objdir)[:-2] + ".c"
        if not os.path.isfile(os.path.join(ROOT, name)):
            continue  # an object left from a source since removed
        d, u = defined_and_used(o)
        for s in d:
            owner[s] = name
        uses[name] = u
    edges = {a: {owner[s] for s in u if s in owner and owner[s] != a} for a, u in uses.items()}
    # Tarjan's strongly connected components
    index, low, stack, on, comps, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    bad = []
    for comp in comps:
        ties = [f"{a} -> {b}" for a in comp for b in sorted(edges[a]) if b in comp]
        bad.append("import circle: " + ", ".join(comp) + " (" + "; ".join(ties) + ")")
    return bad


def folder(path):
    parts = path.split("/")
    return "/".join(parts[:-1]) or "."


def graph():
    g, lines = defaultdict(int), defaultdict(int)
    for src in sources():
        with open(os.path.join(ROOT, src), encoding="utf-8") as f:
            lines[folder(src)] += sum(1 for _ in f)
        for inc in includes(src):
            if folder(inc) != folder(src):
                g[(folder(src), folder(inc))] += 1
    print("lines per folder:")
    for d in sorted(lines):
        print(f"  {d:22} {lines[d]:6}")
    print("includes between folders (from -> to: count):")
    for (a, b), c in sorted(g.items()):
        print(f"  {a:22} -> {b:22} {c}")


def main(argv):
    if argv and argv[0] == "--graph":
        graph()
        return 0
    build = argv[0] if argv else os.environ.get("BUILD", "build")
    bad = check_includes() + circles(build)
    for b in bad:
        print(b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
