"""What the Python test suites (tests/openai, tests/wyoming) share: where
the binary, the models and the JFK clip are, `hearth serve` in the
background on a free loopback port (started, waited for until live and
until ready, stopped with SIGTERM), a per-test SIGALRM alarm, a scripted
plugins.toml, plain HTTP requests, ffmpeg conversions and 16-bit PCM.

Each suite's conftest.py puts this folder (tests/) on sys.path, the way it
finds tests/wer.py, the word error rate both suites and bench/stt.sh share.
Each suite's support module subclasses `HearthServer` with its own client
(the `openai` SDK, the `wyoming` package).

Environment: CARGO_TARGET_DIR, HEARTH_PROFILE (default debug), HEARTH_CACHE
(default ~/.cache/hearth), HEARTH_LOG (default the suite's LOG_LEVEL).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target").resolve()
BUILD = TARGET / os.environ.get("HEARTH_PROFILE", "debug")
HEARTH = BUILD / "hearth"
CACHE = Path(os.environ.get("HEARTH_CACHE") or Path.home() / ".cache/hearth")
JFK = CACHE / "samples/jfk.wav"
JFK_TEXT = (
    "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)
# ffmpeg's arguments for the JFK clip as a 44.1 kHz stereo 16-bit WAV.
WAV_44K_STEREO = ["-ar", "44100", "-ac", "2", "-c:a", "pcm_s16le"]

# Every request goes to this machine's loopback, never through a proxy.
for _var in ("NO_PROXY", "no_proxy"):
    os.environ[_var] = ",".join(filter(None, ["127.0.0.1,localhost", os.environ.get(_var)]))


# ---------------------------------------------------------------------------
# Ports and HTTP.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def http_request(method: str, url: str, timeout: float = 10.0) -> tuple[int, bytes, dict]:
    """(status, body, headers) of a request without a body; status 0 when
    nothing answers."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)
    except OSError:
        return 0, b"", {}


# ---------------------------------------------------------------------------
# Fixtures' building blocks.


def alarm_fixture(variable: str, default: int = 300):
    """An autouse fixture for a conftest.py (`_alarm = alarm_fixture(...)`):
    no test hangs, each gets the seconds in the environment variable
    `variable` (`default` without it), then fails with a TimeoutError."""
    seconds = int(os.environ.get(variable, str(default)))

    @pytest.fixture(autouse=True)
    def alarm():
        def expired(signum, frame):
            raise TimeoutError(f"the test took longer than {seconds} s ({variable})")

        previous = signal.signal(signal.SIGALRM, expired)
        signal.alarm(seconds)
        try:
            yield
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)

    return alarm


def require_models(*paths: Path) -> None:
    """Fails the test (no traceback) unless every file of `paths` exists."""
    for path in paths:
        if not path.exists():
            pytest.fail(f"{path} is missing: run scripts/fetch-models.sh", pytrace=False)


def require_ffmpeg() -> None:
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is not installed (scripts/install-deps.sh)", pytrace=False)


