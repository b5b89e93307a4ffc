"""Tests of check_shape.py on small source trees written to a temporary folder.

Run with `python3 -m unittest discover -s scripts -p 'test_*.py'` (`make shape` does).
"""

import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_shape  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_shape.py")


class Tree:
    """A source tree in a temporary folder: {relative path: content}."""

    def __init__(self, files):
        self.dir = tempfile.TemporaryDirectory()
        self.src = os.path.join(self.dir.name, "src")
        os.makedirs(self.src)
        self.add(files)

    def add(self, files):
        for rel, text in files.items():
            path = os.path.join(self.src, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(textwrap.dedent(text))

    def problems(self, max_lines=check_shape.MAX_LINES):
        return check_shape.check(self.src, max_lines)

    def close(self):
        self.dir.cleanup()


class ModuleLoops(unittest.TestCase):
    def tree(self, files):
        t = Tree({"lib.rs": "pub mod a;\npub mod b;\npub mod c;\n", **files})
        self.addCleanup(t.close)
        return t

    def test_a_tree_whose_modules_import_one_way_passes(self):
        t = self.tree({
            "a.rs": "use crate::b::Thing;\n",
            "b/mod.rs": "pub mod inner;\nuse crate::c;\n",
            "b/inner.rs": "use super::super::c::X;\n",
            "c.rs": "pub struct X;\n",
        })
        self.assertEqual(t.problems(), [])
        self.assertEqual(check_shape.graph(t.src), {"a": {"b"}, "b": {"c"}, "c": set()})

    def test_two_modules_importing_each_other_fail_naming_both(self):
        t = self.tree({
            "a.rs": "use crate::b;\n",
            "b.rs": "use crate::{a::Thing, c};\n",
            "c.rs": "",
        })
        problems = t.problems()
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("loop: a, b (a -> b; b -> a)", problems[0])

    def test_a_loop_through_three_modules_fails(self):
        t = self.tree({
            "a/mod.rs": "use super::b::B;\n",
            "b.rs": "fn f() { crate::c::run(); }\n",
            "c.rs": "use crate::{\n    x::Y,\n    a::{self, Z},\n};\n",
        })
        problems = t.problems()
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("loop: a, b, c", problems[0])

    def test_comments_strings_and_tests_are_not_imports(self):
        t = self.tree({
            "a.rs": "use crate::b;\n",
            "b.rs": textwrap.dedent('''\
                //! See [`crate::a`].
                /* crate::a::f() */
                const S: &str = "crate::a::X";
                const R: &str = r#"crate::a"#;
                const C: char = '"';
                fn g<'a>(x: &'a str) -> &'a str { x }
                #[cfg(test)]
                mod tests { use crate::a; }
                '''),
            "b/tests.rs": "use crate::a;\n",
            "c.rs": "",
        })
        self.assertEqual(t.problems(), [])


class LongFiles(unittest.TestCase):
    def test_only_lines_before_the_tests_count(self):
        t = Tree({
            "lib.rs": "pub mod a;\npub mod b;\n",
            "a.rs": "fn f() {}\n" * 10 + "#[cfg(test)]\nmod tests {\n" + "// t\n" * 50 + "}\n",
            "b.rs": "fn f() {}\n" * 11,
        })
        self.addCleanup(t.close)
        problems = t.problems(max_lines=10)
        self.assertEqual(len(problems), 1, problems)
        self.assertIn(os.path.join("src", "b.rs") + ": 11 lines before #[cfg(test)], over the limit of 10", problems[0])


class CommandLine(unittest.TestCase):
    def run_script(self, src):
        return subprocess.run([sys.executable, SCRIPT, src], capture_output=True, text=True)

    def test_the_exit_code_is_zero_only_for_a_tree_that_keeps_both_limits(self):
        good = Tree({"lib.rs": "", "a.rs": "use crate::b;\n", "b.rs": ""})
        bad = Tree({"lib.rs": "", "a.rs": "use crate::b;\n", "b.rs": "use crate::a;\n"})
        self.addCleanup(good.close)
        self.addCleanup(bad.close)
        ok = self.run_script(good.src)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        failed = self.run_script(bad.src)
        self.assertEqual(failed.returncode, 1)
        self.assertIn("a -> b; b -> a", failed.stderr)


if __name__ == "__main__":
    unittest.main()
