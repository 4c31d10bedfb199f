"""The web view's ASGI app: pages and JSON over the store (read through the same interface
as the CLI, so it works on every store), and resume / replay started in the background.

Every request needs the token the ``retap ui`` command printed: in the URL once (the page
then keeps it in a same-site, HTTP-only cookie), or the cookie. A POST also needs the page's
CSRF token. Nothing from the store is ever written into a page as markup: the templates
escape it, and the script sets it as text.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from retap.errors import RetapError, UnknownRun
from retap.history import as_shown, attempt_history, run_summary
from retap.render import audit_json, audit_mermaid, iso, runs_json, spec_mermaid
from retap.report import show_report
from retap.store import open_existing
from retap.store.base import Store
from retap.store.boundary import STATUSES
from retap.ui.jobs import JobRefused, Jobs

__all__ = ["COOKIE", "make_app"]

HERE = Path(__file__).parent
COOKIE = "retap_ui"
GRAPH_LIMIT = 300  # dispatches drawn in a run's graph; the table lists up to TABLE_LIMIT
TABLE_LIMIT = 2000
AGES = {"1h": 3600, "1d": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
HEADERS = {
    # mermaid sets inline styles on the SVG it draws; no script but the page's own
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' "
                               "'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",  # the token may be in the URL
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def make_app(store: str, project: str, token: str) -> Starlette:
    """The web view of the store at ``store`` (a location, opened per request), starting
    jobs in ``project``, answering only requests that carry ``token``."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    jobs = Jobs(store, project)
    csrf = hmac.new(token.encode(), b"csrf", hashlib.sha256).hexdigest()

    def reading() -> Store:
        return open_existing(store, readonly=True)

    def page(request: Request, name: str, **context: Any) -> Response:
        return templates.TemplateResponse(request, name, {"store": store, "csrf": csrf,
                                                          **context})

    def runs_page(request: Request) -> Response:
        status, age = _filters(request)
        return page(request, "runs.html", statuses=STATUSES, status=status, age=age,
                    ages=list(AGES), runs=_runs(reading, status, age))

    def runs_api(request: Request) -> Response:
        status, age = _filters(request)
        return JSONResponse(_runs(reading, status, age))

    def run_page(request: Request) -> Response:
        run = request.path_params["run"]
        state = _run_state(reading, run)
        job = jobs.get(request.query_params.get("job", ""))
        return page(request, "run.html", run=run, state=state, job=job)

    def run_api(request: Request) -> Response:
        return JSONResponse(_run_state(reading, request.path_params["run"]))

    def dispatch_api(request: Request) -> Response:
        found = _dispatch(reading, request.path_params["run"],
                          request.path_params["dispatch"])
        if found is None:
            return JSONResponse({"error": "no such dispatch in this run"}, status_code=404)
        return JSONResponse(found)

    def job_api(request: Request) -> Response:
        job = jobs.get(request.path_params["job"])
        if job is None:
            return JSONResponse({"error": "no such job"}, status_code=404)
        return JSONResponse(job.as_json())

    async def start_job(request: Request) -> Response:
        form = await request.form()
        if not hmac.compare_digest(str(form.get("csrf", "")), csrf):
            return PlainTextResponse("forbidden: the form's CSRF token is missing or wrong",
                                     status_code=403)
        run, verb = request.path_params["run"], request.path_params["verb"]
        if verb not in ("resume", "replay"):
            return PlainTextResponse(f"no such action: {verb}", status_code=404)
        _known(reading, run)
        try:
            job = jobs.start(run, verb)
        except JobRefused as exc:
            return PlainTextResponse(str(exc), status_code=409)
        return RedirectResponse(f"/runs/{run}?job={job.id}", status_code=303)

    routes = [
        Route("/", runs_page),
        Route("/runs/{run}", run_page),
        Route("/runs/{run}/{verb}", start_job, methods=["POST"]),
        Route("/api/runs", runs_api),
        Route("/api/runs/{run}", run_api),
        Route("/api/runs/{run}/dispatches/{dispatch}", dispatch_api),
        Route("/api/jobs/{job}", job_api),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        jobs.stop_all()  # the view stops: what it started is interrupted, resumable

    return Starlette(routes=routes, middleware=[Middleware(_Guard, token=token)],
                     exception_handlers={UnknownRun: _not_found, RetapError: _refused},
                     lifespan=lifespan)


class _Guard(BaseHTTPMiddleware):
    """Only requests with the token (in the URL, or the cookie it leaves) get through; a
    URL with the token gets the cookie and is sent on without it."""

    def __init__(self, app: Any, token: str) -> None:
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request,
                       call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        given = request.query_params.get("token")
        if given is not None and hmac.compare_digest(given, self.token):
            rest = urlencode([(k, v) for k, v in request.query_params.multi_items()
                              if k != "token"])
            response: Response = RedirectResponse(request.url.path + (f"?{rest}" if rest
                                                                       else ""), 303)
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
        elif hmac.compare_digest(request.cookies.get(COOKIE, ""), self.token):
            response = await call_next(request)
        else:
            response = PlainTextResponse("forbidden: open the URL `retap ui` printed (it "
                                         "holds the token)", status_code=403)
        response.headers.update(HEADERS)
        return response


def _not_found(request: Request, exc: Exception) -> Response:
    return PlainTextResponse(str(getattr(exc, "message", exc)), status_code=404)


def _refused(request: Request, exc: Exception) -> Response:
    return PlainTextResponse(str(getattr(exc, "message", exc)), status_code=400)


def _filters(request: Request) -> tuple[str, str]:
    status = request.query_params.get("status", "")
    age = request.query_params.get("age", "")
    return (status if status in STATUSES else "", age if age in AGES else "")


def _known(reading: Callable[[], Store], run: str) -> None:
    store = reading()
    try:
        store.run_info(run)
    finally:
        store.close()


def _runs(reading: Callable[[], Store], status: str, age: str) -> list[dict[str, Any]]:
    store = reading()
    try:
        now = time.time()
        after = now - AGES[age] if age else None
        runs = [r for r in store.runs() if (not status or r.effective_status == status)
                and (after is None or r.created >= after)]
        summaries = {r.run: run_summary(store.events(r.run), r.effective_status == "running",
                                        now) for r in runs}
        return runs_json(runs, summaries)
    finally:
        store.close()


def _run_state(reading: Callable[[], Store], run: str) -> dict[str, Any]:
    """All the run page shows, and a ``version`` that changes whenever any of it does."""
    store = reading()
    try:
        report = show_report(store, run)
        with store.snapshot():
            info = store.run_info(run)
            live = info.effective_status == "running"
            audits = as_shown(store.audits(run, TABLE_LIMIT), live)  # never the whole history
            events = store.events(run)
        took, command = run_summary(events, live, time.time())
        dispatches = [{"id": a.id, "node": a.node, "task": a.task, "status": a.status,
                       "attempts": a.attempts} for a in audits]
        # what the page shows but its running time, which changes while nothing else does
        shape = [report, dispatches, info.dispatches]
        return {"run": run, "status": report["status"], "created": report["created"],
                "counts": report["counts"], "duration": took, "command": command,
                "report": report, "workflow": spec_mermaid(info.spec),
                "graph": audit_mermaid(audits[:GRAPH_LIMIT], styled=True),
                "drawn": min(len(audits), GRAPH_LIMIT), "total": info.dispatches,
                "dispatches": dispatches,
                "version": hashlib.blake2b(json.dumps(shape, default=str).encode(),
                                           digest_size=8).hexdigest()}
    finally:
        store.close()


def _dispatch(reading: Callable[[], Store], run: str, dispatch: str) -> dict[str, Any] | None:
    """One dispatch as its panel shows it: what ``audit --json`` has, and its output (None:
    the run has no such dispatch)."""
    store = reading()
    try:
        with store.snapshot():
            found = store.dispatches(run, STATUSES, [dispatch])
            if not found:
                return None
            info = store.run_info(run, count=False)
            configs = {n["id"]: n.get("config", {}) for n in info.spec.get("nodes", [])}
            history = attempt_history(store, run, found)
            [entry] = audit_json(as_shown(found, info.effective_status == "running"), history,
                                 configs)
            logs = [{"attempt": e.attempt, "text": e.text, "dropped": e.dropped}
                    for e in store.logs(run) if e.dispatch == dispatch]
        return {**entry, "logs": logs, "read": iso(time.time())}
    finally:
        store.close()
