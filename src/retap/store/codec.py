"""Value codecs: how results and inputs become bytes in a store.

The default, ``json``, is JSON with tagged extensions for tuples, sets, bytes, dates
and times, paths and decimals; decoding it can never run code. ``pickle`` is only
used when asked for, and every pickled value is signed with an HMAC key from
``$RETAP_PICKLE_KEY``: a value whose signature does not match is refused, not loaded.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import os
from abc import ABC, abstractmethod
from pathlib import Path, PurePath
from typing import Any

from retap import hashing
from retap.errors import CodecError, UsageError

__all__ = ["MAX_DEPTH", "Codec", "JsonCodec", "Opaque", "PickleCodec", "codec_named", "digest"]

TAG = "$"
PICKLE_KEY_ENV = "RETAP_PICKLE_KEY"
MAX_DEPTH = 200  # nesting a value may have: deeper ones could not be read back safely
# what decoding malformed or hostile bytes can raise, besides CodecError
_DECODE_ERRORS = (ValueError, KeyError, TypeError, IndexError, ArithmeticError, RecursionError,
                  OverflowError, AttributeError)


def digest(codec: str, data: bytes) -> str:
    """The content address of an encoded value."""
    return hashing.blake2b(data, digest_size=16, person=codec.encode()[:16]).hexdigest()


class Opaque:
    """A stored value shown without decoding it (a reader never unpickles)."""

    def __init__(self, codec: str, size: int, digest: str) -> None:
        self.codec, self.size, self.digest = codec, size, digest

    def __str__(self) -> str:
        return f"<{self.codec} value, {self.size} bytes, {self.digest[:12]}>"

    __repr__ = __str__


class Codec(ABC):
    name: str

    @abstractmethod
    def encode(self, value: Any) -> bytes:
        """Bytes for ``value``; CodecError naming the type when it cannot be encoded."""

    @abstractmethod
    def decode(self, data: bytes) -> Any:
        """The value back; CodecError when the bytes are not this codec's."""


_SCALARS = (str, int, float, bool, type(None))


def _json_encoder() -> Any:
    """``json.dumps(v, separators=(",", ":"), ensure_ascii=False)`` for what ``_to_json``
    makes (str keys, no cycles): the C encoder built once, where json.dumps builds one on
    every call; json's own encoder where its C part is missing."""
    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=True)
    make = getattr(json.encoder, "c_make_encoder", None)  # not in the stubs: CPython's own
    if make is None:
        return encoder.encode

    def refuse(o: Any) -> Any:
        raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")

    chunks = make(None, refuse, json.encoder.encode_basestring, None, ":", ",", False, False,
                  True)
    return lambda value: "".join(chunks(value, 0))


_ENCODER = _json_encoder()


