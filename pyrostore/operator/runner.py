"""Start the operator: kopf in standalone mode (one replica), watching some namespaces or the whole cluster."""

from __future__ import annotations

from pyrostore.logs import configure as configure_logs


def run(namespaces: list[str], liveness: str | None = None, log_format: str = "auto") -> None:
    """Run the handlers until SIGTERM; ``namespaces`` empty means cluster-wide."""
    import kopf

    configure_logs(log_format)
    import pyrostore.operator.handlers  # noqa: F401  (registers the handlers)

    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness,
    )
