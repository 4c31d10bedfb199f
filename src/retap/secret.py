"""Secret configs (``pydantic.SecretStr`` / ``SecretBytes``): never stored in clear.

A spec and a memo key hold a secret as ``{"$secret": KEYED-DIGEST}``: an HMAC of the
value under a key kept outside every store (``$RETAP_SECRET_KEY``, else a file made
owner-only under the user's config directory). Two runs with the same secret get the
same memo key; one who holds only the store learns nothing. A resume or replay needs
the secret again: from ``--set NODE.KEY=VALUE`` or ``$RETAP_SECRET_<NODE>_<KEY>``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import sys
from pathlib import Path
from typing import Any

__all__ = ["KEY_ENV", "MARK", "SecretSource", "env_name", "is_marker", "is_secret_type",
           "keyed_digest", "marker", "secret_key", "secret_types"]

KEY_ENV = "RETAP_SECRET_KEY"
MARK = "$secret"


def secret_types() -> tuple[type[Any], ...]:
    """pydantic's SecretStr and SecretBytes; none while pydantic is not loaded, since then no
    annotation or value can be one (a process whose tasks use plain types never loads it)."""
    pydantic = sys.modules.get("pydantic")
    return (pydantic.SecretStr, pydantic.SecretBytes) if pydantic is not None else ()


def is_secret_type(annotation: Any) -> bool:
    """True for a config typed SecretStr or SecretBytes (optionally ``| None``)."""
    args = getattr(annotation, "__args__", None) if not isinstance(annotation, type) else None
    candidates = [a for a in args if a is not type(None)] if args else [annotation]
    return len(candidates) == 1 and isinstance(candidates[0], type) and \
        issubclass(candidates[0], secret_types())


def secret_key() -> bytes:
    """The key secrets are digested under: ``$RETAP_SECRET_KEY``, else the user's key file,
    made (0600) on first use."""
    given = os.environ.get(KEY_ENV)
    if given:
        return given.encode()
    path = _key_path()
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    import secrets  # here: made once per user, and its import costs every start-up

    key = secrets.token_hex(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # made meanwhile by another process: use theirs
        return path.read_bytes()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


def _key_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "retap" / "secret.key"


def keyed_digest(value: Any) -> str:
    """The HMAC of a secret's value (a SecretStr, SecretBytes, or None)."""
    if value is None:
        return "none"
    raw = value.get_secret_value()
    data = raw.encode() if isinstance(raw, str) else bytes(raw)
    return hmac.new(secret_key(), data, hashlib.sha256).hexdigest()[:32]


def marker(value: Any) -> dict[str, str]:
    """What a spec and a memo key record for a secret."""
    return {MARK: keyed_digest(value)}


def is_marker(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {MARK} and isinstance(value[MARK], str)


def env_name(node: Any, key: str) -> str:
    """``$RETAP_SECRET_<NODE>_<KEY>``: where a resume looks for a secret not given by --set."""
    return "RETAP_SECRET_" + re.sub(r"[^A-Z0-9]", "_", f"{node}_{key}".upper())


class SecretSource:
    """Where a rebuilt workflow gets the secrets its spec only names: ``--set`` values,
    then ``$RETAP_SECRET_<NODE>_<KEY>``, then the config's default when it is the value
    the run was recorded with; else ``SecretMissing``, in one line."""

    def __init__(self, run: str = "", given: dict[tuple[Any, str], Any] | None = None) -> None:
        self.run = run
        self.given = given or {}

    def __call__(self, node: Any, key: str, digest: str, default: Any) -> Any:
        if (node, key) in self.given:
            return self.given[(node, key)]
        env = os.environ.get(env_name(node, key))
        if env is not None:
            return env
        if default is not None and not isinstance(default, dict) and \
                keyed_digest(default) == digest:
            return default
        if default is None and digest == "none":
            return None
        from retap.errors import SecretMissing

        raise SecretMissing(self.run, node, key, env_name(node, key))
