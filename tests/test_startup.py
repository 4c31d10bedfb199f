"""Case 13: the edges of a command's life. A signal during start-up exits 130 / 143 without a
traceback; a dry run writes nothing; a task called `--` and a gate limit of `true` are
refused when declared; a task that exits (`sys.exit`) fails its dispatch, not retap.
Issue 13: listing runs and showing one import only what they use; tasks whose configs are
plain types (int, str, float, bool) are listed, run and resumed without pydantic."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

import retap
from conftest import Project, assert_one_line_error
from retap.render import runs_table
from retap.store import open_existing
from retap.tasks import Load


@pytest.mark.parametrize("delay", [0.25, 0.4, 0.6])
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_case_13_a_signal_during_start_up_exits_without_a_traceback(
        project: Project, delay: float, sig: signal.Signals, code: int) -> None:
    proc = project.start("run", "--", "load", "a", "--:", "dump")
    time.sleep(delay)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err, err
    if proc.returncode != 0:  # else it had finished before the signal came
        assert proc.returncode == code, err
        assert len(err.strip().splitlines()) <= 3, err


def store_state(project: Project) -> str:
    """Every row of the store, as SQL."""
    with contextlib.closing(sqlite3.connect(project.path / ".retap" / "retap.db")) as conn:
        return "\n".join(conn.iterdump())


def test_case_13_a_dry_run_writes_nothing_to_the_store(project: Project) -> None:
    project.retapfile('''
        from pathlib import Path
        import retap

        class Copy(retap.FileTask):
            """Copies in.txt to out.txt."""

            dst: retap.Output = Path("out.txt")

            def process(self, src: str) -> str:
                with self.output(self.dst) as tmp:
                    tmp.write_bytes(Path(src).read_bytes())
                return str(self.dst)
        ''')
    (project.path / "in.txt").write_text("x")
    project.run("run", "--dry-run", "--", "copy", "in.txt", check=0)
    assert not (project.path / ".retap").exists()

    project.run("run", "--", "copy", "in.txt", check=0)
    (project.path / "in.txt").write_text("y")
    os.utime(project.path / "in.txt", (1_000_000_000, 1_000_000_000))  # digest rememberable
    before = store_state(project)
    result = project.run("run", "--dry-run", "--", "copy", "in.txt", check=0)
    assert "input file in.txt changed" in result.out
    assert store_state(project) == before


def test_case_13_a_task_named_dash_dash_is_refused_when_declared(project: Project) -> None:
    project.retapfile('''
        import retap

        class Breaker(retap.Task, name="--"):
            """A name that would end a node."""

            def process(self):
                return 1
        ''')
    line = assert_one_line_error(project.run("list"))
    assert "name must be" in line and "'--'" in line
    with pytest.raises(retap.TaskDefinitionError):
        retap.task(lambda: 1, name="--")


def test_case_13_a_gate_limit_of_true_is_refused_when_declared(project: Project) -> None:
    project.write("flow.yaml", """
        nodes:
          a: {task: load, inputs: [x]}
          b: {task: dump}
        joins:
          - {from: a, to: b, kind: gate, limit: true}
        """)
    line = assert_one_line_error(project.run("run", "flow.yaml"))
    assert "limit must be a positive int" in line
    wf = retap.Workflow()
    wf.add(Load(), "x")
    with pytest.raises(retap.SpecError):
        wf.join(0, 0, "gate", limit=True)


@pytest.mark.parametrize("how", ["sys.exit(0)", "sys.exit(3)", "raise SystemExit",
                                 "raise BaseException('odd')", "raise GeneratorExit"])
def test_case_7_a_task_that_exits_fails_its_dispatch_and_the_run_resumes(
        project: Project, how: str) -> None:
    project.retapfile(f'''
        import os
        import sys

        import retap

        @retap.task
        def quitter(x: str) -> str:
            if not os.path.exists("fixed"):
                {how}
            return x + "!"
        ''')
    first = project.run("run", "--run-id", "q", "--", "load", "a", "--:", "quitter", "--:",
                        "dump")
    assert first.code == 1, (first.out, first.err)
    assert "Traceback" not in first.err
    assert project.runs()[0]["status"] == "failed"
    (project.path / "fixed").touch()
    assert project.run("resume", "q", check=0).out == "a!\n"


def imported(project: Project, *args: str, out: list[str] | None = None) -> set[str]:
    """The top-level modules ``retap ARGS`` imports, as ``python -X importtime`` lists them
    (its output appended to ``out``)."""
    done = subprocess.run([sys.executable, "-X", "importtime", *project.command(*args)[1:]],
                          cwd=project.path, capture_output=True, text=True, timeout=60,
                          env=project.env)
    assert done.returncode == 0, done.stderr
    if out is not None:
        out.append(done.stdout)
    return {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in done.stderr.splitlines()
            if line.startswith("import time:")}


def test_listing_runs_into_a_pipe_loads_neither_pydantic_nor_rich_nor_yaml_nor_openssl(
        project: Project) -> None:
    project.run("run", "--run-id", "r", "--", "load", "[red]x[/red]", "--:", "dump", check=0)

    modules = imported(project, "runs")

    assert "retap" in modules and "sqlite3" in modules  # (the listing was read)
    assert not modules & {"pydantic", "rich", "yaml", "psutil", "hashlib", "shutil"}, modules
    listed = project.run("runs", check=0).out.splitlines()
    assert listed[0].split() == ["RUN", "STATUS", "CREATED", "DURATION", "DISPATCHES",
                                 "COMMAND"]
    assert listed[1].split()[:2] == ["r", "done"]
    assert "load '[red]x[/red]' --: dump" in listed[1]  # text, never read as markup


@pytest.mark.parametrize("command", ["show", "audit"])
def test_showing_a_run_checks_its_spec_without_pydantic(project: Project, command: str) -> None:
    project.run("run", "--run-id", "r", "--", "load", "x", "--:", "dump", check=0)

    modules = imported(project, command, "r")

    assert "retap" in modules and "msgspec" in modules  # (the run and its spec were read)
    assert not modules & {"pydantic", "rich", "yaml"}, modules


def test_listing_tasks_reads_no_store_and_loads_no_msgspec(project: Project) -> None:
    modules = imported(project, "list")

    assert "retap" in modules
    assert not modules & {"msgspec", "sqlite3", "psutil", "rich", "yaml", "pydantic"}, modules


def test_running_a_workflow_loads_no_yaml_progress_ui_dask_or_postgres(project: Project) -> None:
    modules = imported(project, "run", "--", "load", "a", "--:", "dump")

    assert "retap" in modules and "sqlite3" in modules  # (the run was recorded)
    assert not modules & {"yaml", "rich", "starlette", "uvicorn", "dask", "distributed",
                          "psycopg", "pydantic"}, modules


RESUMED_TASKS = '''
    import os
    from pathlib import Path

    import retap

    class Count(retap.Task):
        """Adds step to its input; fails until a file named fixed exists."""

        step: int = 1
        label: str | None = None
        where: {where_type} = {where_default}

        def process(self, x: str) -> str:
            if not os.path.exists("fixed"):
                raise RuntimeError("not yet")
            return f"{{int(x) + self.step}} {{self.label}} {{self.where}}"
    '''


@pytest.mark.parametrize(("where_type", "where_default", "pydantic"),
                         [("float", "0.5", False), ("Path", 'Path("out")', True)])
def test_resuming_loads_pydantic_only_for_configs_of_types_beyond_the_plain_ones(
        project: Project, where_type: str, where_default: str, pydantic: bool) -> None:
    project.retapfile(RESUMED_TASKS.format(where_type=where_type, where_default=where_default))
    first = project.run("run", "--run-id", "c", "--", "load", "1", "--:", "count", "--step",
                        "2", "--label", "two", "--:", "dump", check=1)
    assert "not yet" in first.err
    (project.path / "fixed").touch()

    out: list[str] = []
    modules = imported(project, "resume", "c", out=out)

    assert ("pydantic" in modules) is pydantic, modules
    assert out == [f"3 two {0.5 if where_type == 'float' else 'out'}\n"]


def test_runs_on_a_terminal_show_a_command_as_text_not_markup(project: Project) -> None:
    project.run("run", "--run-id", "r", "--", "load", "[bold]x[/bold]", "--:", "dump", check=0)
    with open_existing(project.path / ".retap" / "retap.db") as store:
        runs = store.runs()

    table = runs_table(runs, {"r": (0.5, "retap run -- load '[bold]x[/bold]'")}, 100)

    assert "load '[bold]x[/bold]'" in table
    assert "\x1b[32mdone" in table  # the status in its colour
