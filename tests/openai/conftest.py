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

Environment: HEARTH_OPENAI_KEEP_LOGS=1 keeps the server logs;
CARGO_TARGET_DIR, HEARTH_PROFILE, HEARTH_CACHE and HEARTH_LOG as in
tests/hearth_testing.py, the helpers this suite shares with tests/wyoming
(this file puts tests/ on sys.path for it and for tests/wer.py).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import openai
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hearth_testing import (  # noqa: E402
    JFK, ROOT, WAV_44K_STEREO, alarm_fixture, ffmpeg_convert, port_in_use, require_ffmpeg, require_models,
)
from openai_support import CHAT_PORT, VOICE_JSON, Server  # noqa: E402

# ---------------------------------------------------------------------------
# Fixtures.

_alarm = alarm_fixture("HEARTH_OPENAI_TEST_TIMEOUT")


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
    require_models(ROOT / "plugins.toml", VOICE_JSON, JFK)
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
    require_ffmpeg()
    out = tmp_path_factory.mktemp("clips")
    made = {"wav": JFK}
    recipes = {
        "mp3": ("jfk.mp3", ["-c:a", "libmp3lame", "-b:a", "64k"]),
        "flac": ("jfk.flac", ["-c:a", "flac"]),
        "ogg-opus": ("jfk.opus.ogg", ["-c:a", "libopus", "-b:a", "32k", "-f", "ogg"]),
        "webm-opus": ("jfk.webm", ["-c:a", "libopus", "-b:a", "32k"]),
        "ogg-vorbis": ("jfk.ogg", ["-c:a", "libvorbis", "-q:a", "4"]),
        "m4a-aac": ("jfk.m4a", ["-c:a", "aac", "-b:a", "64k"]),
        "wav-44k-stereo": ("jfk-44k-stereo.wav", WAV_44K_STEREO),
    }
    for key, (name, args) in recipes.items():
        made[key] = ffmpeg_convert(JFK, out / name, args)
    return made


def pytest_collection_modifyitems(session, config, items):
    """The scripted-engine tests first: their servers are stopped before the
    real one starts, so the two kinds never run at once."""
    items.sort(key=lambda item: 0 if item.module.__name__.endswith("test_scripted") else 1)
