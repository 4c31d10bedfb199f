"""Tasks: the ``Task`` base class, the ``@task`` decorator, and what a task declares.

A task is a unit of work with typed configs and a ``process(*inputs)`` method that
returns one result. Declarations are checked when the class is defined, so a config
without a type or a misspelt setting fails at import with a hint, not mid-run.
"""

from __future__ import annotations

import inspect
import re
import sys
import textwrap
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from retap import configs as _config
from retap.configs import MISSING, ConfigSpec
from retap.errors import Interrupted, TaskDefinitionError

if TYPE_CHECKING:  # (listing tasks needs neither: `retap list` loads no msgspec)
    from retap.codeversion import CodeVersion
    from retap.context import TaskContext

__all__ = ["Task", "TaskInfo", "snake_case", "task"]

# Task-level settings: plain class attributes (or class keywords), never configs.
SETTINGS: dict[str, Callable[[Any], bool]] = {
    "idempotent": lambda v: isinstance(v, bool),
    "version": lambda v: v is None or isinstance(v, str),
    "cache": lambda v: v in (None, "inputs"),
    "retries": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "retry_delay": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v >= 0,
    "timeout": lambda v: v is None or (isinstance(v, int | float) and not isinstance(v, bool)
                                       and v > 0),
    "max_parallel": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)
                                            and v >= 1),
}
_SETTING_HINTS = {"idempotent": "True or False", "version": "a string", "cache": 'None or "inputs"',
                  "retries": "an int >= 0", "retry_delay": "seconds >= 0",
                  "timeout": "None or seconds > 0", "max_parallel": "None or an int >= 1"}


_NAME = re.compile(r"\w[\w./-]*")  # a command-line word: never "--", never an option


