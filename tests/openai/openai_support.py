"""What the OpenAI-compatibility tests share beyond tests/hearth_testing.py:
the voice's files, the chat plugin's port, a `hearth serve` with the SDK's
client on its /v1, audio decoding and a hand-made HTTP exchange."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import openai

from hearth_testing import ROOT, HearthServer, s16le
from hearth_testing import rms as rms_of

VOICE_JSON = ROOT / "models/piper/en_US-joe-medium.onnx.json"
CHAT_PORT = 8089  # plugins.toml's llama-server


def voice_sample_rate() -> int:
    return int(json.loads(VOICE_JSON.read_text())["audio"]["sample_rate"])


class Server(HearthServer):
    """`hearth serve` for these tests: logs at `warn`, ready only when
    /readyz is 200 too (every endpoint answers then), `client()` the SDK."""

    SUITE = "openai"
    LOG_LEVEL = "warn"
    WAIT_FOR_READYZ = True

    def client(self, api_key: str = "not-used-by-hearth", **kwargs) -> openai.OpenAI:
        kwargs.setdefault("timeout", 120.0)
        kwargs.setdefault("max_retries", 0)
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=api_key, **kwargs)


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
        return rms_of(self.samples)

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
    return s16le(raw), rate


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
        return Decoded(s16le(data), pcm_rate, "pcm_s16le", pcm_rate, 1)
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
