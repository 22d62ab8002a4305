"""The operator's own settings, read from its environment (the Helm chart sets them)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

GROUP = "pyrostore.io"
VERSION = "v1alpha1"
MANAGER = "pyrostore-operator"  # field manager, and the managed-by label value


@dataclass(frozen=True)
class OperatorSettings:
    """What the operator puts into the workloads it makes, and how often it refreshes status."""

    image: str = "ghcr.io/pyrostore/pyrostore:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    status_interval: float = 30.0  # seconds between status refreshes of each resource
    at_risk_fraction: float = 0.8  # AtRisk once unarchived records are older than this share of retention.ms
    service_account: str = ""  # the archiver's and replay's ServiceAccount ("" = the namespace's default)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        """Settings from ``PYROSTORE_*`` environment variables, defaults for the rest."""
        if env is None:
            env = os.environ
        defaults = cls()
        return cls(
            image=env.get("PYROSTORE_IMAGE", defaults.image),
            image_pull_policy=env.get("PYROSTORE_IMAGE_PULL_POLICY", defaults.image_pull_policy),
            status_interval=float(env.get("PYROSTORE_STATUS_INTERVAL", defaults.status_interval)),
            at_risk_fraction=float(env.get("PYROSTORE_AT_RISK_FRACTION", defaults.at_risk_fraction)),
            service_account=env.get("PYROSTORE_WORKLOAD_SERVICE_ACCOUNT", defaults.service_account),
        )