def snake_case(name: str) -> str:
    """``Goodnight`` -> ``goodnight``, ``LoadCSV`` -> ``load_csv``, ``doThing`` -> ``do_thing``."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    return name.lower()


@dataclass(eq=False)
class TaskInfo:
    """What a task class declares: its CLI name, docs, configs and inputs."""

    cls: type[Task]
    name: str
    configs: dict[str, ConfigSpec]
    signature: inspect.Signature
    abstract: bool = False
    source: str = field(default="")

    @property
    def summary(self) -> str:
        """The first line of the docstring, shown by ``retap list``."""
        return _doc_parts(self.cls.__doc__)[0]

    @property
    def description(self) -> str:
        """The rest of the docstring, shown by ``--help``."""
        return _doc_parts(self.cls.__doc__)[1]

    @property
    def import_path(self) -> str:
        """``module:QualName``, the task's address in a workflow spec. A task made inside a
        function is found by the module-level name it was bound to, if any."""
        qualname = self.cls.__qualname__
        if "<" in qualname:
            module = sys.modules.get(self.cls.__module__)
            qualname = next((k for k, v in vars(module or object).items() if v is self.cls),
                            qualname)
        return f"{self.cls.__module__}:{qualname}"

    @property
    def importable(self) -> bool:
        return "<" not in self.import_path

    @cached_property
    def code(self) -> CodeVersion:
        """The task's ``version`` setting, or the digest of its normalized code and of the
        project code it uses, with the parts it was made of."""
        from retap.codeversion import code_version

        return code_version(getattr(self.cls, "_fn", None) or self.cls, self.cls.version)

    @cached_property
    def code_version(self) -> str:
        return self.code.digest

    @property
    def usage(self) -> str:
        """Usage words for the inputs: ``NAME``, ``[NAME]``, ``INPUTS...``."""
        words = []
        for p in self.signature.parameters.values():
            if p.kind is inspect.Parameter.VAR_POSITIONAL:
                words.append(f"[{p.name.upper()}...]")
            elif p.default is inspect.Parameter.empty:
                words.append(p.name.upper())
            else:
                words.append(f"[{p.name.upper()}]")
        return " ".join([self.name, *words])

    def accepts(self, count: int) -> bool:
        """True when ``process`` can be called with ``count`` inputs."""
        try:
            self.signature.bind(*range(count))
        except TypeError:
            return False
        return True


def _doc_parts(doc: str | None) -> tuple[str, str]:
    text = inspect.cleandoc(doc or "")
    first, _, rest = text.partition("\n")
    return first.strip(), textwrap.dedent(rest).strip()


class _ConfigAttribute:
    """Class attribute standing for a config: reads and validates it on the instance."""

    def __init__(self, spec: ConfigSpec) -> None:
        self.spec = spec

    def __get__(self, obj: Task | None, owner: type | None = None) -> Any:
        if obj is None:
            return self.spec
        return obj._config[self.spec.name]

    def __set__(self, obj: Task, value: Any) -> None:
        obj._config[self.spec.name] = _config.validate_one(type(obj).__retap__.name, self.spec,
                                                           value)


class Task:
    """A unit of work: typed configs plus ``process(*inputs)``, which returns the result.

    Subclass it and annotate configs as class attributes::

        class Goodnight(retap.Task, name="gn"):
            '''Your basic goodnight moon task.'''
            message: str = retap.config("goodnight", help="a goodnight message")

            def process(self, name):
                return f"{self.message} {name}"
    """

    idempotent: ClassVar[bool] = True
    version: ClassVar[str | None] = None
    cache: ClassVar[str | None] = None
    retries: ClassVar[int] = 0
    retry_delay: ClassVar[float] = 0.0
    timeout: ClassVar[float | None] = None  # seconds a dispatch may run (where enforceable)
    max_parallel: ClassVar[int | None] = None  # dispatches of this task running at once
    journaled: ClassVar[bool] = False  # its dispatches keep a journal of file changes
    __retap__: ClassVar[TaskInfo]

    def __init_subclass__(cls, name: str | None = None, abstract: bool = False,
                          **settings: Any) -> None:
        super().__init_subclass__()
        label = cls.__qualname__
        for key, value in settings.items():
            _check_setting(label, key, value)
            setattr(cls, key, value)
        for key in SETTINGS:
            if key in cls.__dict__:
                _check_setting(label, key, cls.__dict__[key])
        if name is not None and (not isinstance(name, str) or not _NAME.fullmatch(name)):
            raise TaskDefinitionError(label, f"name must be a word of letters, digits and "
                                             f"'_', '-', '.', '/' not starting with '-' (it "
                                             f"is typed after `--` on the command line), "
                                             f"not {name!r}")
        configs = _collect_configs(cls, label)
        for spec in configs.values():
            setattr(cls, spec.name, _ConfigAttribute(spec))
        fn = cls.__dict__.get("_fn")
        signature = _inputs_signature(fn.__func__ if fn else cls.process, bound=not fn)
        cls.__retap__ = TaskInfo(cls=cls, name=name or snake_case(cls.__name__), configs=configs,
                                 signature=signature, abstract=abstract)

    def __init__(self, **configs: Any) -> None:
        info = self.__retap__
        self._config: dict[str, Any] = _config.validate(info.name, info.configs, configs)
        self._context: TaskContext | None = None  # set while a dispatch of it runs

    def process(self, *inputs: Any) -> Any:
        """Do the work for one dispatch and return its result."""
        raise NotImplementedError(f"{type(self).__name__}.process is not defined")

    def execute(self, *inputs: Any) -> Any:
        """What the App calls for a dispatch: ``process``, plus what a kind of task wraps
        around it (file tasks: the journal that undoes a failed dispatch's file changes)."""
        return self.process(*inputs)

    def fingerprint(self, *inputs: Any) -> Any:
        """What else a memoized result depends on besides inputs, configs and code (e.g. a
        file listing), as JSON-able data; None when nothing."""
        return None

    def written_files(self) -> dict[str, str]:
        """Files the last dispatch wrote, by path, with their content digests."""
        return {}

    @property
    def configs(self) -> dict[str, Any]:
        """The configs as JSON-safe values (what a workflow spec records)."""
        specs = self.__retap__.configs
        return {k: _config.to_json(specs[k], v) for k, v in self._config.items()}

    def config_values(self) -> dict[str, Any]:
        """The configs as validated Python values."""
        return dict(self._config)

    @property
    def run_id(self) -> str | None:
        """The id of the run whose dispatch this task is executing, or None outside a run."""
        return self._context.run if self._context is not None else None

    @property
    def dispatch_id(self) -> str | None:
        """The id of the dispatch this task is executing, or None outside a run."""
        return self._context.dispatch if self._context is not None else None

    @property
    def stopping(self) -> bool:
        """True once the run has been asked to stop; long tasks may bail out. (In a worker
        process the run cannot ask: a stop there kills the worker.)"""
        return self._context is not None and self._context.stopping()

    def check_terminate(self) -> None:
        """Raise ``Interrupted`` when the App has been asked to stop; a checkpoint for long work."""
        if self.stopping:
            assert self._context is not None
            raise Interrupted(self._context.stop_signal())

    def __getstate__(self) -> dict[str, Any]:
        """What a worker gets: the configs, never the run it belongs to."""
        return {"_config": self._config, "_context": None}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config_values().items())
        return f"{type(self).__name__}({args})"


def _check_setting(task: str, key: str, value: Any) -> None:
    if key not in SETTINGS:
        known = ", ".join(["name", "abstract", *SETTINGS])
        raise TaskDefinitionError(task, f"unknown task option {key!r} (known: {known})")
    if not SETTINGS[key](value):
        raise TaskDefinitionError(task, f"{key} must be {_SETTING_HINTS[key]}, not {value!r}")


def _reserved() -> set[str]:
    return {n for n in dir(Task) if not n.startswith("__")} | set(SETTINGS) | {"_config",
                                                                                 "_context"}


