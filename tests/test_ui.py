"""`retap ui` as a user meets it: the real command started in a subprocess, its pages driven
in a real headless browser (Debian's Chromium through Playwright; `RETAP_TEST_BROWSER`
names it, `.ci/run` installs it), screenshots saved under `tests/screenshots/`. Without a
browser the browser tests skip, saying how to run them; the token tests always run."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest

from conftest import Project
from pgserver import on_store

TASKS = '''
from pathlib import Path

import retap


class Divide(retap.Task, name="divide"):
    """12 / x; fails with a traceback while the file `fixed` is missing."""

    def process(self, x):
        print(f"dividing 12 by {x}")
        if not Path("fixed").exists():
            raise ValueError(f"not yet: {x}")
        return 12 / x


class Crash(retap.Task, name="crash", idempotent=False):
    """Kills its own process with SIGKILL, as a machine dying would."""

    def process(self, x):
        import os, signal
        os.kill(os.getpid(), signal.SIGKILL)


class Wait(retap.Task, name="wait"):
    """Waits for the file `go`, then returns its input."""

    def process(self, x):
        while not Path("go").exists():
            import time
            time.sleep(0.05)
        return x
'''

BROWSER_ENV = "RETAP_TEST_BROWSER"
SHOTS = Path(os.environ.get("RETAP_SCREENSHOTS", Path(__file__).parent / "screenshots"))


def browser_path() -> str:
    path = os.environ.get(BROWSER_ENV) or shutil.which("chromium") or ""
    if not path:
        pytest.skip(f"needs a Chromium: set {BROWSER_ENV}=/usr/bin/chromium (.ci/run "
                    "installs Debian's and sets it)")
    return path


@pytest.fixture
def proj(project: Project) -> Project:
    project.retapfile(TASKS)
    return project


@pytest.fixture(params=["sqlite"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ui(proj: Project, kind: str) -> Iterator[str]:
    """The URL `retap ui` printed, while it serves the project's store (of ``kind``)."""
    with on_store(proj, kind, "ui") as proj:
        proc = subprocess.Popen(proj.command("ui"), cwd=proj.path, env=proj.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        try:
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=[\w-]{20,}", url), url
            yield url
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=30)


