"""What the OpenAI-compatibility tests share: where things are, a `hearth
serve` in the background, word error rates and audio decoding."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import openai
import pytest

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
VOICE_JSON = ROOT / "models/piper/en_US-joe-medium.onnx.json"
CHAT_PORT = 8089  # plugins.toml's llama-server
TEST_TIMEOUT = int(os.environ.get("HEARTH_OPENAI_TEST_TIMEOUT", "300"))

# Every request goes to this machine's loopback, never through a proxy.
for _var in ("NO_PROXY", "no_proxy"):
    os.environ[_var] = ",".join(filter(None, ["127.0.0.1,localhost", os.environ.get(_var)]))


# ---------------------------------------------------------------------------
# Helpers.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes, dict]:
    """(status, body, headers) of a GET; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)
    except OSError:
        return 0, b"", {}


def voice_sample_rate() -> int:
    return int(json.loads(VOICE_JSON.read_text())["audio"]["sample_rate"])


class Server:
    """`hearth serve --config CONFIG --listen 127.0.0.1:PORT` in the background."""

    def __init__(self, config: Path, env: dict | None = None, name: str = "hearth"):
        if not HEARTH.exists():
            pytest.fail(f"{HEARTH} is not built: run `cargo build --workspace` first", pytrace=False)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = config
        self.log_dir = Path(tempfile.mkdtemp(prefix=f"hearth-openai-{name}-"))
        self.log_path = self.log_dir / "server.log"
        self._log = open(self.log_path, "wb")
        full_env = {**os.environ, "HEARTH_LOG": os.environ.get("HEARTH_LOG", "warn"), **(env or {})}
        self.process = subprocess.Popen(
            [str(HEARTH), "serve", "--config", str(config), "--listen", f"127.0.0.1:{self.port}"],
            cwd=ROOT,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _check_alive(self, what: str) -> None:
        if self.process.poll() is not None:
            pytest.fail(
                f"hearth serve exited with {self.process.returncode} while {what}; log tail:\n{self.log_tail()}",
                pytrace=False,
            )

    def wait_live(self, timeout: float = 20.0) -> None:
        """Until /livez answers (the server binds before it loads)."""
        deadline = time.monotonic() + timeout
        while http_get(f"{self.url}/livez", timeout=2)[0] != 200:
            self._check_alive("starting")
            if time.monotonic() > deadline:
                pytest.fail(f"hearth did not answer /livez within {timeout} s; log:\n{self.log_tail()}", pytrace=False)
            time.sleep(0.05)

    def wait_ready(self, timeout: float = 120.0, services: tuple[str, ...] = ("tts", "stt", "chat")) -> dict:
        """Until /readyz is 200 and every service in `services` is ready
        (READY does not wait for an optional service such as STT)."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            self._check_alive("loading")
            if http_get(f"{self.url}/readyz", timeout=2)[0] == 200:
                status, body, _ = http_get(f"{self.url}/api/ready", timeout=5)
                if status == 200:
                    last = json.loads(body)
                    if all(last["services"].get(s, {}).get("ready") for s in services):
                        return last
            if time.monotonic() > deadline:
                pytest.fail(
                    f"hearth was not ready ({', '.join(services)}) within {timeout} s; last /api/ready: {last}; "
                    f"log:\n{self.log_tail()}",
                    pytrace=False,
                )
            time.sleep(0.2)

    def client(self, api_key: str = "not-used-by-hearth", **kwargs) -> openai.OpenAI:
        kwargs.setdefault("timeout", 120.0)
        kwargs.setdefault("max_retries", 0)
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=api_key, **kwargs)

    def stop(self, timeout: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        if os.environ.get("HEARTH_OPENAI_KEEP_LOGS") == "1":
            print(f"server log kept: {self.log_path}")
        else:
            shutil.rmtree(self.log_dir, ignore_errors=True)


def scripted_config(directory: Path, tts: str = "", stt: str = "", chat: str = "", host: str = "") -> Path:
    """A plugins.toml with the scripted engines and these config tables."""
    path = directory / "plugins.toml"
    path.write_text(
        f"[host]\nplugin_dir = {json.dumps(str(BUILD))}\nshutdown_timeout = \"3s\"\n{host}\n"
        f"[tts]\nplugin = \"scripted-tts\"\n[tts.config]\n{tts}\n"
        f"[stt]\nplugin = \"scripted-stt\"\n[stt.config]\n{stt}\n"
        f"[chat]\nplugin = \"scripted-chat\"\n[chat.config]\n{chat}\n"
    )
    return path




# ---------------------------------------------------------------------------
# Audio.


class Decoded:
    """Decoded audio: mono float samples in [-1, 1] at `rate` Hz, what the
    container declares (`codec`, `declared_rate`, `channels`)."""

    def __init__(self, samples: np.ndarray, rate: int, codec: str, declared_rate: int, channels: int):
        self.samples = samples
        self.rate = rate
        self.codec = codec
        self.declared_rate = declared_rate
        self.channels = channels

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate

    @property
    def rms(self) -> float:
        return float(np.sqrt(np.mean(np.square(self.samples, dtype=np.float64)))) if len(self.samples) else 0.0

    def __repr__(self) -> str:
        return (
            f"Decoded({self.codec}, {self.seconds:.3f} s at {self.rate} Hz, declared {self.declared_rate} Hz, "
            f"{self.channels} ch, rms {self.rms:.4f})"
        )


def ffprobe(path: Path) -> dict:
    """The first audio stream of `path`, as ffprobe sees it."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
         "stream=codec_name,sample_rate,channels", "-of", "json", str(path)],
        check=True, capture_output=True, timeout=60,
    ).stdout
    streams = json.loads(out).get("streams") or []
    assert streams, f"ffprobe found no audio stream in {path}"
    return streams[0]


