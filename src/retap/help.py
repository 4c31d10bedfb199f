"""Task help and task lists as text, in the shape of Tap's help."""

from __future__ import annotations

import textwrap

from retap.configs import ConfigSpec
from retap.discovery import Found
from retap.taskdef import Task

__all__ = ["task_help", "task_list"]

RULE = "-" * 80


def task_help(cls: type[Task], name: str | None = None) -> str:
    """Usage, configs (type, default, help) and docs of a task called ``name`` here."""
    info = cls.__retap__
    title = cls.__name__ + (f" -- {info.summary}" if info.summary else "")
    lines = [title, RULE]
    if info.description:
        lines += [textwrap.indent(info.description, "  "), RULE]
    usage = info.usage if name is None else " ".join([name, *info.usage.split(" ")[1:]])
    lines += [f"usage: retap run -- {usage}", ""]
    if info.configs:
        lines.append("configurations:")
        lines += [_config_line(spec) for spec in info.configs.values()]
        lines.append("")
    lines += ["options:", _row("--help", "Print this help"),
              _row("--config FILE", "Specifies a config file (YAML, TOML or JSON)")]
    flags = [k for k, v in (("cache", info.cls.cache), ("idempotent", info.cls.idempotent))
             if (k == "cache" and v) or (k == "idempotent" and not v)]
    if flags or info.cls.retries:
        lines += ["", "settings: " + ", ".join(
            [f"cache={info.cls.cache}"] * ("cache" in flags)
            + ["idempotent=False"] * ("idempotent" in flags)
            + [f"retries={info.cls.retries}"] * bool(info.cls.retries))]
    return "\n".join(lines) + "\n"


def _config_line(spec: ConfigSpec) -> str:
    words = f"--[no-]{spec.flag[2:]}" if spec.is_bool else f"{spec.flag} {spec.name.upper()}"
    facts = [spec.type_name, "required" if spec.required else f"default: {_shown(spec)}"]
    text = (spec.help + " " if spec.help else "") + f"({', '.join(facts)})"
    return _row(words, text)


def _shown(spec: ConfigSpec) -> str:
    value = spec.default
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, str) else str(getattr(value, "value", value))


def _row(words: str, text: str) -> str:
    left = f"        {words}"
    if len(left) >= 37:
        return f"{left}\n{'':37}{text}"
    return f"{left:<37}{text}"


def task_list(found: dict[str, Found]) -> str:
    """One line per task, grouped by where it was found, with its summary."""
    width = max((len(name) for name in found), default=0) + 2
    groups: dict[str, list[str]] = {}
    for name in sorted(found):
        item = found[name]
        group = "built-in" if item.source == "built-in" else item.source
        groups.setdefault(group, []).append(f"  {name:<{width}}{item.cls.__retap__.summary}")
    order = sorted(groups, key=lambda g: (g == "built-in", g))
    return "\n".join(f"{g}:\n" + "\n".join(groups[g]) for g in order) + "\n"
