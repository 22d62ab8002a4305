"""What Argo CD and kstatus should conclude about the operator's resources, and the check of real objects.

:data:`EXPECTED` is the table of docs/operator.md ("Flux and kstatus"): per kind and state, Argo CD's health with
the chart's Lua scripts and kstatus's status. :func:`assert_health` runs both tools' own code (see
:mod:`e2e.stack.health`) on objects as the API server returned them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pytest

from e2e.stack import health
from e2e.stack.cache import BuildError
from pyrostore.operator.conditions import kstatus
from tests.operator_helpers import GROUP, ROOT

CHART = ROOT / "charts" / "pyrostore"
SCRIPTS = {f"{GROUP}/{kind}": CHART / "health" / f"{kind.lower()}.lua" for kind in ("TopicArchive", "ReplayJob")}

_STALLED = ("Degraded", "Failed")
# State (see state()) -> (Argo CD health, kstatus status).
EXPECTED: dict[str, dict[str, tuple[str, str]]] = {
    "TopicArchive": {
        "unobserved": ("Progressing", "Current"),  # kstatus cannot tell it from a resource without conditions
        "behind": ("Progressing", "InProgress"),
        "Starting": ("Progressing", "InProgress"),
        "Archiving": ("Healthy", "Current"),
        "AtRisk": ("Degraded", "InProgress"),
        "Suspended": ("Suspended", "Current"),
        "HistoryLost": _STALLED,
        "KafkaUnavailable": _STALLED,
        "TopicNotFound": _STALLED,
        "StorageUnavailable": _STALLED,
        "ConfigurationInvalid": _STALLED,
    },
    "ReplayJob": {
        "unobserved": ("Progressing", "Current"),
        "behind": ("Progressing", "InProgress"),
        "Pending": ("Progressing", "InProgress"),
        "Running": ("Progressing", "InProgress"),
        "Succeeded": ("Healthy", "Current"),
        "Failed": _STALLED,
    },
}


def state(body: Mapping) -> str:
    """The row of :data:`EXPECTED` an object is in: ``unobserved`` before the operator wrote conditions,
    ``behind`` while its generation is not observed, else the TopicArchive's Ready reason or the ReplayJob's phase."""
    status = body.get("status") or {}
    if not status.get("conditions"):
        return "unobserved"
    if status.get("observedGeneration") != body["metadata"]["generation"]:
        return "behind"
    if body["kind"] == "ReplayJob":
        return status["phase"]
    return next(c["reason"] for c in status["conditions"] if c["type"] == "Ready")


def assert_health(bodies: Iterable[Mapping]) -> set[tuple[str, str]]:
    """Assert Argo CD's and kstatus's verdict on each object is its state's row of :data:`EXPECTED`, and that
    ``conditions.kstatus`` agrees with kstatus; return the (kind, state) pairs seen."""
    listed = list(bodies)
    try:
        verdicts = health.evaluate(listed, SCRIPTS)
    except BuildError as exc:
        pytest.fail(f"cannot build the health check program: {exc}", pytrace=False)
    seen = set()
    for body, found in zip(listed, verdicts, strict=True):
        kind, row = body["kind"], state(body)
        assert found.argocd is not None, kind
        got = (found.argocd.status, found.kstatus.status)
        assert got == EXPECTED[kind][row], f"{kind} {row}: {found}\n{body.get('status')}"
        assert kstatus(body) == found.kstatus.status, f"conditions.kstatus differs from kstatus on {kind} {row}"
        seen.add((kind, row))
    return seen
