"""Building kio's per-version messages from one set of values for every version.

kio has one class per API version, and fields come and go between versions (topic names give way to topic ids,
log start offsets appear). Handlers describe a response once, with every field any version has; :func:`make`
keeps the fields the version's class defines, and :func:`item_type` finds the class of a nested field in the
same version.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Any, TypeVar

from kio.index import load_response_schema

T = TypeVar("T")


def field_names(cls: type) -> frozenset[str]:
    """The names of a kio entity's fields."""
    return _field_names(cls)


def make(cls: type[T], **values: Any) -> T:
    """An instance of ``cls`` from those ``values`` that it has fields for (the others are ignored)."""
    names = field_names(cls)
    return cls(**{name: value for name, value in values.items() if name in names})


def item_type(cls: type, name: str) -> type[Any]:
    """The class of field ``name`` of ``cls``: the element class for a tuple field, the entity class otherwise
    (``Optional`` unwrapped). Raises KeyError when ``cls`` has no such field."""
    return _item_type(cls, name)


def response_type(api_key: int, version: int) -> type[Any]:
    """kio's response class for an API key and version."""
    return load_response_schema(api_key, version)


@functools.cache
def _field_names(cls: Any) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))


@functools.cache
def _item_type(cls: Any, name: str) -> type[Any]:
    kind = typing.get_type_hints(cls)[name]
    while typing.get_origin(kind) is not None:  # tuple[X, ...], X | None
        kind = next(a for a in typing.get_args(kind) if a is not type(None) and a is not Ellipsis)
    if not isinstance(kind, type):
        raise TypeError(f"{cls.__name__}.{name} is not an entity or a tuple of entities")
    return kind