def _collect_configs(cls: type, label: str) -> dict[str, ConfigSpec]:
    """Inherited configs, then the class's own annotations; a bare default overrides one."""
    configs: dict[str, ConfigSpec] = {}
    for base in reversed(cls.__mro__[1:]):
        info = base.__dict__.get("__retap__")
        if info is not None:
            configs.update(info.configs)
    own = inspect.get_annotations(cls)
    hints = _resolve_hints(cls, label, own)
    reserved = _reserved()
    for key in own:
        hint = hints[key]
        if typing.get_origin(hint) is ClassVar or hint is ClassVar or key.startswith("_"):
            continue
        if key in reserved:
            raise TaskDefinitionError(label, f"{key!r} is a task setting or method, not a config; "
                                             "assign it without an annotation or rename it")
        configs[key] = _config.spec_from(label, key, hint, cls.__dict__.get(key, MISSING))
    for key, value in cls.__dict__.items():
        if key in own:
            continue
        if isinstance(value, _config._Declared):
            raise TaskDefinitionError(label, f"config {key!r} has no type; annotate it, "
                                             f"e.g. `{key}: str = retap.config(...)`")
        if key in configs and not isinstance(value, _ConfigAttribute):
            configs[key] = _config.with_default(label, configs[key], value)
    return configs


def _resolve_hints(cls: type, label: str, own: dict[str, Any]) -> dict[str, Any]:
    if not any(isinstance(v, str) for v in own.values()):
        return dict(own)
    module = sys.modules.get(cls.__module__)
    namespace = {**vars(module), **vars(cls)} if module else dict(vars(cls))
    hints = {}
    for key, value in own.items():
        try:
            hints[key] = eval(value, namespace) if isinstance(value, str) else value
        except Exception as exc:
            raise TaskDefinitionError(label, f"cannot resolve the type of {key!r}: {exc}") from None
    return hints


def _inputs_signature(process: Callable[..., Any], bound: bool) -> inspect.Signature:
    sig = inspect.signature(process)
    params = list(sig.parameters.values())
    if bound and params:
        params = params[1:]
    params = [p for p in params if p.kind in (inspect.Parameter.POSITIONAL_ONLY,
                                               inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                               inspect.Parameter.VAR_POSITIONAL)]
    return sig.replace(parameters=params, return_annotation=inspect.Signature.empty)


class _FunctionTask(Task, abstract=True):
    """Base of tasks made by ``@task``: process calls the function with configs as keywords.
    Called with inputs (positional, or an input named as a keyword), it is still the plain
    function: ``shout("hi", times=2)``; with configs only, it makes a task instance."""

    _fn: ClassVar[Any]
    _inputs: ClassVar[frozenset[str]] = frozenset()  # the function's input parameters

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if args or not cls._inputs.isdisjoint(kwargs):
            return cls._fn(*args, **kwargs)
        return super().__new__(cls)

    def process(self, *inputs: Any) -> Any:
        return type(self)._fn(*inputs, **self._config)


def task(fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
         **settings: Any) -> Any:
    """Make a task of a function: positional parameters are inputs, keyword-only are configs.

    ``@retap.task`` or ``@retap.task(name="shout", cache="inputs")``. The result is a
    Task class that is still the function when called with inputs: ``shout("hi", times=2)``
    calls it, ``shout(times=2)`` is a task with that config (for ``Workflow.add``).
    """
    if fn is None:
        return lambda f: task(f, name=name, **settings)
    if not callable(fn):
        raise TaskDefinitionError(repr(fn), "@retap.task decorates a function")
    return _function_task(fn, name, settings)


def _function_task(fn: Callable[..., Any], name: str | None,
                   settings: dict[str, Any]) -> type[Task]:
    label = getattr(fn, "__qualname__", repr(fn))
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = dict(getattr(fn, "__annotations__", {}))
    namespace: dict[str, Any] = {"__annotations__": {}}
    for p in inspect.signature(fn).parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            raise TaskDefinitionError(label, f"**{p.name} is not allowed; declare each config "
                                             "as a keyword-only parameter")
        if p.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        if p.name not in hints:
            raise TaskDefinitionError(label, f"config {p.name!r} needs a type annotation")
        namespace["__annotations__"][p.name] = hints[p.name]
        if p.default is not inspect.Parameter.empty:
            namespace[p.name] = p.default
    inputs = frozenset(p.name for p in inspect.signature(fn).parameters.values()
                       if p.kind in (inspect.Parameter.POSITIONAL_ONLY,
                                     inspect.Parameter.POSITIONAL_OR_KEYWORD))
    namespace.update(__module__=fn.__module__, __qualname__=label, __doc__=fn.__doc__,
                     __wrapped__=fn, _fn=staticmethod(fn), _inputs=inputs)
    keywords = {"name": name or snake_case(fn.__name__), **settings}
    return types.new_class(fn.__name__, (_FunctionTask,), keywords,
                           lambda ns: ns.update(namespace))
