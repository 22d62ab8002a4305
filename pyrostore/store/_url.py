"""Parsing store URLs and their options (which may arrive as strings from configuration files)."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from pyrostore.errors import InvalidSetting, InvalidStoreURL
from pyrostore.settings import parse_bool

SCHEMES = ("file", "s3", "gs")
ACCEPTED = "a local path, file:///abs/dir, s3://bucket/prefix or gs://bucket/prefix"

_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")


@dataclass(frozen=True)
class Location:
    """Where a store URL points: a scheme, then a bucket and key prefix, or for ``file`` a folder."""

    scheme: str
    bucket: str  # for "file": the absolute folder path
    prefix: str = ""  # no slashes at either end


def redact(url: str) -> str:
    """The URL without any ``user:password@`` part, safe for messages."""
    head, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    return f"{head}://{netloc.rpartition('@')[2]}{slash}{path}"


def scrub(text: str) -> str:
    """``text`` with the ``user:password@`` part of any URL in it removed (libraries quote URLs in errors)."""
    return _USERINFO.sub(r"\1", text)


def parse_url(url: str) -> Location:
    """Split a store URL into scheme, bucket and prefix. Raises InvalidStoreURL."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidStoreURL(f"store URL {url!r} is empty; use {ACCEPTED}")
    if "://" not in url and not url.startswith("file:"):
        return Location("file", os.path.abspath(os.path.expanduser(url)))
    shown = redact(url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise InvalidStoreURL(f"store URL {shown!r} has an unknown scheme {scheme!r}; use {ACCEPTED}")
    if "@" in parts.netloc:
        raise InvalidStoreURL(f"store URL {shown!r} carries credentials; pass them as options instead")
    if parts.query or parts.fragment:
        raise InvalidStoreURL(f"store URL {shown!r} has a query or fragment; pass settings as options instead")
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise InvalidStoreURL(f"store URL {shown!r}: a file URL needs an absolute path, as file:///abs/dir")
        return Location("file", os.path.abspath(unquote(parts.path)))
    if not parts.netloc:
        raise InvalidStoreURL(f"store URL {shown!r} names no bucket; use {scheme}://bucket/prefix")
    prefix = parts.path.strip("/")
    if prefix and any(seg in ("", ".", "..") for seg in prefix.split("/")):
        raise InvalidStoreURL(f"store URL {shown!r}: the prefix has an empty, '.' or '..' part")
    return Location(scheme, parts.netloc, prefix)


def parse_options(url: str, options: Mapping[str, object], spec: Mapping[str, type]) -> dict[str, object]:
    """Check option names against ``spec`` (name -> str, bool, int or float) and convert string values.

    Options whose value is None count as absent. Raises InvalidStoreURL naming the bad option.
    """
    shown = redact(url)
    parsed: dict[str, object] = {}
    for name, value in options.items():
        if name not in spec:
            valid = ", ".join(sorted(spec)) or "none"
            raise InvalidStoreURL(f"store {shown!r}: unknown option {name!r}; valid options: {valid}")
        if value is not None:
            parsed[name] = _convert(shown, name, value, spec[name])
    return parsed


def _convert(shown: str, name: str, value: object, kind: type) -> object:
    """Convert one option value to ``kind``, accepting the string forms a config file gives."""
    if kind is bool:
        if isinstance(value, (bool, str)):
            with contextlib.suppress(InvalidSetting):
                return parse_bool(value)
        raise InvalidStoreURL(f"store {shown!r}: option {name!r} must be true or false, not {value!r}")
    if kind in (int, float):
        if isinstance(value, bool):
            raise InvalidStoreURL(f"store {shown!r}: option {name!r} must be a number, not {value!r}")
        try:
            if not isinstance(value, (str, int, float)):
                raise TypeError(type(value).__name__)
            number = value.strip() if isinstance(value, str) else value
            return int(number) if kind is int else float(number)
        except (TypeError, ValueError):
            raise InvalidStoreURL(f"store {shown!r}: option {name!r} must be a number, not {value!r}") from None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        # A secret could arrive here; name only its type.
        raise InvalidStoreURL(f"store {shown!r}: option {name!r} must be a string, not {type(value).__name__}")
    return value
