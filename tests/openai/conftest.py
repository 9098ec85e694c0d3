"""Fixtures of the OpenAI-compatibility tests: `target/debug/hearth serve` on
a free loopback port, driven by the official `openai` Python SDK.

Two kinds of server, never at the same time:

- the real default engines (`plugins.toml`: Piper, Whisper, SmolLM2 on a
  llama-server the chat plugin starts on its fixed port 8089), one per
  session (`real`), started when the first test needs it. Its voice runs
  with `noise_scale = 0` and `noise_w = 0`, so that the same text is the
  same audio every time: with Piper's random noise, one take in a few
  dozen of a round-trip sentence was heard with a second wrong word;
- scripted engines (the test fixture plugins in `plugins/scripted*`), one
  per test or module, in `test_scripted.py`, which runs first (see
  `pytest_collection_modifyitems`), so its servers are gone before the
  real one starts.

Every wait is bounded, every request has a timeout, every test has an
alarm (`HEARTH_OPENAI_TEST_TIMEOUT`, default 300 s), and every server is
stopped with SIGTERM (SIGKILL after a bounded wait) — also when a test
fails. Needs the workspace built (`cargo build --workspace`: the binary and
the plugin libraries in target/debug) and the models fetched
(`scripts/fetch-models.sh`).

Environment: CARGO_TARGET_DIR, HEARTH_PROFILE (default debug), HEARTH_CACHE
(default ~/.cache/hearth), HEARTH_OPENAI_KEEP_LOGS=1 to keep server logs.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import openai
import pytest

from openai_support import (
    CHAT_PORT,
    JFK,
    ROOT,
    TEST_TIMEOUT,
    VOICE_JSON,
    Server,
    port_in_use,
)


# ---------------------------------------------------------------------------
# Fixtures.


@pytest.fixture(autouse=True)
def _alarm():
    """No test hangs: each gets TEST_TIMEOUT seconds, then fails."""

    def expired(signum, frame):
        raise TimeoutError(f"the test took longer than {TEST_TIMEOUT} s (HEARTH_OPENAI_TEST_TIMEOUT)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def deterministic_config(directory: Path) -> Path:
    """plugins.toml, its model paths made absolute, with the voice's noise
    turned off (see the module doc)."""
    text = (ROOT / "plugins.toml").read_text().replace('"models/', f'"{ROOT}/models/')
    if "\n[tts.config]\n" not in text:
        pytest.fail("plugins.toml has no [tts.config] table", pytrace=False)
    text = text.replace("\n[tts.config]\n", "\n[tts.config]\nnoise_scale = 0.0\nnoise_w = 0.0\n", 1)
    path = directory / "plugins.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def real(tmp_path_factory):
    """`hearth serve` with the real default engines of plugins.toml, every
    service ready (STT too)."""
    for path in (ROOT / "plugins.toml", VOICE_JSON, JFK):
        if not path.exists():
            pytest.fail(f"{path} is missing: run scripts/fetch-models.sh", pytrace=False)
    # plugins.toml's llama-server listens on a fixed port: wait for another
    # server's to go away (bounded).
    deadline = time.monotonic() + 60
    while port_in_use(CHAT_PORT):
        if time.monotonic() > deadline:
            pytest.fail(
                f"127.0.0.1:{CHAT_PORT} (plugins.toml's llama-server) is taken by another process for 60 s: "
                "stop the other Hearth first",
                pytrace=False,
            )
        time.sleep(0.5)
    server = Server(deterministic_config(tmp_path_factory.mktemp("real")), name="real")
    try:
        server.wait_live()
        server.wait_ready(timeout=120.0)
        yield server
    finally:
        server.stop()
        # The chat plugin's llama-server goes with the host: leave the port free.
        deadline = time.monotonic() + 15
        while port_in_use(CHAT_PORT) and time.monotonic() < deadline:
            time.sleep(0.2)


@pytest.fixture(scope="session")
def client(real) -> openai.OpenAI:
    return real.client()


@pytest.fixture(scope="session")
def models(client) -> dict:
    """Model id by Hearth service."""
    return {m.model_extra["service"]: m.id for m in client.models.list().data}


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict:
    """The JFK clip and the same clip made with ffmpeg in the formats
    browsers and phones record."""
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is not installed (scripts/install-deps.sh)", pytrace=False)
    out = tmp_path_factory.mktemp("clips")
    made = {"wav": JFK}
    recipes = {
        "mp3": ("jfk.mp3", ["-c:a", "libmp3lame", "-b:a", "64k"]),
        "flac": ("jfk.flac", ["-c:a", "flac"]),
        "ogg-opus": ("jfk.opus.ogg", ["-c:a", "libopus", "-b:a", "32k", "-f", "ogg"]),
        "webm-opus": ("jfk.webm", ["-c:a", "libopus", "-b:a", "32k"]),
        "ogg-vorbis": ("jfk.ogg", ["-c:a", "libvorbis", "-q:a", "4"]),
        "m4a-aac": ("jfk.m4a", ["-c:a", "aac", "-b:a", "64k"]),
        "wav-44k-stereo": ("jfk-44k-stereo.wav", ["-ar", "44100", "-ac", "2", "-c:a", "pcm_s16le"]),
    }
    for key, (name, args) in recipes.items():
        path = out / name
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(JFK), *args, str(path)],
            check=True,
            timeout=60,
        )
        made[key] = path
    return made


def pytest_collection_modifyitems(session, config, items):
    """The scripted-engine tests first: their servers are stopped before the
    real one starts, so the two kinds never run at once."""
    items.sort(key=lambda item: 0 if item.module.__name__.endswith("test_scripted") else 1)
