"""What the Wyoming tests share beyond tests/hearth_testing.py: a `hearth
serve` with `[wyoming]` enabled on a second free port, its real-engine
config, Wyoming requests made with the `wyoming` package's own
AsyncTcpClient, and the PCM of its answers."""

from __future__ import annotations

import asyncio
import json
import socket
import tomllib
from pathlib import Path

import numpy as np
from wyoming.client import AsyncTcpClient
from wyoming.event import Event

from hearth_testing import ROOT, HearthServer, free_port, s16le

# Every wait for one event from the server.
READ_TIMEOUT = 60.0


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML here")


def real_config(directory: Path, wyoming: str, services: tuple[str, ...] = ("tts", "stt")) -> Path:
    """plugins.toml's real engines for `services` (paths made absolute; chat
    left out — Wyoming does not serve it, and its llama-server's fixed port
    stays free for other suites), with a `[wyoming]` section."""
    default = tomllib.loads((ROOT / "plugins.toml").read_text())
    lines = ["[host]", 'shutdown_timeout = "5s"']
    for name in services:
        section = default[name]
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in section.items() if k != "config"]
        lines.append(f"[{name}.config]")
        for key, value in section.get("config", {}).items():
            if isinstance(value, str) and (ROOT / value).exists():
                value = str((ROOT / value).resolve())
            lines.append(f"{key} = {toml_value(value)}")
    if "chat" not in services:
        lines += ["[chat]", 'plugin = "chat-http"', "enabled = false", "required = false"]
    lines += ["[wyoming]", wyoming]
    path = directory / "plugins.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Server(HearthServer):
    """`hearth serve` for these tests, its Wyoming listener on
    `wyoming_port` (the config's `[wyoming] listen` is set to it), logs at
    `info` (a test reads them); live once both ports accept."""

    SUITE = "wyoming"
    LOG_LEVEL = "info"

    def __init__(self, config: Path, name: str = "hearth", prefix: list[str] | None = None):
        self.wyoming_port = free_port()
        text = config.read_text()
        assert "[wyoming]" in text, "the config needs a [wyoming] section"
        config.write_text(text.replace("[wyoming]\n", f"[wyoming]\nlisten = \"127.0.0.1:{self.wyoming_port}\"\n", 1))
        super().__init__(config, name=name, prefix=prefix)

    def live(self) -> bool:
        """/livez answers and the Wyoming port accepts (both bind before
        anything loads)."""
        if not super().live():
            return False
        try:
            socket.create_connection(("127.0.0.1", self.wyoming_port), timeout=2).close()
            return True
        except OSError:
            return False

    def client(self) -> AsyncTcpClient:
        return AsyncTcpClient("127.0.0.1", self.wyoming_port, connect_timeout=10, read_timeout=READ_TIMEOUT)


async def exchange(server: Server, events: list[Event], until: tuple[str, ...]) -> list[Event]:
    """Sends `events` on a new connection, then reads until an event whose
    type is in `until`, an `error`, or the end of the connection (then the
    last item is None)."""
    received: list[Event | None] = []
    async with server.client() as client:
        for event in events:
            await client.write_event(event)
        while True:
            event = await client.read_event()
            received.append(event)
            if event is None or event.type in until or event.type == "error":
                return received


def run(coroutine):
    return asyncio.run(coroutine)


def pcm(events: list[Event]) -> np.ndarray:
    """The 16-bit mono audio of the `audio-chunk`s in `events`, as floats."""
    chunks = [e for e in events if e is not None and e.type == "audio-chunk"]
    for chunk in chunks:
        assert chunk.data["width"] == 2 and chunk.data["channels"] == 1, chunk.data
    data = b"".join(chunk.payload or b"" for chunk in chunks)
    return s16le(data)


def types(events: list[Event | None]) -> list[str]:
    return [e.type if e is not None else "(closed)" for e in events]
