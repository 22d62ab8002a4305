"""Classic consumer groups for ``pyrostore serve``: a coordinator, its state machine and durable offsets.

``model`` holds the values, ``group`` the state machine of one group (Kafka's classic group states, timers and
replies injected), ``timers`` the asyncio timers it runs on, ``offsets`` the committed offsets kept in the
archive's store, and ``coordinator`` the registry the group APIs (``serve/apis/``) talk to.
"""

from __future__ import annotations

from pyrostore.serve.groups.coordinator import Coordinator
from pyrostore.serve.groups.model import GroupSettings
from pyrostore.serve.groups.offsets import GroupOffsets

__all__ = ["Coordinator", "GroupOffsets", "GroupSettings"]
