#!/usr/bin/env python3
"""Checks the shape of the crate's source tree and fails (exit 1) when it breaks one of two limits:

- no two top-level modules of src/ import each other, directly or around a loop (a -> b -> c -> a);
- no .rs file has more than MAX_LINES lines before its first `#[cfg(test)]` (big test modules go to a `tests.rs`
  beside the code).

A top-level module is `src/<name>.rs` or the folder `src/<name>/`. Module `a` imports `b` when code in `a` names
`crate::b` (also inside a `use crate::{...}` group) or, in `src/a.rs` and `src/a/mod.rs`, `super::b`. Comments,
string literals, the code after a file's first `#[cfg(test)]` and files named `tests.rs` do not count: a doc link or
a test helper is not an import of the running program. `lib.rs` and `main.rs` are the crate roots, not modules.

Usage: python3 scripts/check_shape.py [SRC_DIR] [--max-lines N]
"""

import argparse
import os
import re
import sys

MAX_LINES = 800
TEST_MARKER = "#[cfg(test)]"
ROOTS = {"lib.rs", "main.rs"}


def strip_comments_and_strings(text):
    """Returns `text` with comments and string/char literals blanked, keeping the line breaks."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    if text[i] == "\n":
                        out.append("\n")
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            end = n if end < 0 else end + 1 + len(hashes)
            out.append("\n" * text.count("\n", i, end))
            i = end
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\":
                    i += 1
                elif text[i] == "\n":
                    out.append("\n")
                i += 1
            i += 1
        elif c == "'" and re.match(r"'(?:\\u\{[0-9a-fA-F]+\}|\\.|[^\\'\n])'", text[i:i + 12]):
            # A char literal ('a', '\n', '\u{1F600}', '"'); a lifetime ('a) has no closing quote and is kept.
            i += len(re.match(r"'(?:\\u\{[0-9a-fA-F]+\}|\\.|[^\\'\n])'", text[i:i + 12]).group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def code_before_tests(text):
    """The part of a file before its first `#[cfg(test)]`."""
    cut = text.find(TEST_MARKER)
    return text if cut < 0 else text[:cut]


def top_level_modules(src):
    """Maps each top-level module name to its .rs files."""
    modules = {}
    for entry in sorted(os.listdir(src)):
        path = os.path.join(src, entry)
        if os.path.isfile(path) and entry.endswith(".rs") and entry not in ROOTS:
            modules.setdefault(entry[:-3], []).append(path)
        elif os.path.isdir(path):
            for root, _, files in os.walk(path):
                for f in sorted(files):
                    if f.endswith(".rs"):
                        modules.setdefault(entry, []).append(os.path.join(root, f))
    return {name: files for name, files in modules.items() if files}


def brace_group(code, start):
    """The text inside the braces that open at `start`, up to the matching close."""
    depth, i = 0, start
    while i < len(code):
        if code[i] == "{":
            depth += 1
        elif code[i] == "}":
            depth -= 1
            if depth == 0:
                return code[start + 1:i]
        i += 1
    return code[start + 1:]


def first_level_names(group):
    """The first path segment of each item of a `use` group at its own level: `a::b, c, d::{e, f}` -> a, c, d."""
    names, depth, item = [], 0, ""
    for c in group + ",":
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        if c == "," and depth == 0:
            m = re.match(r"\s*(?:r#)?([A-Za-z_][A-Za-z0-9_]*)", item)
            if m:
                names.append(m.group(1))
            item = ""
        else:
            item += c
    return names


def imports_of(path, src, own, names):
    """The top-level modules (other than `own`) that the code of the file at `path` imports."""
    with open(path, encoding="utf-8") as f:
        code = strip_comments_and_strings(code_before_tests(f.read()))
    found = set()
    prefixes = [r"\bcrate::"]
    rel = os.path.relpath(path, src)
    if rel == own + ".rs" or rel == os.path.join(own, "mod.rs"):
        prefixes.append(r"(?<![A-Za-z0-9_:])super::")
    for prefix in prefixes:
        for m in re.finditer(prefix + r"\s*(\{|(?:r#)?[A-Za-z_][A-Za-z0-9_]*)", code):
            if m.group(1) == "{":
                candidates = first_level_names(brace_group(code, m.start(1)))
            else:
                candidates = [m.group(1).removeprefix("r#")]
            found.update(c for c in candidates if c in names and c != own)
    return found


def graph(src):
    modules = top_level_modules(src)
    edges = {}
    for name, files in modules.items():
        deps = set()
        for path in files:
            if os.path.basename(path) == "tests.rs":
                continue
            deps |= imports_of(path, src, name, modules.keys())
        edges[name] = deps
    return edges


def loops(edges):
    """The strongly connected components of more than one module (Tarjan), each sorted, in sorted order."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(max(1000, 10 * len(edges)))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(out)


def long_files(src, max_lines):
    """(path, lines before the tests) of every .rs file over `max_lines`, largest first."""
    out = []
    for root, _, files in os.walk(src):
        for f in files:
            if f.endswith(".rs"):
                path = os.path.join(root, f)
                with open(path, encoding="utf-8") as fh:
                    lines = code_before_tests(fh.read()).count("\n")
                if lines > max_lines:
                    out.append((path, lines))
    return sorted(out, key=lambda p: (-p[1], p[0]))


def check(src, max_lines=MAX_LINES):
    """Every problem found, one sentence each; empty when the tree keeps both limits."""
    problems = []
    edges = graph(src)
    for component in loops(edges):
        members = set(component)
        pairs = sorted(f"{a} -> {b}" for a in component for b in sorted(edges[a] & members))
        problems.append(
            f"top-level modules import each other in a loop: {', '.join(component)} ({'; '.join(pairs)})"
        )
    for path, lines in long_files(src, max_lines):
        problems.append(
            f"{path}: {lines} lines before #[cfg(test)], over the limit of {max_lines} "
            "(split the file, or move its tests to a tests.rs beside it)"
        )
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", nargs="?", default="src")
    parser.add_argument("--max-lines", type=int, default=MAX_LINES)
    args = parser.parse_args(argv)
    if not os.path.isdir(args.src):
        print(f"check_shape: {args.src} is not a folder", file=sys.stderr)
        return 2
    problems = check(args.src, args.max_lines)
    for p in problems:
        print(f"check_shape: {p}", file=sys.stderr)
    if not problems:
        print(f"check_shape: {args.src}: no module loop, no file over {args.max_lines} lines before its tests")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
