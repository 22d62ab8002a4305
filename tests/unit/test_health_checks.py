"""The Argo CD health scripts as the docs show them, and the kstatus rules the operator's tests restate."""

from __future__ import annotations

import re

import yaml

from pyrostore.operator.conditions import (
    ArchiveObservation,
    PartitionState,
    archive_conditions,
    kstatus,
    replay_conditions,
    stamp,
)
from tests.health_helpers import SCRIPTS
from tests.operator_helpers import ROOT


def _argocd_cm_in_docs() -> dict[str, str]:
    text = (ROOT / "docs" / "operator.md").read_text()
    section = text.split("\n## Argo CD health check\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```yaml\n(.*?)^```$", section, flags=re.M | re.S)
    assert len(blocks) == 1, "the Argo CD section shows one argocd-cm snippet"
    return yaml.safe_load(blocks[0])["data"]


def test_the_docs_show_the_chart_s_scripts_exactly():
    shown = _argocd_cm_in_docs()
    expected = {
        f"resource.customizations.health.{kind.replace('/', '_')}": path.read_text() for kind, path in SCRIPTS.items()
    }
    assert shown == expected


def _body(conditions: list[dict], generation: int = 1, observed: int | None = 1) -> dict:
    status = {"conditions": stamp(conditions, None, observed or 1)}
    if observed is not None:
        status["observedGeneration"] = observed
    return {"metadata": {"name": "x", "generation": generation}, "status": status}


def test_kstatus_falls_back_to_the_ready_condition():
    starting = archive_conditions(False, ArchiveObservation([PartitionState(0, None, 0, 10)]))
    ready_false = [{**c, "status": "False"} if c["type"] == "Reconciling" else c for c in starting]
    assert kstatus(_body(ready_false)) == "InProgress"  # Ready=False, neither Reconciling nor Stalled True
    assert kstatus(_body([{**starting[0], "status": "Unknown"}])) == "InProgress"
    assert kstatus(_body([c for c in starting if c["type"] != "Ready"])) == "InProgress"  # Reconciling=True
    assert kstatus(_body([c for c in ready_false if c["type"] != "Ready"])) == "Current"
    assert kstatus(_body(archive_conditions(True, ArchiveObservation([])))) == "Current"  # suspended: as asked
    assert kstatus({"metadata": {"name": "x", "generation": 1}}) == "Current"  # nothing to read yet


def test_kstatus_takes_the_first_condition_that_is_true():
    failed = replay_conditions("Failed", "boom")
    stalled, reconciling = next(c for c in failed if c["type"] == "Stalled"), {**failed[1], "status": "True"}
    assert kstatus(_body([stalled, reconciling])) == "Failed"
    assert kstatus(_body([reconciling, stalled])) == "InProgress"
    assert kstatus(_body(failed, generation=2, observed=1)) == "InProgress"
    assert kstatus(_body(failed, observed=None)) == "Failed"
