"""What the Wyoming tests share: where things are, a `hearth serve` with
`[wyoming]` enabled in the background, Wyoming requests made with the
`wyoming` package's own AsyncTcpClient, word error rates and PCM
decoding."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from wyoming.client import AsyncTcpClient
from wyoming.event import Event

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from wer import normalize, wer  # noqa: E402  (tests/wer.py, shared with bench/stt.sh)

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target").resolve()
BUILD = TARGET / os.environ.get("HEARTH_PROFILE", "debug")
HEARTH = BUILD / "hearth"
CACHE = Path(os.environ.get("HEARTH_CACHE") or Path.home() / ".cache/hearth")
JFK = CACHE / "samples/jfk.wav"
JFK_TEXT = (
    "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)
TEST_TIMEOUT = int(os.environ.get("HEARTH_WYOMING_TEST_TIMEOUT", "300"))
# Every wait for one event from the server.
READ_TIMEOUT = 60.0

for _var in ("NO_PROXY", "no_proxy"):
    os.environ[_var] = ",".join(filter(None, ["127.0.0.1,localhost", os.environ.get(_var)]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """(status, body); status 0 when nothing answers."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


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


def scripted_config(directory: Path, wyoming: str, tts: str = "", stt: str = "", host: str = "") -> Path:
    """A plugins.toml with the scripted test engines (plugins/scripted)."""
    path = directory / "plugins.toml"
    path.write_text(
        f"[host]\nplugin_dir = {json.dumps(str(BUILD))}\nshutdown_timeout = \"3s\"\n{host}\n"
        f"[tts]\nplugin = \"scripted-tts\"\n[tts.config]\n{tts}\n"
        f"[stt]\nplugin = \"scripted-stt\"\n[stt.config]\n{stt}\n"
        f"[chat]\nplugin = \"scripted-chat\"\nrequired = false\nenabled = false\n"
        f"[wyoming]\n{wyoming}\n"
    )
    return path


class Server:
    """`hearth serve --config CONFIG --listen 127.0.0.1:PORT` in the
    background, its Wyoming listener on `wyoming_port` (the config's
    `[wyoming] listen` is set to it)."""

    def __init__(self, config: Path, name: str = "hearth", prefix: list[str] | None = None):
        if not HEARTH.exists():
            pytest.fail(f"{HEARTH} is not built: run `cargo build --workspace` first", pytrace=False)
        self.port = free_port()
        self.wyoming_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        text = config.read_text()
        assert "[wyoming]" in text, "the config needs a [wyoming] section"
        config.write_text(text.replace("[wyoming]\n", f"[wyoming]\nlisten = \"127.0.0.1:{self.wyoming_port}\"\n", 1))
        self.config = config
        self.log_dir = Path(tempfile.mkdtemp(prefix=f"hearth-wyoming-{name}-"))
        self.log_path = self.log_dir / "server.log"
        self._log = open(self.log_path, "wb")
        env = {**os.environ, "HEARTH_LOG": os.environ.get("HEARTH_LOG", "info")}
        command = [str(HEARTH), "serve", "--config", str(config), "--listen", f"127.0.0.1:{self.port}"]
        self.process = subprocess.Popen(
            (prefix or []) + command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:]) or "(no log)"

    def check_alive(self, what: str) -> None:
        if self.process.poll() is not None:
            pytest.fail(
                f"hearth serve exited with {self.process.returncode} while {what}; log tail:\n{self.log_tail()}",
                pytrace=False,
            )

    def wait_live(self, timeout: float = 20.0) -> None:
        """Until /livez answers and the Wyoming port accepts (both bind
        before anything loads)."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive("starting")
            if http("GET", f"{self.url}/livez", timeout=2)[0] == 200:
                try:
                    socket.create_connection(("127.0.0.1", self.wyoming_port), timeout=2).close()
                    return
                except OSError:
                    pass
            if time.monotonic() > deadline:
                pytest.fail(f"hearth did not come up within {timeout} s; log:\n{self.log_tail()}", pytrace=False)
            time.sleep(0.05)

    def wait_ready(self, services: tuple[str, ...], timeout: float = 120.0) -> dict:
        """Until every service in `services` is ready."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            self.check_alive("loading")
            status, body = http("GET", f"{self.url}/api/ready", timeout=5)
            if status in (200, 503) and body:
                last = json.loads(body)
                if all(last["services"].get(s, {}).get("ready") for s in services):
                    return last
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{services} not ready within {timeout} s; last /api/ready: {last}; log:\n{self.log_tail()}",
                    pytrace=False,
                )
            time.sleep(0.1)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        if os.environ.get("HEARTH_WYOMING_KEEP_LOGS") == "1":
            print(f"server log kept: {self.log_path}")
        else:
            shutil.rmtree(self.log_dir, ignore_errors=True)
        return self.process.returncode

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
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0


def types(events: list[Event | None]) -> list[str]:
    return [e.type if e is not None else "(closed)" for e in events]
