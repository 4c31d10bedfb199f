"""Task configs: their declaration, validation, coercion from strings, and config files.

A config is an annotated attribute of a task class (or a keyword-only parameter of a
task function). Its values are validated by a pydantic TypeAdapter built once per config, so
``--count 3`` arrives as the int 3 and ``--count x`` is refused before anything runs. A value
already of exactly the plain type a config declares (int, str, float, bool, or None where
allowed) is one pydantic would hand back unchanged: it passes without the adapter, so a
process whose tasks take such values (a resume rebuilding them from the spec) never loads
pydantic.
Precedence, lowest first: the declared default, a ``--config FILE``, ``--key value``
on the command line (or keyword arguments in Python), ``retap resume --set``.
"""

from __future__ import annotations

import copy
import enum
import json
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retap import secret
from retap.errors import ConfigValueError, TaskDefinitionError, UnknownConfig

if TYPE_CHECKING:
    import pydantic

__all__ = ["MISSING", "ConfigSpec", "config", "load_config_file"]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
CLI_WORDS = ("help", "config")  # options every task has on the command line
PLAIN_TYPES = (int, str, float, bool)


@dataclass(frozen=True)
class _Declared:
    """What ``retap.config(...)`` returns: a default plus the docs of a config."""

    default: Any = MISSING
    help: str = ""


def config(default: Any = MISSING, *, help: str = "") -> Any:
    """Declare a config's default and help text: ``count: int = retap.config(1, help="...")``."""
    return _Declared(default, help)


@dataclass(frozen=True)
class ConfigSpec:
    """One config of a task: its name, type, default and help text."""

    name: str
    annotation: Any
    default: Any = MISSING
    help: str = ""
    # The exact types whose values pydantic returns unchanged: (int,) for ``int``, (int,
    # NoneType) for ``int | None``; () for any other annotation.
    plain: tuple[type, ...] = field(default=(), compare=False, repr=False)
    adapter: Any = field(default=None, compare=False, repr=False)  # built on first need

    @property
    def required(self) -> bool:
        return self.default is MISSING

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def is_bool(self) -> bool:
        return self.annotation is bool

    @property
    def is_list(self) -> bool:
        return typing.get_origin(_strip_optional(self.annotation)) in (list, tuple, set, frozenset)

    @property
    def type_name(self) -> str:
        return type_name(self.annotation)

    @property
    def secret(self) -> bool:
        """A SecretStr/SecretBytes config: never stored, given again on resume."""
        return secret.is_secret_type(self.annotation)


def spec_from(task: str, name: str, annotation: Any, value: Any) -> ConfigSpec:
    """Make the spec of a declared config, checking its declaration early."""
    if annotation is None or annotation is typing.Any:
        raise TaskDefinitionError(task, f"config {name!r} needs a type annotation")
    if name in CLI_WORDS:
        raise TaskDefinitionError(task, f"a config cannot be called {name!r}: --{name} is "
                                        "taken on the command line")
    declared = value if isinstance(value, _Declared) else _Declared(value)
    spec = ConfigSpec(name, annotation, declared.default, declared.help,
                      plain=_plain_types(annotation))
    if not spec.plain:
        adapter_for(task, spec)  # a type pydantic cannot validate fails at definition
    return with_default(task, spec, spec.default)


def with_default(task: str, spec: ConfigSpec, default: Any) -> ConfigSpec:
    """``spec`` with ``default`` validated (a default of the wrong type fails at definition)."""
    if default is not MISSING and type(default) not in spec.plain:
        import pydantic

        try:
            default = adapter_for(task, spec).validate_python(default)
        except pydantic.ValidationError as exc:
            raise TaskDefinitionError(task, f"the default of config {spec.name!r}, {default!r}, "
                                            f"is not a {spec.type_name}: "
                                            f"{exc.errors()[0]['msg']}") from None
    return replace(spec, default=default)


def adapter_for(task: str, spec: ConfigSpec) -> pydantic.TypeAdapter[Any]:
    """The validator of one config, built once; a type pydantic cannot validate fails here."""
    if spec.adapter is None:
        import pydantic

        try:
            built = pydantic.TypeAdapter(spec.annotation)
        except (pydantic.PydanticSchemaGenerationError, TypeError) as exc:
            raise TaskDefinitionError(task, f"config {spec.name!r} of type {spec.type_name} "
                                            f"cannot be validated: {exc}") from None
        object.__setattr__(spec, "adapter", built)
    return spec.adapter


def _plain_types(annotation: Any) -> tuple[type, ...]:
    """What ConfigSpec.plain holds for ``annotation``."""
    base = _strip_optional(annotation)
    if not any(base is kind for kind in PLAIN_TYPES):
        return ()
    return (base, type(None)) if base is not annotation else (base,)