class JsonCodec(Codec):
    """JSON, with ``{"$": tag, "v": ...}`` objects for the types JSON lacks."""

    name = "json"

    def encode(self, value: Any) -> bytes:
        try:
            if type(value) is int:  # the commonest result, as JSON writes it, a tenth the cost
                return int.__repr__(value).encode()
            return _ENCODER(_to_json(value, 0)).encode()
        except CodecError:
            raise
        except UnicodeEncodeError:
            raise CodecError("cannot encode a string that is not valid Unicode (a lone "
                             "surrogate, e.g. from a file name that is not UTF-8)", "str") from None
        except (ValueError, RecursionError, OverflowError, TypeError) as exc:
            raise CodecError(f"cannot encode the value: {_first_line(exc)}") from None

    def decode(self, data: bytes) -> Any:
        try:
            return self.decode_text(data.decode())
        except UnicodeDecodeError as exc:
            raise CodecError(f"stored value is not valid retap JSON: {exc}") from None

    def decode_text(self, text: str) -> Any:
        """The value of JSON text (what inline values hold)."""
        try:
            try:  # the scanner alone: what retap writes has no whitespace around it
                value, end = _SCAN(text, 0)
            except StopIteration:
                end = -1
            if end == len(text):
                return value
            return _DECODER.decode(text)  # anything else: json's own answer, or its error
        except _DECODE_ERRORS as exc:
            raise CodecError(f"stored value is not valid retap JSON: {type(exc).__name__}: "
                             f"{_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()
    return text[0][:200] if text else type(exc).__name__


def _to_json(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    if depth >= MAX_DEPTH:
        raise CodecError(f"cannot encode a value nested more than {MAX_DEPTH} levels deep "
                         "(or one that contains itself)", kind.__qualname__)
    depth += 1
    if kind is list:
        return [_to_json(v, depth) for v in value]
    if kind is dict:
        if TAG not in value and all(type(k) is str for k in value):
            return {k: _to_json(v, depth) for k, v in value.items()}
        return {TAG: "dict", "v": [[_to_json(k, depth), _to_json(v, depth)]
                                   for k, v in value.items()]}
    encoder = _ENCODERS.get(kind) or next(
        (f for t, f in _ENCODERS.items() if isinstance(value, t)), None)
    if encoder is None:
        raise CodecError(f"cannot encode a value of type {kind.__module__}.{kind.__qualname__} "
                         "with the json codec (use JSON types, tuples, sets, bytes, dates, "
                         "paths or decimals, or --codec pickle)", kind.__qualname__)
    tag, payload = encoder(value, depth)
    return {TAG: tag, "v": payload}


_ENCODERS: dict[type, Any] = {
    tuple: lambda v, d: ("tuple", [_to_json(x, d) for x in v]),
    set: lambda v, d: ("set", sorted((_to_json(x, d) for x in v), key=repr)),
    frozenset: lambda v, d: ("frozenset", sorted((_to_json(x, d) for x in v), key=repr)),
    bytes: lambda v, d: ("bytes", base64.b64encode(v).decode()),
    bytearray: lambda v, d: ("bytes", base64.b64encode(bytes(v)).decode()),
    dt.datetime: lambda v, d: ("datetime", v.isoformat()),
    dt.date: lambda v, d: ("date", v.isoformat()),
    dt.time: lambda v, d: ("time", v.isoformat()),
    dt.timedelta: lambda v, d: ("timedelta", v.total_seconds()),
    decimal.Decimal: lambda v, d: ("decimal", str(v)),
    PurePath: lambda v, d: ("path", str(v)),
}

_DECODERS: dict[str, Any] = {
    "tuple": tuple,
    "set": set,
    "frozenset": frozenset,
    "dict": lambda items: {_hashable(k): v for k, v in items},
    "bytes": base64.b64decode,
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "timedelta": lambda s: dt.timedelta(seconds=s),
    "decimal": decimal.Decimal,
    "path": Path,
}


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


def _from_json(obj: dict[str, Any]) -> Any:
    tag = obj.get(TAG)
    if tag is None or len(obj) != 2 or "v" not in obj:
        return obj
    return _DECODERS[tag](obj["v"])


_DECODER = json.JSONDecoder(object_hook=_from_json)
_SCAN = _DECODER.scan_once  # type: ignore[attr-defined]  # (text, start) -> (value, end)


class PickleCodec(Codec):
    """Pickle, signed: the HMAC-SHA256 of the pickle is stored in front of it."""

    name = "pickle"

    def __init__(self, key: bytes | None = None) -> None:
        key = key if key is not None else os.environ.get(PICKLE_KEY_ENV, "").encode()
        if not key:
            raise UsageError(f"the pickle codec needs a signing key: set ${PICKLE_KEY_ENV}")
        self.key = key

    def encode(self, value: Any) -> bytes:
        import pickle  # here: only a run that asks for it pickles

        try:
            payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise CodecError(f"cannot pickle a value of type {type(value).__qualname__}: {exc}",
                             type(value).__qualname__) from None
        return self._sign(payload) + payload

    def signed(self, data: bytes) -> bool:
        """True when ``data`` carries this key's signature (it was pickled by retap)."""
        import hmac

        signature, payload = data[:32], data[32:]
        return hmac.compare_digest(signature, self._sign(payload))

    def _sign(self, payload: bytes) -> bytes:
        import hashlib
        import hmac  # here, with pickle: only a run that asks for it signs

        return hmac.new(self.key, payload, hashlib.sha256).digest()

    def decode(self, data: bytes) -> Any:
        payload = data[32:]
        if not self.signed(data):
            raise CodecError("a pickled value's signature does not match: the store was "
                             "changed outside retap or the key differs; refusing to unpickle it")
        import pickle

        try:
            return pickle.loads(payload)
        except Exception as exc:  # signed, so ours: a class its code no longer has
            raise CodecError(f"a pickled value cannot be loaded: {_first_line(exc)} (import "
                             "the module that defines its class first)") from None


def codec_named(name: str) -> Codec:
    """The codec called ``name`` (``json`` or ``pickle``)."""
    if name == "json":
        return JsonCodec()
    if name == "pickle":
        return PickleCodec()
    raise UsageError(f"unknown codec {name!r} (known: json, pickle)")
