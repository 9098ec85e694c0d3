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

Environment: CARGO_TARGET_DIR, HEARTH_PROFILE (default debug), HEARTH_CACHE
(default ~/.cache/hearth), HEARTH_WYOMING_KEEP_LOGS=1 to keep server logs.
"""

from __future__ import annotations

import shutil
import signal
import subprocess

import pytest

from wyoming_support import JFK, ROOT, TEST_TIMEOUT, Server, real_config


@pytest.fixture(autouse=True)
def _alarm():
    """No test hangs: each gets TEST_TIMEOUT seconds, then fails."""

    def expired(signum, frame):
        raise TimeoutError(f"the test took longer than {TEST_TIMEOUT} s (HEARTH_WYOMING_TEST_TIMEOUT)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="session")
def real(tmp_path_factory):
    """`hearth serve` with plugins.toml's real TTS and STT engines, both
    ready, and Wyoming enabled."""
    for path in (ROOT / "plugins.toml", JFK):
        if not path.exists():
            pytest.fail(f"{path} is missing: run scripts/fetch-models.sh", pytrace=False)
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
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is not installed (scripts/install-deps.sh)", pytrace=False)
    path = tmp_path_factory.mktemp("clips") / "jfk-44k-stereo.wav"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(JFK), "-ar", "44100", "-ac", "2",
         "-c:a", "pcm_s16le", str(path)],
        check=True,
        timeout=60,
    )
    return path
