"""Which API versions the server advertises: what each handler answers and kio can read and write."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from kio.schema.index import api_key_map, schema_name_map


def library_versions(api_key: int) -> tuple[int, int] | None:
    """The lowest and highest version of an API that kio has types for, or None for an API it does not know."""
    name = api_key_map.get(api_key)
    versions = sorted(schema_name_map.get(name, {})) if name else []
    return (versions[0], versions[-1]) if versions else None


def advertised(
    declared: Iterable[tuple[int, tuple[int, int]]],
    library: Callable[[int], tuple[int, int] | None] = library_versions,
) -> dict[int, tuple[int, int]]:
    """API key: (min, max) for every declared API, narrowed to the versions ``library`` knows; an API with no
    version left is not advertised."""
    table = {}
    for key, (low, high) in declared:
        known = library(key)
        if known is None:
            continue
        low, high = max(low, known[0]), min(high, known[1])
        if low <= high:
            table[key] = (low, high)
    return dict(sorted(table.items()))


def api_versions_answer(requested: int, supported: Mapping[int, tuple[int, int]], api_key: int) -> int:
    """The version an ApiVersions request is answered in: its own when supported, else 0 (with
    UNSUPPORTED_VERSION), the format every client can read before it knows what the broker speaks."""
    low, high = supported[api_key]
    return requested if low <= requested <= high else 0
