"""Toxiproxy, Shopify's TCP fault proxy: the server (built by ``builds``) and a small client for its HTTP API.

A proxy listens on a loopback port and forwards to an upstream; toxics added to it delay, throttle, slice, stall
or reset what passes, per direction. The PyPI clients (``toxiproxy-python``, last released 2019) are
unmaintained, so this one speaks the API over urllib.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e.stack import builds
from e2e.stack.process import Process, free_port, spawn, wait_ready


class ToxiproxyError(RuntimeError):
    """Toxiproxy's API refused a request; the message carries its answer."""


def _call(api: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One API request; the decoded JSON answer (None when empty). Raises ToxiproxyError."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{api}{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            raw = answer.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace").strip()
        raise ToxiproxyError(f"toxiproxy {method} {path}: {exc.code}: {detail}") from None
    return json.loads(raw) if raw.strip() else None


@dataclass
class Proxy:
    """One proxy: clients connect to ``listen`` (``host:port``) instead of ``upstream``."""

    api: str
    name: str
    listen: str
    upstream: str

    def add_toxic(
        self, kind: str, stream: str = "downstream", toxicity: float = 1.0, name: str | None = None, **attributes: int
    ) -> str:
        """Add a toxic of type ``kind`` (latency, bandwidth, slow_close, timeout, reset_peer, slicer,
        limit_data) on ``stream`` (``downstream``: towards the client; ``upstream``: towards the server) to a
        ``toxicity`` share of connections; return its name."""
        name = name or f"{kind}_{stream}"
        body = {"name": name, "type": kind, "stream": stream, "toxicity": toxicity, "attributes": attributes}
        _call(self.api, "POST", f"/proxies/{self.name}/toxics", body)
        return name

    def latency(self, ms: int, jitter_ms: int = 0, stream: str = "downstream") -> str:
        """Delay all data by ``ms`` (± ``jitter_ms``) milliseconds."""
        return self.add_toxic("latency", stream, latency=ms, jitter=jitter_ms)

    def bandwidth(self, kb_per_second: int, stream: str = "downstream") -> str:
        """Limit throughput to ``kb_per_second`` KB/s."""
        return self.add_toxic("bandwidth", stream, rate=kb_per_second)

    def timeout(self, ms: int = 0, stream: str = "downstream") -> str:
        """Stop all data and close the connection after ``ms`` (0: never close, hold until removed). A close from
        the other side still passes: downstream, a server that closes after its (dropped) answer ends the link."""
        return self.add_toxic("timeout", stream, timeout=ms)

    def reset_peer(self, after_ms: int = 0, stream: str = "downstream") -> str:
        """Reset connections (TCP RST) after ``after_ms``; new connections too while the toxic stays."""
        return self.add_toxic("reset_peer", stream, timeout=after_ms)

    def slicer(self, average_size: int, size_variation: int = 0, delay_us: int = 0, stream: str = "downstream") -> str:
        """Cut data into pieces of about ``average_size`` bytes, ``delay_us`` microseconds apart."""
        return self.add_toxic(
            "slicer", stream, average_size=average_size, size_variation=size_variation, delay=delay_us
        )

    def remove_toxic(self, name: str) -> None:
        """Remove one toxic by name."""
        _call(self.api, "DELETE", f"/proxies/{self.name}/toxics/{name}")

    def toxics(self) -> list[dict[str, Any]]:
        """The toxics in place, as the API describes them."""
        return list(_call(self.api, "GET", f"/proxies/{self.name}/toxics") or [])

    def clear(self) -> None:
        """Remove every toxic."""
        for toxic in self.toxics():
            self.remove_toxic(toxic["name"])

    @contextmanager
    def toxic(self, kind: str, stream: str = "downstream", **attributes: int) -> Iterator[str]:
        """A toxic in place for the ``with`` block."""
        name = self.add_toxic(kind, stream, 1.0, None, **attributes)
        try:
            yield name
        finally:
            self.remove_toxic(name)

    def enabled(self, on: bool) -> None:
        """Enable or disable the proxy (disabled: it closes its connections and refuses new ones)."""
        _call(self.api, "POST", f"/proxies/{self.name}", {"enabled": on})

    def delete(self) -> None:
        """Remove the proxy; its port closes."""
        _call(self.api, "DELETE", f"/proxies/{self.name}")


@dataclass
class ToxiproxyServer:
    """A running Toxiproxy server: its API's URL and process."""

    api: str
    process: Process

    def proxy(self, name: str, upstream: str, listen: str = "127.0.0.1:0") -> Proxy:
        """Create a proxy to ``upstream`` (``host:port``) listening on ``listen`` (port 0: a free one)."""
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": True}
        created = _call(self.api, "POST", "/proxies", body)
        return Proxy(self.api, created["name"], created["listen"], created["upstream"])

    def existing(self, name: str) -> Proxy | None:
        """The proxy called ``name``, or None if there is none."""
        try:
            found = _call(self.api, "GET", f"/proxies/{name}")
        except ToxiproxyError as exc:
            if ": 404:" in str(exc):
                return None
            raise
        return Proxy(self.api, found["name"], found["listen"], found["upstream"])

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        _call(self.api, "POST", "/reset")


def start(workdir: Path) -> ToxiproxyServer:
    """Start toxiproxy-server with its API on a free loopback port; return once the API answers."""
    binary = builds.toxiproxy()
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [str(binary), "-host", "127.0.0.1", "-port", str(port), "-seed", "2026"]
    proc = spawn("toxiproxy", cmd, workdir / "toxiproxy.log", env={"LOG_LEVEL": "warn"})  # else it traces each link
    api = f"http://127.0.0.1:{port}"
    wait_ready(proc, lambda: urllib.request.urlopen(f"{api}/version", timeout=2).status == 200)
    return ToxiproxyServer(api, proc)
