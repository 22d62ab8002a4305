"""Start the operator: kopf in standalone mode (one replica), watching some namespaces or the whole cluster."""

from __future__ import annotations

import logging

from pyrostore.logs import LogFormat
from pyrostore.logs import configure as configure_logs


def _drop_kopf_settings(record: logging.LogRecord) -> bool:
    """kopf attaches its whole settings object to each record: noise in a JSON log line."""
    record.__dict__.pop("settings", None)
    return True


def run(namespaces: list[str], liveness: str | None = None, log_format: LogFormat = LogFormat.AUTO) -> None:
    """Run the handlers until SIGTERM; ``namespaces`` empty means cluster-wide."""
    import kopf

    configure_logs(log_format)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_drop_kopf_settings)
    from pyrostore.operator import handlers  # noqa: F401  (registers the handlers)
    from pyrostore.operator.webhook_server import WebhookSettings

    if WebhookSettings.from_env().enabled:
        from pyrostore.operator import webhook  # noqa: F401  (registers the admission handler and its server)

    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness,
    )
