"""Built-in tasks."""

from retap.tasks.builtin import Dump, Fail, Glob, Load, Sleep, TaskFailed

__all__ = ["Dump", "Fail", "Glob", "Load", "Sleep", "TaskFailed"]
