"""Code versions: a task re-runs when its code or the project code it uses changes (named in
`--explain` and in resume's warning), not when a docstring, a comment or the layout changes,
nor when an installed library is upgraded."""

from __future__ import annotations

import importlib
import re
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Project
from retap.codeversion import changed_parts, code_version

HELPERS = '''
"""Helpers the tasks use."""

LIMIT = 3


def clean(text):
    """Strip and cut to LIMIT words."""
    return " ".join(text.split()[:LIMIT])
'''

FANCY = '''
def fmt(text):
    return f"<{text}>"
'''

TASKS = '''
import retap
import fancylib
import helpers
from helpers import LIMIT


def _log(*words):
    with open("exec.log", "a") as fh:
        fh.write(" ".join(map(str, words)) + "\\n")


class Tidy(retap.Task, cache="inputs"):
    """Cleans its input with the project's helper."""

    def process(self, text):
        _log("tidy", text)
        return fancylib.fmt(helpers.clean(text))


@retap.task(cache="inputs")
def count(text: str) -> int:
    """How many words, at most LIMIT."""
    _log("count", text)
    return min(len(text.split()), LIMIT)


@retap.task(cache="inputs")
def pinned(text: str) -> str:
    """Pinned by hand: only its version says when it changed."""
    _log("pinned", text)
    return helpers.clean(text)


pinned.version = "1"


@retap.task
def fail_once(text: str) -> str:
    """Fails while the file 'broken' exists."""
    import os

    if os.path.exists("broken"):
        raise RuntimeError("broken")
    return text
'''


@pytest.fixture
def coded(project: Project, tmp_path: Path) -> Project:
    """A project whose tasks use a helper module of its own and an 'installed' library."""
    site = tmp_path / "venv" / "lib" / "site-packages"
    site.mkdir(parents=True)
    (site / "fancylib.py").write_text(textwrap.dedent(FANCY))
    project.env["PYTHONPATH"] = str(site)
    project.write("helpers.py", HELPERS)
    project.retapfile(TASKS)
    project.site = site  # type: ignore[attr-defined]
    return project


def explained(project: Project, *words: str) -> str:
    """The `--explain` line of node 0 for `retap run -- WORDS`, its digests masked."""
    err = project.run("run", "--explain", "--", *words, check=0).err
    found = re.search(r"(run|skip) +node 0 \(\w+\) [^:]*: (.*)", err)
    assert found, err
    return re.sub(r"[0-9a-f]{16}", "H", found[2])


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def test_a_changed_helper_reruns_the_tasks_that_use_it_and_is_named(coded: Project) -> None:
    coded.run("run", "--", "tidy", "a b c d", check=0)
    coded.run("run", "--", "count", "a b c d", check=0)
    edit(coded.path / "helpers.py", 'return " ".join(text.split()[:LIMIT])',
         'return " ".join(text.split()[:LIMIT]).lower()')
    assert explained(coded, "tidy", "a b c d") == "code changed (H -> H) in helpers:clean"
    # count does not reach clean: still up to date
    assert explained(coded, "count", "a b c d").startswith("up to date")
    assert coded.counts() == {"tidy": 2, "count": 1}


def test_a_changed_constant_reruns_the_tasks_that_read_it_through_an_import(
        coded: Project) -> None:
    coded.run("run", "--", "count", "a b c d", check=0)
    coded.run("run", "--", "tidy", "a b c d", check=0)
    edit(coded.path / "helpers.py", "LIMIT = 3", "LIMIT = 2")
    assert explained(coded, "count", "a b c d") == "code changed (H -> H) in helpers:LIMIT"
    assert explained(coded, "tidy", "a b c d") == "code changed (H -> H) in helpers:LIMIT"


