"""Helpers every backend shares: checking and joining keys, and telling a retried create from a lost race."""

from __future__ import annotations

import uuid

# Stored as user metadata on create-only writes. When a create is retried after a first attempt that did
# land, the retry fails its precondition; finding our own token on the stored object proves we won.
CREATE_TOKEN = "pyrostore-create-token"


def check_key(key: str) -> str:
    """Return ``key`` if it is a valid object key, else raise ValueError.

    A key is a ``/``-separated relative path: not empty, no empty, ``.`` or ``..`` segment, no NUL. The same
    rule on every backend keeps keys portable and keeps the file store inside its root.
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"invalid object key {key!r}: must be a non-empty string")
    if "\x00" in key or any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"invalid object key {key!r}: must be a relative path without empty, '.' or '..' parts")
    return key


def join_key(root: str, key: str) -> str:
    """Join a store's root prefix (``""`` or ``a/b``, no slashes at the ends) and a key or key prefix."""
    return f"{root}/{key}" if root else key


def new_create_token() -> str:
    """A fresh token identifying one create call."""
    return uuid.uuid4().hex


def created_by_us(token: str, stored_metadata: dict[str, str] | None) -> bool:
    """Whether an object found in place after a failed create carries this create call's token."""
    return stored_metadata is not None and stored_metadata.get(CREATE_TOKEN) == token