def ffmpeg_decode(path: Path) -> tuple[np.ndarray, int]:
    """All of `path` decoded by ffmpeg to mono 16-bit at its own rate."""
    rate = int(ffprobe(path)["sample_rate"])
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "s16le", "-acodec", "pcm_s16le",
         "-ac", "1", "-ar", str(rate), "pipe:1"],
        check=True, capture_output=True, timeout=60,
    ).stdout
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0, rate


def opus_head(data: bytes) -> dict:
    """The fields of Ogg Opus's identification header (RFC 7845 §5.1)."""
    at = data.find(b"OpusHead")
    assert at >= 0, "no OpusHead in the stream: not Ogg Opus"
    head = data[at:at + 19]
    return {
        "version": head[8],
        "channels": head[9],
        "pre_skip": int.from_bytes(head[10:12], "little"),
        "input_sample_rate": int.from_bytes(head[12:16], "little"),
    }


def flac_streaminfo(data: bytes) -> dict:
    """The fields of FLAC's STREAMINFO block (the first after `fLaC`)."""
    assert data[:4] == b"fLaC", f"not FLAC: starts with {data[:4]!r}"
    info = int.from_bytes(data[8 + 10:8 + 18], "big")  # rate(20) channels-1(3) bits-1(5) total(36)
    return {
        "sample_rate": info >> 44,
        "channels": ((info >> 41) & 0x7) + 1,
        "bits_per_sample": ((info >> 36) & 0x1F) + 1,
        "total_samples": info & 0xFFFFFFFFF,
    }


def decode_audio(data: bytes, fmt: str, directory: Path, pcm_rate: int | None = None) -> Decoded:
    """Decodes a /v1/audio/speech body of format `fmt`: pcm by hand (raw
    s16le at `pcm_rate`), wav with soundfile, flac, mp3 and opus with ffmpeg
    (and their headers checked by hand or with ffprobe)."""
    if fmt == "pcm":
        assert pcm_rate, "pcm needs the rate (the x-sample-rate header)"
        assert len(data) % 2 == 0, f"odd number of bytes ({len(data)}) for 16-bit PCM"
        samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
        return Decoded(samples, pcm_rate, "pcm_s16le", pcm_rate, 1)
    path = directory / f"speech.{fmt if fmt != 'opus' else 'ogg'}"
    path.write_bytes(data)
    if fmt == "wav":
        import soundfile

        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
        info = soundfile.info(io.BytesIO(data))
        return Decoded(samples.mean(axis=1), rate, f"wav/{info.subtype}", info.samplerate, info.channels)
    probe = ffprobe(path)
    samples, rate = ffmpeg_decode(path)
    declared = int(probe["sample_rate"])
    if fmt == "opus":
        # Opus always decodes at 48 kHz; the encoder's input rate is in the header.
        declared = opus_head(data)["input_sample_rate"]
    elif fmt == "flac":
        declared = flac_streaminfo(data)["sample_rate"]
    return Decoded(samples, rate, probe["codec_name"], declared, int(probe["channels"]))


def wav_excerpt(source: Path, destination: Path, start: float, seconds: float) -> Path:
    """`seconds` of the WAV file `source` from `start`, as a WAV file."""
    import wave

    with wave.open(str(source)) as w:
        params = w.getparams()
        w.setpos(int(start * w.getframerate()))
        frames = w.readframes(int(seconds * w.getframerate()))
    with wave.open(str(destination), "wb") as out:
        out.setparams(params)
        out.writeframes(frames)
    return destination


def early_answer(port: int, head: bytes, body: bytes, pause: float) -> dict:
    """Sends a request's head, then after `pause` s its body, reads the
    answer, and tells whether the server then closed the connection and
    whether it said it would (`Connection: close`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        time.sleep(pause)
        try:
            s.sendall(body)
        except OSError:
            pass  # the server may close before it takes the whole body
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            assert chunk, f"the connection closed before an answer came: {data!r}"
            data += chunk
        end = data.index(b"\r\n\r\n") + 4
        lines = data[:end].decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:] if l)}
        length = int(headers.get("content-length", "0"))
        while len(data) < end + length:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.settimeout(1.0)
        try:
            closed = s.recv(1) == b""
        except socket.timeout:
            closed = False
        except ConnectionResetError:
            closed = True
    return {
        "status": int(lines[0].split()[1]),
        "says_close": headers.get("connection", "").lower() == "close",
        "closed": closed,
    }