def ffmpeg_convert(source: Path, destination: Path, args: list[str]) -> Path:
    """`source` converted by ffmpeg with the output options `args`."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(source), *args, str(destination)],
        check=True,
        timeout=60,
    )
    return destination


def scripted_config(
    directory: Path,
    tts: str = "",
    stt: str = "",
    chat: str | None = "",
    host: str = "",
    wyoming: str | None = None,
) -> Path:
    """A plugins.toml with the scripted test engines (plugins/scripted*) and
    these config tables; `chat=None`: the chat service disabled and not
    required; `wyoming`: the body of a `[wyoming]` section."""
    if chat is None:
        chat_section = "[chat]\nplugin = \"scripted-chat\"\nrequired = false\nenabled = false\n"
    else:
        chat_section = f"[chat]\nplugin = \"scripted-chat\"\n[chat.config]\n{chat}\n"
    path = directory / "plugins.toml"
    path.write_text(
        f"[host]\nplugin_dir = {json.dumps(str(BUILD))}\nshutdown_timeout = \"3s\"\n{host}\n"
        f"[tts]\nplugin = \"scripted-tts\"\n[tts.config]\n{tts}\n"
        f"[stt]\nplugin = \"scripted-stt\"\n[stt.config]\n{stt}\n"
        + chat_section
        + (f"[wyoming]\n{wyoming}\n" if wyoming is not None else "")
    )
    return path


# ---------------------------------------------------------------------------
# Audio.


def s16le(data: bytes) -> np.ndarray:
    """16-bit little-endian PCM as floats in [-1, 1)."""
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0


# ---------------------------------------------------------------------------
# The server.


class HearthServer:
    """`hearth serve --config CONFIG --listen 127.0.0.1:PORT` in the
    background, its output in a log file. A suite subclasses it and sets:

    - SUITE: names the log folder (hearth-SUITE-NAME-*) and the variable
      HEARTH_<SUITE>_KEEP_LOGS=1 that keeps it;
    - LOG_LEVEL: HEARTH_LOG when the environment does not set it;
    - WAIT_FOR_READYZ: whether `wait_ready` also waits for /readyz 200."""

    SUITE = "tests"
    LOG_LEVEL = "info"
    WAIT_FOR_READYZ = False

    def __init__(self, config: Path, name: str = "hearth", env: dict | None = None, prefix: list[str] | None = None):
        """`env` is added to the environment; `prefix` goes before the
        command (e.g. `unshare --net ...`)."""
        if not HEARTH.exists():
            pytest.fail(f"{HEARTH} is not built: run `cargo build --workspace` first", pytrace=False)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = config
        self.log_dir = Path(tempfile.mkdtemp(prefix=f"hearth-{self.SUITE}-{name}-"))
        self.log_path = self.log_dir / "server.log"
        self._log = open(self.log_path, "wb")
        full_env = {**os.environ, "HEARTH_LOG": os.environ.get("HEARTH_LOG", self.LOG_LEVEL), **(env or {})}
        command = [str(HEARTH), "serve", "--config", str(config), "--listen", f"127.0.0.1:{self.port}"]
        self.process = subprocess.Popen(
            (prefix or []) + command,
            cwd=ROOT,
            env=full_env,
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
        """Fails the test, with the log's tail, if the server has exited."""
        if self.process.poll() is not None:
            pytest.fail(
                f"hearth serve exited with {self.process.returncode} while {what}; log tail:\n{self.log_tail()}",
                pytrace=False,
            )

    def live(self) -> bool:
        """/livez answers (the server binds before it loads)."""
        return http_request("GET", f"{self.url}/livez", timeout=2)[0] == 200

    def wait_live(self, timeout: float = 20.0) -> None:
        """Until `live()`."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive("starting")
            if self.live():
                return
            if time.monotonic() > deadline:
                pytest.fail(f"hearth did not come up within {timeout} s; log:\n{self.log_tail()}", pytrace=False)
            time.sleep(0.05)

    def wait_ready(self, services: tuple[str, ...] = ("tts", "stt", "chat"), timeout: float = 120.0) -> dict:
        """Until /api/ready says every service in `services` is ready (and
        /readyz is 200, if WAIT_FOR_READYZ: READY does not wait for an
        optional service such as STT); /api/ready's answer."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            self.check_alive("loading")
            if not self.WAIT_FOR_READYZ or http_request("GET", f"{self.url}/readyz", timeout=2)[0] == 200:
                status, body, _ = http_request("GET", f"{self.url}/api/ready", timeout=5)
                if status in (200, 503) and body:
                    last = json.loads(body)
                    if all(last["services"].get(s, {}).get("ready") for s in services):
                        return last
            if time.monotonic() > deadline:
                pytest.fail(
                    f"hearth was not ready ({', '.join(services)}) within {timeout} s; last /api/ready: {last}; "
                    f"log:\n{self.log_tail()}",
                    pytrace=False,
                )
            time.sleep(0.1)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; the exit code. The log
        folder goes unless HEARTH_<SUITE>_KEEP_LOGS=1."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        if os.environ.get(f"HEARTH_{self.SUITE.upper()}_KEEP_LOGS") == "1":
            print(f"server log kept: {self.log_path}")
        else:
            shutil.rmtree(self.log_dir, ignore_errors=True)
        return self.process.returncode
