"""Memoization across runs (`cache = "inputs"`), `retap forget`, `--dry-run` and `--explain` on
the example pipeline, the progress line, and the same through the Python API."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import retap
from conftest import ROOT, Project, on_terminal

MEMO_TASKS = '''
import retap


def _log(*words):
    with open("exec.log", "a") as fh:
        fh.write(" ".join(map(str, words)) + "\\n")


class Shout(retap.Task, cache="inputs"):
    """Upper-cases its input, --times times."""

    times: int = retap.config(1, help="how many times")

    def process(self, word):
        _log("shout", word, self.times)
        return word.upper() * self.times


@retap.task(cache="inputs")
def double(value: str, *, plus: int = 0) -> int:
    """Twice its input, plus --plus."""
    _log("double", value, plus)
    return int(value) * 2 + plus


@retap.task
def plain(value: str) -> str:
    """Not memoized: runs every time."""
    _log("plain", value)
    return value


@retap.task
def flaky(value: str) -> str:
    """Fails the first time (a marker file remembers), then takes a moment."""
    import time
    from pathlib import Path

    _log("flaky", value)
    if not Path(".flaked").exists():
        Path(".flaked").touch()
        raise RuntimeError("flaky fails once")
    time.sleep(0.4)
    return value
'''


@pytest.fixture
def memo(project: Project) -> Project:
    project.retapfile(MEMO_TASKS)
    return project


def run(project: Project, *words: str, code: int = 0) -> tuple[str, str]:
    """`retap run -- WORDS`: (stdout, stderr)."""
    result = project.run("run", "--", *words, check=code)
    return result.out, result.err


# cache = "inputs" --------------------------------------------------------------------------------


def test_a_memoized_class_task_runs_once_for_two_runs_with_the_same_inputs(memo: Project) -> None:
    assert run(memo, "shout", "hi", "--:", "dump")[0] == "HI\n"
    out, err = run(memo, "shout", "hi", "--:", "dump")
    assert out == "HI\n"  # the remembered result flows on
    assert "(1 executed, 1 reused)" in err
    assert memo.counts() == {"shout": 1}


def test_a_memoized_function_task_runs_once_for_two_runs_with_the_same_inputs(
        memo: Project) -> None:
    for _ in range(2):
        assert run(memo, "double", "4", "--plus", "1", "--:", "dump")[0] == "9\n"
    assert memo.counts() == {"double": 1}
    assert len(memo.runs()) == 2


def test_a_task_without_cache_runs_every_time(memo: Project) -> None:
    run(memo, "plain", "x")
    run(memo, "plain", "x")
    assert memo.counts() == {"plain": 2}


def test_another_input_or_config_runs_and_any_earlier_run_is_reused(memo: Project) -> None:
    run(memo, "shout", "hi")
    err = memo.run("run", "--explain", "--", "shout", "ho", check=0).err
    assert "run  node 0 (shout) ho: its input values changed" in err
    err = memo.run("run", "--explain", "--", "shout", "hi", "--times", "2", check=0).err
    assert "run  node 0 (shout) hi: config times changed (1 -> 2)" in err
    assert memo.log() == ["shout hi 1", "shout ho 1", "shout hi 2"]
    for words in (["hi"], ["ho"], ["hi", "--times", "2"]):  # each from a different run
        err = memo.run("run", "--explain", "--", "shout", *words, check=0).err
        assert "skip node 0 (shout)" in err and "up to date" in err
    assert memo.counts() == {"shout": 3}


def test_an_edited_memoized_function_runs_again(memo: Project) -> None:
    run(memo, "double", "4")
    source = memo.path / "retapfile.py"
    source.write_text(source.read_text().replace("int(value) * 2 + plus", "plus + int(value) * 2"))
    err = memo.run("run", "--explain", "--", "double", "4", check=0).err
    assert re.search(r"run  node 0 \(double\) 4: code changed \([0-9a-f]+ -> [0-9a-f]+\)", err)
    assert memo.counts() == {"double": 2}


def test_forget_makes_a_task_run_again(memo: Project) -> None:
    run(memo, "shout", "hi")
    run(memo, "shout", "ho")
    run(memo, "double", "1")
    result = memo.run("forget", "shout", check=0)
    assert "forgot 2 remembered result(s) of shout" in result.err
    run(memo, "shout", "hi")
    run(memo, "shout", "ho")
    run(memo, "double", "1")  # not forgotten
    assert memo.counts() == {"shout": 4, "double": 1}


def test_forget_with_run_drops_only_that_runs_results(memo: Project) -> None:
    memo.run("run", "--run-id", "r1", "--", "shout", "a", check=0)
    memo.run("run", "--run-id", "r2", "--", "shout", "b", check=0)
    assert "forgot 1 remembered result(s)" in memo.run("forget", "shout", "--run", "r1",
                                                       check=0).err
    run(memo, "shout", "a")  # runs again
    run(memo, "shout", "b")  # r2's result stands
    assert memo.log() == ["shout a 1", "shout b 1", "shout a 1"]
    assert "forgot 0 remembered result(s)" in memo.run("forget", "shout", "--run", "r1",
                                                       check=0).err


def test_forget_of_an_unknown_task_or_run_is_a_usage_error(memo: Project) -> None:
    run(memo, "shout", "a")
    result = memo.run("forget", "nope", check=2)
    assert "unknown task 'nope'" in result.err
    result = memo.run("forget", "shout", "--run", "no-such-run", check=2)
    assert "no-such-run" in result.err
    run(memo, "shout", "a")
    assert memo.counts() == {"shout": 1}


# --dry-run and --explain on the example pipeline -------------------------------------------------


@pytest.fixture
def pipeline(project: Project) -> Project:
    """The example pipeline, run once on its generated data."""
    shutil.copytree(ROOT / "examples" / "pipeline", project.path, dirs_exist_ok=True)
    subprocess.run([sys.executable, "make_data.py"], cwd=project.path, check=True)
    project.run("run", "flow.yaml", check=0)
    assert len(project.log("executions.log")) == 6
    return project


def change_one_amount(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    i = next(i for i, line in enumerate(lines) if re.fullmatch(r"\w+,\d+\.\d\d\n", line))
    region, amount = lines[i].strip().split(",")
    lines[i] = f"{region},{float(amount) + 1:.2f}\n"
    path.write_text("".join(lines))


def decisions(text: str) -> dict[str, set[str]]:
    """Lines `run  node N (task) INPUTS: why` / `skip node ...` as {run|skip: {N INPUTS}}."""
    found: dict[str, set[str]] = {"run": set(), "skip": set()}
    for verb, what in re.findall(r"^(?:retap: )?(run|skip) +node (\S+ \(\w+\)[^:]*):", text,
                                 re.M):
        found[verb].add(" ".join(what.split()))
    return found


def test_dry_run_lists_exactly_what_depends_on_a_changed_file_and_records_nothing(
        pipeline: Project) -> None:
    change_one_amount(pipeline.path / "data" / "b.csv")
    runs = pipeline.runs()
    result = pipeline.run("run", "--dry-run", "flow.yaml", check=0)
    assert result.err == ""
    assert decisions(result.out) == {
        "run": {"clean (clean) data/b.csv", "totals (aggregate)", "report (report)"},
        "skip": {"files (glob) data/*.csv", "clean (clean) data/a.csv",
                 "clean (clean) data/c.csv", "clean (clean) data/d.csv"}}
    assert "input file data/b.csv changed" in result.out
    assert len(result.out.splitlines()) == 7
    assert pipeline.runs() == runs
    assert len(pipeline.log("executions.log")) == 6

    explained = pipeline.run("run", "--explain", "flow.yaml", check=0).err
    assert pipeline.log("executions.log")[6:] == [
        "clean data/b.csv", "aggregate 4 files", "report build/totals.csv"]
    assert decisions(explained)["skip"] == decisions(result.out)["skip"]
    assert len(decisions(explained)["run"]) == 3
    assert "(3 executed, 4 reused)" in explained

    again = pipeline.run("run", "--dry-run", "flow.yaml", check=0).out
    assert decisions(again)["run"] == set()


def test_dry_run_lists_tasks_without_cache_as_running_every_time(memo: Project) -> None:
    run(memo, "shout", "hi", "--:", "plain")
    result = memo.run("run", "--dry-run", "--", "shout", "hi", "--:", "plain", check=0)
    assert result.out == ("skip node 0 (shout) hi: up to date\n"
                          "run  node 1 (plain) HI: runs every time (not cached)\n")
    assert memo.counts() == {"shout": 1, "plain": 1}
    assert len(memo.runs()) == 1


def test_a_deleted_output_rebuilt_the_same_leaves_what_follows_up_to_date(
        pipeline: Project) -> None:
    (pipeline.path / "build" / "clean" / "c.csv").unlink()
    dry = pipeline.run("run", "--dry-run", "flow.yaml", check=0).out
    assert "run  node clean (clean) data/c.csv: output build/clean/c.csv is missing" in dry
    pipeline.run("run", "flow.yaml", check=0)
    assert pipeline.log("executions.log")[6:] == ["clean data/c.csv"]  # same content again
    assert (pipeline.path / "build" / "clean" / "c.csv").exists()


def test_dry_run_sees_a_new_input_file_through_the_glob(pipeline: Project) -> None:
    shutil.copy(pipeline.path / "data" / "a.csv", pipeline.path / "data" / "e.csv")
    out = pipeline.run("run", "--dry-run", "flow.yaml", check=0).out
    assert decisions(out)["run"] == {"files (glob) data/*.csv", "clean (clean)",
                                     "totals (aggregate)", "report (report)"}
    assert "its fingerprint changed" in out


# Progress ----------------------------------------------------------------------------------------


SLOW_FLOW = ("--", "sleep", "0.4", "--:", "sleep", "--:", "dump")


def test_a_run_on_a_terminal_shows_counts_and_the_running_node(memo: Project) -> None:
    code, text = on_terminal(memo, "run", "--store", ":memory:", *SLOW_FLOW)
    assert code == 0
    assert "retap: 0 done" in text and "1 running: node 0 (sleep)" in text
    assert "1 done" in text and "1 running: node 1 (sleep)" in text
    assert "0.4\r\n" in text
    assert re.search(r"retap: run \S+: done \(3 executed\)", text)


def test_a_parallel_run_shows_how_many_run_and_of_how_many(memo: Project) -> None:
    code, text = on_terminal(memo, "run", "-j", "2", "--executor", "threads", "--store",
                             ":memory:", "--", "sleep", "0.3", "--", "sleep", "1.2", "--",
                             "sleep", "0.3")
    assert code == 0
    assert "2 running: node 0 (sleep), node 1 (sleep)" in text, text
    assert re.search(r"retap: 0 done · 0/3 · \d+s · 2 running", text), text
    assert "1 done · 1/3 · 0s · 2 running: node 1 (sleep), node 2 (sleep)" in text, text


def test_the_progress_line_counts_failed_and_reused_dispatches(memo: Project) -> None:
    run(memo, "shout", "hi")
    code, text = on_terminal(memo, "run", "--on-error", "continue", "--", "shout", "hi",
                             "--", "sleep", "0.4", "--:", "fail", "--message", "boom")
    assert code == 1
    assert "1 reused" in text and "1 running: node 1 (sleep)" in text
    assert re.search(r"1 done · 1 reused · 1 failed", text), text


def test_a_resume_on_a_terminal_shows_progress_too(memo: Project) -> None:
    memo.run("run", "--run-id", "r1", "--", "shout", "x", "--:", "flaky", check=1)
    code, text = on_terminal(memo, "resume", "r1")
    assert code == 0
    assert "retap: 0 done" in text and "1 running: node 1 (flaky)" in text
    assert memo.log() == ["shout x 1", "flaky X", "flaky X"]


def test_quiet_on_a_terminal_shows_only_task_output(memo: Project) -> None:
    code, text = on_terminal(memo, "run", "--quiet", "--store", ":memory:", *SLOW_FLOW)
    assert (code, text) == (0, "0.4\r\n")


def test_without_a_terminal_stderr_has_only_the_status_line(memo: Project) -> None:
    result = memo.run("run", "--store", ":memory:", *SLOW_FLOW, check=0)
    assert result.out == "0.4\n"
    assert re.fullmatch(r"retap: run \S+: done \(3 executed\)\n", result.err)
    quiet = memo.run("run", "--quiet", "--store", ":memory:", *SLOW_FLOW, check=0)
    assert (quiet.out, quiet.err) == ("0.4\n", "")


# The Python API ----------------------------------------------------------------------------------


API_LOG: list[str] = []


class Reverse(retap.FileTask):
    """Writes --src reversed to --dst."""

    src: retap.Input = retap.config(Path("in.txt"), help="the file read")
    dst: retap.Output = retap.config(Path("out.txt"), help="the file written")

    def process(self, tag: str) -> str:
        API_LOG.append(tag)
        with self.output(self.dst) as tmp:
            tmp.write_bytes(self.src.read_bytes()[::-1])
        return tag


def api_run(store: retap.Store) -> retap.RunResult:
    wf = retap.Workflow()
    wf.add(Reverse(), "a")
    wf.add(Reverse(src=Path("other.txt"), dst=Path("other-out.txt")), "b")
    return retap.App(wf, store).run()


def test_file_tasks_through_the_python_api_count_reuse(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    API_LOG.clear()
    Path("in.txt").write_bytes(b"abc")
    Path("other.txt").write_bytes(b"xyz")
    with retap.open_store(tmp_path / "store.db") as store:
        first = api_run(store)
        assert (first.status, first.executed, first.reused) == ("done", 2, 0)
        assert Path("out.txt").read_bytes() == b"cba"
        second = api_run(store)
        assert (second.status, second.executed, second.reused) == ("done", 0, 2)
        assert second.values(0) == ["a"] and second.values(1) == ["b"]
        Path("other.txt").write_bytes(b"xyZ")
        third = api_run(store)
        assert (third.executed, third.reused) == (1, 1)
        assert Path("other-out.txt").read_bytes() == b"Zyx"
        assert [a.reused is not None for a in third.audits()] == [True, False]
    assert API_LOG == ["a", "b", "b"]
    assert not any(Path(".retap", "backup").iterdir())