def get(url: str, opener: Any = None, data: bytes | None = None) -> tuple[int, str]:
    try:
        with (opener or urllib.request.build_opener()).open(url, data=data, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_a_request_without_the_token_is_refused(proj: Project, ui: str) -> None:
    proj.run("run", "--run-id", "t", "--", "load", "2", "--:", "divide", check=1)
    base = ui.split("?")[0]
    for path in ("", "api/runs", "runs/t", "api/runs/t", "static/ui.js"):
        assert get(base + path)[0] == 403, path
    assert get(base + "?token=wrong")[0] == 403
    assert get(base + "api/runs?token=" + "x" * 32)[0] == 403

    with_token = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    code, body = get(ui, with_token)  # the token once; the cookie it leaves after that
    assert code == 200 and "<h1>Runs</h1>" in body
    code, body = get(base + "api/runs", with_token)
    assert code == 200 and '"run": "t"' in body.replace('":"', '": "')
    # a POST needs the page's CSRF token too
    assert get(base + "runs/t/resume", with_token, data=b"csrf=nope")[0] == 403
    assert get(base + "runs/t/resume", with_token, data=b"")[0] == 403
    assert proj.run("show", "t", "--json", check=0).json()["status"] == "failed"


@pytest.mark.parametrize("kind", ["sqlite", "postgres"], indirect=True)
def test_the_pages_data_comes_from_any_store(proj: Project, ui: str) -> None:
    proj.run("run", "--run-id", "t", "--", "load", "--yaml", "[3]", "--:i", "divide",
             check=1)
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    assert get(ui, opener)[0] == 200
    base = ui.split("?")[0]
    code, body = get(base + "api/runs/t", opener)
    state = json.loads(body)
    assert (code, state["status"], state["counts"]) == (200, "failed", {"done": 1,
                                                                        "failed": 1})
    assert "class d" in state["graph"] and "s_failed" in state["graph"]
    [failed] = [d for d in state["dispatches"] if d["status"] == "failed"]
    code, body = get(f"{base}api/runs/t/dispatches/{failed['id']}", opener)
    shown = json.loads(body)
    assert shown["inputs"] == [3] and shown["logs"][0]["text"] == "dividing 12 by 3\n"
    assert "ValueError: not yet: 3" in shown["history"][0]["traceback"]
    assert get(base + "api/runs/nope", opener)[0] == 404
    assert get(f"{base}api/runs/t/dispatches/{'0' * 32}", opener)[0] == 404
    assert '<span class="run-id">t</span>' in get(base + "runs/t", opener)[1]


def test_a_dispatch_in_flight_when_its_run_died_shows_lost(proj: Project, ui: str) -> None:
    proj.run("run", "--run-id", "k", "--", "load", "x", "--:", "crash", check=-9)
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    assert get(ui, opener)[0] == 200
    base = ui.split("?")[0]
    state = json.loads(get(base + "api/runs/k", opener)[1])
    assert (state["status"], state["counts"]) == ("interrupted", {"done": 1, "lost": 1})
    [lost] = [d for d in state["dispatches"] if d["task"] == "crash"]
    assert lost["status"] == "lost" and "s_lost" in state["graph"]
    shown = json.loads(get(f"{base}api/runs/k/dispatches/{lost['id']}", opener)[1])
    assert (shown["status"], [a["status"] for a in shown["history"]]) == ("lost", ["lost"])


def test_a_long_runs_page_lists_its_first_dispatches_and_counts_them_all(
        proj: Project, ui: str) -> None:
    items = json.dumps(list(range(2100)))  # more dispatches than the page lists (2,000)
    proj.run("run", "--run-id", "long", "--", "load", "--yaml", items, "--:i", "dump")
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    assert get(ui, opener)[0] == 200
    base = ui.split("?")[0]

    state = json.loads(get(base + "api/runs/long", opener)[1])
    again = json.loads(get(base + "api/runs/long", opener)[1])

    assert (state["total"], len(state["dispatches"]), state["counts"]) == \
        (2101, 2000, {"done": 2101})
    assert [d["task"] for d in state["dispatches"][:2]] == ["load", "dump"]
    assert state["drawn"] == 300 and again["version"] == state["version"]
    last = state["dispatches"][-1]["id"]
    shown = json.loads(get(f"{base}api/runs/long/dispatches/{last}", opener)[1])
    assert (shown["id"], shown["status"], shown["inputs"]) == (last, "done", [1998])


@pytest.fixture
def page(ui: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    path = browser_path()
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, headless=True,
                                     args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.set_default_timeout(20_000)
        yield page
        browser.close()
        assert errors == [], errors  # no script error on any page


def test_a_failed_run_is_found_inspected_and_resumed_in_the_browser(
        proj: Project, ui: str, page: Any) -> None:
    from playwright.sync_api import expect

    proj.run("run", "--run-id", "calc", "--", "load", "--yaml", "[3, 4]", "--:i", "divide",
             "--:", "dump", check=1)
    page.goto(ui)
    row = page.locator("#runs tr[data-run=calc]")
    expect(row.locator(".status")).to_have_text("failed")
    page.screenshot(path=str(SHOTS / "runs.png"), full_page=True)

    row.get_by_role("link", name="calc").click()
    expect(page.locator("#run-status")).to_have_text("failed")
    expect(page.locator("#workflow svg")).to_be_visible()
    failed = page.locator("#dag g.node.s_failed")
    expect(failed).to_have_count(1)  # on_error stop: the first failure stopped the run
    failed.first.click()
    panel = page.locator("#dispatch")
    expect(panel).to_be_visible()
    expect(panel.locator("#d-status")).to_have_text("failed")
    expect(panel.locator(".traceback")).to_contain_text("ValueError: not yet: 3")
    expect(panel.locator(".log-text")).to_contain_text("dividing 12 by 3")
    page.screenshot(path=str(SHOTS / "run-failed.png"), full_page=True)

    (proj.path / "fixed").touch()
    page.locator("#resume").click()
    expect(page.locator("#job-state")).to_have_text("exited 0", timeout=60_000)
    expect(page.locator("#run-status")).to_have_text("done")
    expect(page.locator("#dag g.node.s_failed")).to_have_count(0)
    expect(page.locator("#job-output")).to_contain_text("run calc: done")
    page.screenshot(path=str(SHOTS / "run-resumed.png"), full_page=True)
    assert proj.run("show", "calc", "--json", check=0).json()["status"] == "done"


def test_a_running_run_is_shown_live(proj: Project, ui: str, page: Any,
                                     procs: list[subprocess.Popen[str]]) -> None:
    from playwright.sync_api import expect

    procs.append(proj.start("run", "--run-id", "slow", "--", "load", "x", "--:", "wait"))
    page.goto(ui)
    expect(page.locator("#runs tr[data-run=slow] .status")).to_have_text("running")
    page.goto(ui.split("?")[0] + "runs/slow")
    expect(page.locator("#run-status")).to_have_text("running")
    page.screenshot(path=str(SHOTS / "run-running.png"), full_page=True)
    (proj.path / "go").touch()
    expect(page.locator("#run-status")).to_have_text("done", timeout=30_000)  # no reload
    expect(page.locator("#dag g.node.s_done")).to_have_count(2)