def validate(task: str, specs: Mapping[str, ConfigSpec], values: Mapping[str, Any]
             ) -> dict[str, Any]:
    """Validate a whole set of config values, filling in defaults; unknown keys, bad values
    and missing required configs are errors."""
    for key in values:
        if key not in specs:
            raise UnknownConfig(task, key, specs)
    result = {}
    for name, spec in specs.items():
        if name in values:
            result[name] = validate_one(task, spec, values[name])
        elif spec.required:
            raise ConfigValueError(task, name, None, f"{spec.type_name} (it is required: "
                                                     f"set {spec.flag})")
        else:
            result[name] = copy.deepcopy(spec.default)
    return result


def validate_one(task: str, spec: ConfigSpec, value: Any) -> Any:
    """One config value, validated and coerced (``"3"`` -> 3 for an int)."""
    if type(value) in spec.plain:
        return value
    import pydantic

    try:
        return adapter_for(task, spec).validate_python(value)
    except pydantic.ValidationError as exc:
        message = exc.errors()[0]["msg"]
        raise ConfigValueError(task, spec.name, value,
                               f"{spec.type_name} ({message[0].lower()}{message[1:]})"
                               ) from None


def to_json(spec: ConfigSpec, value: Any) -> Any:
    """A config value as JSON-safe data (what a workflow spec records); a secret as its
    keyed digest, never in clear."""
    if spec.secret:
        return secret.marker(value)
    if type(value) in spec.plain:
        return value
    return adapter_for(spec.name, spec).dump_python(value, mode="json")


def coerce_text(task: str, spec: ConfigSpec, raw: list[str]) -> Any:
    """Turn the command-line text given for one config into a value for validation.

    Lists take comma-separated items, a YAML/JSON list, or the flag repeated; dicts
    and models take YAML; other types get the text as it is and pydantic coerces it.
    """
    target = _strip_optional(spec.annotation)
    if len(raw) == 1 and raw[0].lower() in ("none", "null") and _allows_none(spec.annotation):
        return None
    if spec.is_list:
        items: list[Any] = []
        for text in raw:
            if text.lstrip().startswith("["):
                items.extend(_yaml(task, spec, text))
            else:
                items.extend(part.strip() for part in text.split(",") if part.strip())
        return items
    text = raw[-1]
    if typing.get_origin(target) is dict or target is dict or _is_model(target):
        return _yaml(task, spec, text)
    return text


def _yaml(task: str, spec: ConfigSpec, text: str) -> Any:
    import yaml  # here: most runs read no YAML, and yaml costs a start-up 10 ms

    from retap.safeyaml import load_yaml

    try:
        return load_yaml(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigValueError(task, spec.name, text, f"{spec.type_name} as YAML ({exc})"
                               ) from None


def load_config_file(path: str | Path, task: str = "?") -> dict[str, Any]:
    """Read a config file (YAML, TOML or JSON, by extension) into a dict of config values."""
    import tomllib

    import yaml

    from retap.safeyaml import load_yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigValueError(task, "--config", str(path), f"a readable file ({exc.strerror})"
                               ) from None
    except UnicodeDecodeError as exc:
        raise ConfigValueError(task, "--config", str(path), f"UTF-8 text ({exc.reason} at "
                                                            f"byte {exc.start})") from None
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            data = load_yaml(text)
    except (ValueError, RecursionError, yaml.YAMLError) as exc:
        reason = str(exc).splitlines()[0]
        raise ConfigValueError(task, "--config", str(path), f"YAML, TOML or JSON ({reason})"
                               ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigValueError(task, "--config", str(path), "a mapping of config names to values")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def type_name(annotation: Any) -> str:
    """A short readable name for a config type: ``int``, ``list[str]``, ``one of a, b``."""
    if typing.get_origin(annotation) is typing.Annotated:
        roles = [repr(m) for m in annotation.__metadata__ if type(m).__name__ == "_Role"]
        base = type_name(typing.get_args(annotation)[0])
        return f"{base} ({roles[0]})" if roles else base
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(str(m.value) for m in annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "none"
    return getattr(annotation, "__name__", str(annotation))


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _allows_none(annotation: Any) -> bool:
    return (typing.get_origin(annotation) in (typing.Union, types.UnionType)
            and type(None) in typing.get_args(annotation))


def _is_model(annotation: Any) -> bool:
    pydantic = sys.modules.get("pydantic")  # not loaded: nothing can be one of its models
    return pydantic is not None and isinstance(annotation, type) and \
        issubclass(annotation, pydantic.BaseModel)
