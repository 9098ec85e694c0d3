"""Fixtures of the Wyoming tests: `target/debug/hearth serve` with
`[wyoming]` enabled on free loopback ports, driven by the `wyoming` Python
package's own client (AsyncTcpClient) — the client Home Assistant uses.

Two kinds of server:

- the real engines of plugins.toml (Piper, Whisper; chat left out, so no
  fixed port is taken), one per session (`real`), started when the first
  test needs it;
- the scripted test engines (plugins/scripted: slow loads on request,
  canned output), one per test, in `test_readiness.py`.

Every wait is bounded (each read has a timeout, each test an alarm:
`HEARTH_WYOMING_TEST_TIMEOUT`, default 300 s), and every server is stopped
with SIGTERM (SIGKILL after a bounded wait), also when a test fails. Needs
the workspace built (`cargo build --workspace`: the binary and the plugin
libraries in target/debug), the models fetched (`scripts/fetch-models.sh`)
and ffmpeg.

Environment: HEARTH_WYOMING_KEEP_LOGS=1 keeps the server logs;
CARGO_TARGET_DIR, HEARTH_PROFILE, HEARTH_CACHE and HEARTH_LOG as in
tests/hearth_testing.py, the helpers this suite shares with tests/openai
(this file puts tests/ on sys.path for it and for tests/wer.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hearth_testing import (  # noqa: E402
    JFK, ROOT, WAV_44K_STEREO, alarm_fixture, ffmpeg_convert, require_ffmpeg, require_models,
)
from wyoming_support import Server, real_config  # noqa: E402

_alarm = alarm_fixture("HEARTH_WYOMING_TEST_TIMEOUT")


@pytest.fixture(scope="session")
def real(tmp_path_factory):
    """`hearth serve` with plugins.toml's real TTS and STT engines, both
    ready, and Wyoming enabled."""
    require_models(ROOT / "plugins.toml", JFK)
    config = real_config(tmp_path_factory.mktemp("real"), "enabled = true")
    server = Server(config, name="real")
    try:
        server.wait_live()
        server.wait_ready(("tts", "stt"), timeout=180.0)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def jfk_44k_stereo(tmp_path_factory):
    """The JFK clip at 44.1 kHz, stereo, 16-bit (made with ffmpeg)."""
    require_ffmpeg()
    return ffmpeg_convert(JFK, tmp_path_factory.mktemp("clips") / "jfk-44k-stereo.wav", WAV_44K_STEREO)