def test_docstrings_comments_and_layout_do_not_rerun(coded: Project) -> None:
    coded.run("run", "--", "tidy", "a b", check=0)
    coded.run("run", "--", "count", "a b", check=0)
    helpers = coded.path / "helpers.py"
    edit(helpers, '"""Strip and cut to LIMIT words."""', '"""Strip, then keep LIMIT words."""')
    edit(helpers, 'return " ".join(text.split()[:LIMIT])',
         '# the first LIMIT words\n    return " ".join(\n        text.split()[: LIMIT]\n    )')
    tasks = coded.path / "retapfile.py"
    edit(tasks, '"""How many words, at most LIMIT."""', '"""Counts words (LIMIT at most)."""')
    edit(tasks, "return min(len(text.split()), LIMIT)",
         "return min(len(text.split()),  LIMIT)  # capped")
    edit(tasks, '"""Cleans its input with the project\'s helper."""', "# no docstring now")
    assert explained(coded, "tidy", "a b").startswith("up to date")
    assert explained(coded, "count", "a b").startswith("up to date")
    assert coded.counts() == {"tidy": 1, "count": 1}


def test_an_upgraded_installed_library_does_not_rerun(coded: Project) -> None:
    coded.run("run", "--", "tidy", "a b", check=0)
    edit(coded.site / "fancylib.py", 'return f"<{text}>"',  # type: ignore[attr-defined]
         'return f"<{text}>"  # 2.0\n\n\ndef new_api():\n    return 2')
    assert explained(coded, "tidy", "a b").startswith("up to date")
    assert coded.counts() == {"tidy": 1}


def test_a_pinned_version_takes_over_from_the_code(coded: Project) -> None:
    coded.run("run", "--", "pinned", "a b", check=0)
    edit(coded.path / "helpers.py", "LIMIT = 3", "LIMIT = 1")
    assert explained(coded, "pinned", "a b").startswith("up to date")
    edit(coded.path / "retapfile.py", 'pinned.version = "1"', 'pinned.version = "2"')
    assert explained(coded, "pinned", "a b") == "code changed (1 -> 2)"


def test_resume_names_the_changed_helper_and_the_timeline_keeps_it(coded: Project) -> None:
    (coded.path / "broken").touch()
    coded.run("run", "--", "tidy", "a b", "--:", "fail_once", check=1)
    edit(coded.path / "helpers.py", "LIMIT = 3", "LIMIT = 1")
    (coded.path / "broken").unlink()
    err = coded.run("resume", "last", check=0).err
    assert re.search(r"node 0 \(tidy\): code [0-9a-f]{16} -> [0-9a-f]{16} in helpers:LIMIT",
                     err), err
    shown = coded.run("show", "last", check=0).out
    assert re.search(r"code of node 0 \(tidy\) changed \S+ -> \S+ in helpers:LIMIT: reused",
                     shown), shown


# the digest itself, in one process ---------------------------------------------------------------

MODULE = '''
"""A module of tasks."""
import retap

FACTOR = {factor}


def helper(x):
    """Scale x."""
    return x {op} FACTOR


class Scale(retap.Task):
    """Scales its input."""

    def process(self, x):
        return helper(x)
'''

_counter = iter(range(10**9))


def _version_of(tmp: Path, source: str) -> tuple[str, dict[str, str]]:
    """Import ``source`` as a fresh module (always of one name) and compute its task's code
    version."""
    where = tmp / str(next(_counter))
    where.mkdir()
    (where / "cv_tasks.py").write_text(source)
    sys.path.insert(0, str(where))
    try:
        module = importlib.import_module("cv_tasks")
        version = code_version(module.Scale)
    finally:
        sys.path.remove(str(where))
        sys.modules.pop("cv_tasks", None)
    return version.digest, {k.split(":", 1)[1]: v for k, v in version.parts.items()}


