"""Case 5: secret configs (`pydantic.SecretStr`) are never written to a store in clear, the
memo tells two secrets apart by a keyed digest, and a resume that needs a secret asks for
it in one line instead of running with a mask."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Project

SECRET_TASKS = '''
import os

import retap
from pydantic import SecretStr


class Login(retap.Task):
    """Writes who logged in with which password to used.txt."""

    password: SecretStr = retap.config(help="the password")

    def process(self, who: str) -> str:
        with open("used.txt", "a") as fh:
            fh.write(f"{who}:{self.password.get_secret_value()}\\n")
        if os.path.exists("fail-login"):
            raise RuntimeError("login refused")
        return f"{who} is in"


@retap.task(cache="inputs")
def token(who: str, *, key: SecretStr) -> str:
    """A token made from the key: remembered across runs."""
    with open("used.txt", "a") as fh:
        fh.write(f"token {who}:{key.get_secret_value()}\\n")
    return f"{who}-{len(key.get_secret_value())}"
'''

SECRET = "hunter2-very-secret"


@pytest.fixture
def proj(project: Project) -> Project:
    project.retapfile(SECRET_TASKS)
    project.env["RETAP_SECRET_KEY"] = "test key"
    return project


def store_bytes(project: Project) -> bytes:
    folder = project.path / ".retap"
    return b"".join(p.read_bytes() for p in folder.glob("retap.db*"))


def used(project: Project) -> list[str]:
    path: Path = project.path / "used.txt"
    return path.read_text().splitlines() if path.exists() else []


def test_case_5_a_secret_config_is_never_stored_in_clear(proj: Project) -> None:
    proj.run("run", "--run-id", "s", "--", "login", "bob", "--password", SECRET, check=0)
    proj.run("run", "--", "token", "bob", "--key", SECRET, check=0)
    assert SECRET.encode() not in store_bytes(proj)
    assert "**********" not in proj.run("show", "s", "--json", check=0).out


def test_case_5_a_resume_without_the_secret_asks_for_it_in_one_line(proj: Project) -> None:
    (proj.path / "fail-login").touch()
    proj.run("run", "--run-id", "s", "--", "login", "bob", "--password", SECRET, check=1)
    (proj.path / "fail-login").unlink()

    result = proj.run("resume", "s")
    assert result.code == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err
    assert "--set 0.password=" in lines[0] and "$RETAP_SECRET_0_PASSWORD" in lines[0]
    assert used(proj) == [f"bob:{SECRET}"]  # nothing ran with a mask
    assert proj.runs()[0]["status"] == "failed"


@pytest.mark.parametrize("how", ["set", "env"])
def test_case_5_a_resume_given_the_secret_runs_with_it(proj: Project, how: str) -> None:
    (proj.path / "fail-login").touch()
    proj.run("run", "--run-id", "s", "--", "login", "bob", "--password", SECRET, check=1)
    (proj.path / "fail-login").unlink()

    if how == "set":
        proj.run("resume", "s", "--set", f"0.password={SECRET}", check=0)
    else:
        proj.run("resume", "s", env={"RETAP_SECRET_0_PASSWORD": SECRET}, check=0)
    assert used(proj) == [f"bob:{SECRET}"] * 2
    assert SECRET.encode() not in store_bytes(proj)


def test_case_5_a_memoized_task_is_not_answered_with_another_secrets_result(
        proj: Project) -> None:
    proj.run("run", "--", "token", "bob", "--key", "first", check=0)
    proj.run("run", "--", "token", "bob", "--key", "the-second", check=0)
    proj.run("run", "--", "token", "bob", "--key", "first", check=0)  # remembered
    assert used(proj) == ["token bob:first", "token bob:the-second"]
    audits = [proj.run("audit", r["run"], "--json", check=0).json()[0]["value"]
              for r in reversed(proj.runs())]
    assert audits == ["bob-5", "bob-10", "bob-5"]
