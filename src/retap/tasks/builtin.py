"""Built-in tasks: load, dump, fail, sleep, glob."""

from __future__ import annotations

import glob as _glob
import json
import sys
import time
from typing import Any

from retap.configs import config
from retap.errors import TaskFailed
from retap.taskdef import Task

__all__ = ["Dump", "Fail", "Glob", "Load", "Sleep", "TaskFailed", "dump_line"]


def _single(inputs: tuple[Any, ...]) -> Any:
    """One input is passed on as itself, several as a list, none as None."""
    if len(inputs) == 1:
        return inputs[0]
    return list(inputs) if inputs else None


class Load(Task):
    """Its input as a value (parsed as JSON or YAML on request).

    One input is returned as it is, several as a list. With --json or --yaml each
    input is parsed first, e.g. `retap run -- load --yaml "[1, 2, 3]" --:i dump`.
    """

    json: bool = config(False, help="parse each input as JSON")
    yaml: bool = config(False, help="parse each input as YAML")

    def process(self, *inputs: Any) -> Any:
        return _single(tuple(self._parse(value) for value in inputs))

    def _parse(self, value: Any) -> Any:
        if not isinstance(value, str) or not (self.json or self.yaml):
            return value
        import yaml  # here: a start-up that reads no YAML does not pay for it

        from retap.safeyaml import UnsafeYaml, load_yaml

        try:
            return json.loads(value) if self.json else load_yaml(value)
        except RecursionError:
            raise TaskFailed("load: input refused as JSON: nested too deeply") from None
        except UnsafeYaml as exc:
            raise TaskFailed(f"load: input refused as YAML: {exc}") from None
        except (ValueError, yaml.YAMLError) as exc:
            kind = "JSON" if self.json else "YAML"
            raise TaskFailed(f"load: input is not valid {kind}: {value!r} "
                             f"({str(exc).splitlines()[0]})") from None


def dump_line(value: Any) -> str:
    """How dump prints a value: a string as it is, anything else as one line of JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=_jsonish)


def _jsonish(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class Dump(Task):
    """Prints each input on its own line and returns its input.

    A string is printed as it is, any other value as one line of JSON (a list is one
    value, one line).
    """

    def process(self, *inputs: Any) -> Any:
        out = sys.stdout
        for value in inputs:
            out.write(dump_line(value) + "\n")
        out.flush()
        return _single(inputs)


class Fail(Task):
    """Raises an error: the message is --message, or its inputs."""

    message: str = config("", help="the error message (default: the inputs)")

    def process(self, *inputs: Any) -> Any:
        message = self.message or " ".join(dump_line(v) for v in inputs) or "failed"
        raise TaskFailed(message)


class Sleep(Task):
    """Waits, then returns its input.

    Waits --seconds, or SECONDS given as the input. A stop request (Ctrl-C, SIGTERM)
    ends the wait early and leaves the dispatch to run again on resume; in a worker
    process (--executor processes) the wait runs out, as any task there finishes on a
    first stop request.
    """

    seconds: float | None = config(None, help="how long to wait (default: the input, or 1)")

    def process(self, *inputs: Any) -> Any:
        deadline = time.monotonic() + self._duration(inputs)
        while (left := deadline - time.monotonic()) > 0:
            self.check_terminate()
            time.sleep(min(left, 0.05))
        self.check_terminate()
        return _single(inputs)

    def _duration(self, inputs: tuple[Any, ...]) -> float:
        if self.seconds is not None:
            return self.seconds
        if len(inputs) == 1:
            try:
                return float(inputs[0])
            except (TypeError, ValueError):
                pass
        return 1.0


class Glob(Task, cache="inputs"):
    """Files matching its input patterns, as a sorted list of paths.

    Patterns take ** for any depth (e.g. `data/**/*.csv`). Its result is remembered with
    the listing, so it counts as up to date while the same files match.
    """

    def process(self, *patterns: str) -> list[str]:
        found: set[str] = set()
        for pattern in patterns:
            found.update(_glob.glob(str(pattern), recursive=True))
        return sorted(found)

    def fingerprint(self, *patterns: str) -> list[str]:
        return self.process(*patterns)