_NOISE = st.lists(st.sampled_from([
    ("\n\n", "\n\n\n\n"),                                  # blank lines
    ("    return x", "    # a comment\n    return x"),      # a comment line
    ('"""Scale x."""', '"""Scale x by FACTOR, carefully."""'),   # a docstring edit
    ('    """Scales its input."""\n', ""),                  # a docstring removed
    ("(x)", "( x )"),                                       # spacing
    ("FACTOR = ", "FACTOR  =  "),                        # spacing
    ("import retap\n", "import retap  # tasks\n"),         # a trailing comment
]), max_size=4)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(noise=_NOISE, factor=st.sampled_from([2, 3]), op=st.sampled_from(["*", "+"]))
def test_noise_never_changes_the_version_and_a_change_always_does(
        tmp_path: Path, noise: list[tuple[str, str]], factor: int, op: str) -> None:
    base = MODULE.format(factor=2, op="*")
    noisy = MODULE.format(factor=factor, op=op)
    for old, new in noise:
        noisy = noisy.replace(old, new, 1)
    before, parts_before = _version_of(tmp_path, base)
    after, parts_after = _version_of(tmp_path, noisy)
    changed = {"FACTOR"} if factor != 2 else set()
    changed |= {"helper"} if op != "*" else set()
    assert (before == after) == (not changed)
    assert set(changed_parts(parts_before, parts_after)) == changed


def test_a_name_bound_to_a_proxy_or_a_decorated_helper_does_not_break_the_version(
        tmp_path: Path) -> None:
    source = MODULE.format(factor=2, op="*").replace(
        "import retap\n", "import functools\n\nimport retap\n\n\nclass Remote:\n"
        "    def __getattr__(self, name):\n        raise RuntimeError('not connected')\n\n"
        "    def __call__(self, x):\n        return x\n\n\nPROXY = Remote()\n\n\n"
        "@functools.lru_cache\ndef cached(x):\n    return x + 1\n").replace(
        "return helper(x)", "return PROXY(cached(helper(x)))")
    parts = _version_of(tmp_path, source)[1]
    assert {"Scale", "helper", "FACTOR", "cached", "PROXY"} <= set(parts), parts
    edited = source.replace("return x + 1", "return x + 2")
    assert changed_parts(parts, _version_of(tmp_path, edited)[1]) == ["cached"]


def test_a_run_recorded_by_an_older_retap_says_why_every_version_differs(
        coded: Project) -> None:
    import sqlite3

    from crafting import allow_sealing, seal_sql
    from retap.store import rows

    (coded.path / "broken").touch()
    coded.run("run", "--", "tidy", "a b", "--:", "fail_once", check=1)
    conn = sqlite3.connect(coded.path / ".retap" / "retap.db")
    allow_sealing(conn)
    with conn:  # as an older retap left it: no pieces kept, versions of the source text
        conn.execute("UPDATE events SET data=json_remove(data, '$.code')")
        conn.execute("UPDATE dispatches SET code_version='0123456789abcdef'")
        conn.execute(f"UPDATE events SET crc={seal_sql(rows.EVENT)}")  # SET sees old values
        conn.execute(f"UPDATE dispatches SET crc={seal_sql(rows.DISPATCH)}")
        conn.execute("UPDATE versions SET code_version='0123456789abcdef'")  # as upgrading
    conn.close()
    (coded.path / "broken").unlink()
    err = coded.run("resume", "last", check=0).err
    assert re.search(r"node 0 \(tidy\): code 0123456789abcdef -> [0-9a-f]{16}\n", err), err
    assert "recorded by an older retap" in err
    fresh = coded.run("run", "--", "tidy", "b c", "--:", "fail_once", check=0)
    assert "older retap" not in fresh.err


def test_every_folder_sysconfig_calls_installed_is_not_project_code() -> None:
    """The installed folders are found without sysconfig's build data (a faster start):
    each of sysconfig's own is among them or is a site-packages folder."""
    import os
    import sysconfig

    from retap.codeversion import _installed_roots

    roots = _installed_roots()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = os.path.realpath(sysconfig.get_paths()[key])
        assert path in roots or {"site-packages", "dist-packages"} & set(path.split(os.sep))
    assert os.path.realpath(os.path.dirname(os.__file__)) in roots
