#!/usr/bin/env python3
"""Cairn's module rules and its file-level import graph, checked.

Usage: scripts/architecture.py [--graph]

Rules (DESIGN.md §1), each a search over the source:
  1. only node/src/raft/ names raft-rs (the `raft` crate);
  2. only node/src/apply/ (and the offline tools of the binary, node/src/cli/) can write the
     backend: `Backend::open` makes its one `BackendWriter`, and neither is named elsewhere;
  3. node/src/grpc/ never writes storage (no backend writer, WAL, sled batch or MVCC write).
And: no two files import each other, directly or through others (a cycle), except a module
file and the files of its own submodules (a child uses its parent's items by `super::`).

Exits 1 and prints what breaks a rule; with --graph, prints every file's imports.
"""
import os
import re
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = ["api/src", "backup/src", "node/src", "operator/src", "e2e/src"]


def rust_files(src):
    """The library's files: binaries (main.rs, src/bin/) are crates of their own."""
    for d, _, files in os.walk(os.path.join(ROOT, src)):
        if os.sep + "bin" in d[len(ROOT):]:
            continue
        for f in files:
            if f.endswith(".rs") and f != "main.rs":
                yield os.path.join(d, f)


def module_path(src, path):
    rel = os.path.relpath(path, os.path.join(ROOT, src))[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def expand(tree):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e]."""
    tree = tree.replace(" ", "").replace("\n", "")
    m = re.match(r"^(.*?)\{(.*)\}$", tree)
    if not m:
        return [tree]
    prefix, inner = m.group(1), m.group(2)
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    if cur:
        parts.append(cur)
    out = []
    for p in parts:
        out.extend(prefix + q for q in expand(p))
    return out


def references(text):
    """Every path a file names that starts with crate:: or super::, as segment lists."""
    text = strip_comments(text)
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        paths.extend(expand(m.group(1)))
    paths.extend(m.group(0) for m in re.finditer(r"\b(?:crate|super)(?:::(?:super|\w+))+", text))
    return [p.split("::") for p in paths if p.startswith(("crate::", "super::"))]


def resolve(modules, here, is_mod_file, segs):
    """The module file a path lands in: the longest prefix that names one."""
    if segs[0] == "crate":
        base, rest = (), segs[1:]
    else:
        base, rest = here, segs
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
    target = base
    for s in rest:
        if target + (s,) in modules:
            target = target + (s,)
        else:
            break
    return target


def graph():
    edges = {}
    for src in CRATES:
        if not os.path.isdir(os.path.join(ROOT, src)):
            continue
        files = {module_path(src, p): p for p in rust_files(src)}
        for mod, path in files.items():
            is_mod_file = os.path.basename(path) in ("mod.rs", "lib.rs", "main.rs")
            text = open(path, encoding="utf-8").read()
            targets = set()
            for segs in references(text):
                t = resolve(files, mod, is_mod_file, segs)
                if t != mod and t in files:
                    targets.add(files[t])
            edges[path] = targets
    return edges


def is_ancestor_module(parent, child):
    """Whether `parent` is the module file (mod.rs/lib.rs) of a directory holding `child`."""
    if os.path.basename(parent) not in ("mod.rs", "lib.rs", "main.rs"):
        return False
    return os.path.dirname(child).startswith(os.path.dirname(parent))


def cycles(edges):
    """Strongly connected components of more than one file (Tarjan), with parent/child
    module edges left out."""
    g = {a: {b for b in bs if not is_ancestor_module(b, a) and not is_ancestor_module(a, b)} for a, bs in edges.items()}
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
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
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in g:
        if v not in index:
            visit(v)
    return out


def grep(pattern, under, exclude=()):
    hits = []
    for src in CRATES:
        for p in rust_files(src):
            rel = os.path.relpath(p, ROOT)
            if not rel.startswith(under) or any(rel.startswith(e) for e in exclude):
                continue
            # Tests may build what they test any way they like.
            if os.path.basename(p) == "tests.rs" or p.endswith("_tests.rs"):
                continue
            text = strip_comments(open(p, encoding="utf-8").read())
            for i, line in enumerate(text.splitlines(), 1):
                if re.search(pattern, line):
                    hits.append(f"{rel}:{i}: {line.strip()}")
    return hits


def main():
    edges = graph()
    if "--graph" in sys.argv:
        for a in sorted(edges):
            print(os.path.relpath(a, ROOT), "->", ", ".join(sorted(os.path.relpath(b, ROOT) for b in edges[a])))
        return 0
    problems = []
    rules = [
        ("only node/src/raft/ names raft-rs", r"(?<![\w:])raft::(?!\w+!)(eraftpb|storage|prelude|RawNode|Config|Ready|StateRole|SnapshotStatus|Storage|Error|StorageError|GetEntriesContext|RaftState|Result)\b", "node/src", ("node/src/raft/",)),
        ("only node/src/apply/ and the offline tools (the binary's node/src/cli/) open the backend or name its writer", r"\b(BackendWriter|Backend::open)\b", "node/src", ("node/src/apply/", "node/src/storage/", "node/src/cli/")),
        ("node/src/grpc/ never writes storage", r"\b(BackendWriter|WriteTxn|sled::Batch|Wal\b|\.write\(\))", "node/src/grpc", ()),
    ]
    for name, pattern, under, exclude in rules:
        hits = grep(pattern, under, exclude)
        if hits:
            problems.append(f"rule broken: {name}:\n  " + "\n  ".join(hits))
    for comp in cycles(edges):
        problems.append("import cycle: " + " <-> ".join(os.path.relpath(c, ROOT) for c in comp))
    for p in problems:
        print(p)
    if not problems:
        print("architecture: the three module rules hold and no file imports itself through others")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
