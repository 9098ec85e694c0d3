"""POST /v1/audio/speech with the real Piper voice, through the official
`openai` SDK: every format to a file and decoded, streaming (chunked and
SSE), speed, and the errors."""

from __future__ import annotations

import base64
import json
import statistics
import time

import numpy as np
import openai
import pytest

from openai_support import decode_audio, voice_sample_rate

# Two sentences, about 7 s of speech.
TEXT = (
    "The sea was calm that morning, and the boats went out early. "
    "By noon the wind had turned, and the sky grew dark over the harbour."
)
WORDS = len(TEXT.split())
FORMATS = ["mp3", "wav", "pcm", "flac", "opus"]
CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
    "flac": "audio/flac",
    "opus": "audio/ogg",
}


def speak(client, model, text, directory, fmt="pcm", **options):
    """Speaks `text` into a file through the SDK; (headers, decoded audio)."""
    path = directory / f"speech-{fmt}-{time.monotonic_ns()}.{fmt}"
    with client.audio.speech.with_streaming_response.create(
        model=model, voice="alloy", input=text, response_format=fmt, **options
    ) as response:
        assert response.status_code == 200
        headers = response.headers
        response.stream_to_file(path)
    data = path.read_bytes()
    rate = int(headers["x-sample-rate"]) if "x-sample-rate" in headers else None
    return headers, decode_audio(data, fmt, directory, pcm_rate=rate)


@pytest.fixture(scope="module")
def spoken(client, models, tmp_path_factory):
    """TEXT in every format: {format: (headers, decoded audio)}."""
    directory = tmp_path_factory.mktemp("speech")
    return {fmt: speak(client, models["tts"], TEXT, directory, fmt) for fmt in FORMATS}


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_decodes_at_the_voice_rate(spoken, fmt):
    headers, audio = spoken[fmt]
    rate = voice_sample_rate()
    assert headers["content-type"] == CONTENT_TYPES[fmt]
    assert int(headers["x-sample-rate"]) == rate
    assert audio.channels == 1, audio
    # What the container declares (for Opus, the encoder's input rate: Opus
    # itself always decodes at 48 kHz).
    assert audio.declared_rate == rate, audio
    assert audio.rate == (48_000 if fmt == "opus" else rate), audio
    # Plausible for the text: 1.5 to 5 words per second.
    assert WORDS / 5 <= audio.seconds <= WORDS / 1.5, audio
    # Not silent: speech at Piper's normalized level has an RMS around 0.1.
    assert audio.rms > 0.02, audio
    assert np.max(np.abs(audio.samples)) > 0.3, audio


def test_durations_agree_across_formats(spoken):
    # Each format is a synthesis of its own, and Piper's durations vary a
    # little from run to run (noise_w); codecs add a few ms of padding.
    seconds = {fmt: audio.seconds for fmt, (_, audio) in spoken.items()}
    middle = statistics.median(seconds.values())
    for fmt, s in seconds.items():
        assert abs(s - middle) / middle <= 0.06, seconds


def test_wav_header_is_pcm16(spoken):
    _, audio = spoken["wav"]
    assert audio.codec == "wav/PCM_16"


def test_speech_streams_before_the_text_is_spoken(client, models):
    # A short first sentence and two long ones: the first bytes must come
    # when the first sentence is synthesized, long before the last is.
    text = (
        "Hello there. "
        "The sea was calm that morning, and the boats went out early, long before the sun was up over the hills. "
        "By noon the wind had turned, and the sky grew dark and heavy over the little harbour and the town."
    )
    started = time.monotonic()
    arrivals = []
    with client.audio.speech.with_streaming_response.create(
        model=models["tts"], voice="alloy", input=text, response_format="pcm"
    ) as response:
        assert response.headers.get("transfer-encoding") == "chunked"
        for chunk in response.iter_bytes():
            arrivals.append((time.monotonic() - started, len(chunk)))
    first, total = arrivals[0][0], arrivals[-1][0]
    received = sum(n for _, n in arrivals)
    by_first = sum(n for t, n in arrivals if t <= first + 0.02)
    seconds = received / 2 / voice_sample_rate()
    assert seconds > 8, f"{seconds:.1f} s of audio"
    # The first chunk came well before the end, and was only part of the audio.
    assert first < 0.5 * total, f"first chunk after {first:.3f} s, all of it after {total:.3f} s"
    assert by_first < 0.4 * received, f"{by_first} of {received} bytes came at once"


def test_speech_sse_events(client, models):
    with client.audio.speech.with_streaming_response.create(
        model=models["tts"], voice="alloy", input=TEXT, response_format="pcm", stream_format="sse"
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        rate = int(response.headers["x-sample-rate"])
        events = [json.loads(line[len("data:"):]) for line in response.iter_lines() if line.startswith("data:")]
    types = [e["type"] for e in events]
    assert types[-1] == "speech.audio.done", types
    assert set(types[:-1]) == {"speech.audio.delta"}, types
    audio = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    assert sum(1 for e in events[:-1] if e["audio"]) >= 2, "the audio came in one piece"
    decoded = decode_audio(audio, "pcm", None, pcm_rate=rate)
    assert WORDS / 5 <= decoded.seconds <= WORDS / 1.5, decoded
    assert decoded.rms > 0.02, decoded


def test_speed_two_is_much_shorter(client, models, tmp_path):
    # Piper's speed is its length scale: each phoneme's duration is divided
    # by the speed, then rounded up to whole frames (as the voice model
    # does), so twice as fast comes out at about 0.6-0.7 of the time, not
    # exactly half.
    _, normal = speak(client, models["tts"], TEXT, tmp_path, speed=1.0)
    _, fast = speak(client, models["tts"], TEXT, tmp_path, speed=2.0)
    _, slow = speak(client, models["tts"], TEXT, tmp_path, speed=0.5)
    assert 0.4 <= fast.seconds / normal.seconds <= 0.75, (normal, fast)
    assert 1.5 <= slow.seconds / normal.seconds <= 2.2, (normal, slow)
    assert fast.rms > 0.02 and slow.rms > 0.02


def test_openai_voice_names_speak_with_the_loaded_voice(client, models, tmp_path):
    for voice in ("alloy", "nova", models["tts"]):
        path = tmp_path / f"{voice}.wav"
        with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice=voice, input="Hello.", response_format="wav"
        ) as response:
            response.stream_to_file(path)
        assert path.stat().st_size > 1000, voice


def test_exactly_4096_characters_are_accepted(client, models):
    # Read the first bytes and hang up: the server stops speaking.
    text = ("This sentence is here to fill the input up to its limit. " * 80)[:4095] + "."
    assert len(text) == 4096
    with client.audio.speech.with_streaming_response.create(
        model=models["tts"], voice="alloy", input=text, response_format="pcm"
    ) as response:
        assert response.status_code == 200
        assert len(next(response.iter_bytes())) > 0


# ---------------------------------------------------------------------------
# Errors: OpenAI's exceptions and error shape.


def assert_openai_error(error: openai.APIStatusError, status: int, *words: str):
    assert error.status_code == status
    body = error.response.json()
    assert set(body) == {"error"}, body
    detail = body["error"]
    assert isinstance(detail["message"], str) and detail["message"], body
    assert isinstance(detail["type"], str) and detail["type"], body
    assert isinstance(detail["code"], str) and detail["code"], body
    # The SDK read it as OpenAI's: message, type and code.
    assert error.code == detail["code"] and error.type == detail["type"]
    for word in words:
        assert word in detail["message"], body


def speech_error(client, expected, **request):
    request = {"model": "tts-1", "voice": "alloy", "input": "Hello.", **request}
    with pytest.raises(expected) as caught:
        with client.audio.speech.with_streaming_response.create(**request) as response:
            response.read()
    return caught.value


@pytest.mark.parametrize("fmt", ["aac", "ogg", "MP4"])
def test_unknown_format_is_400_listing_the_formats(client, fmt):
    error = speech_error(client, openai.BadRequestError, response_format=fmt)
    assert_openai_error(error, 400, fmt, *FORMATS)
    assert error.type == "invalid_request_error"


def test_empty_input_is_400(client):
    assert_openai_error(speech_error(client, openai.BadRequestError, input=""), 400, "input")
    assert_openai_error(speech_error(client, openai.BadRequestError, input="   \n"), 400, "input")


def test_too_long_input_is_400(client):
    error = speech_error(client, openai.BadRequestError, input="a" * 4097)
    assert_openai_error(error, 400, "4097", "4096")


@pytest.mark.parametrize("speed", [5.0, 0.1, 0.0, -1.0])
def test_speed_out_of_range_is_400(client, speed):
    assert_openai_error(speech_error(client, openai.BadRequestError, speed=speed), 400, "speed")


def test_unknown_model_is_404(client, models):
    error = speech_error(client, openai.NotFoundError, model="no-such-model")
    assert_openai_error(error, 404, "no-such-model", models["tts"])


def test_unknown_voice_is_400(client, models):
    error = speech_error(client, openai.BadRequestError, voice="no-such-voice")
    assert_openai_error(error, 400, "no-such-voice", models["tts"], "alloy")


def test_unknown_stream_format_is_400(client):
    error = speech_error(client, openai.BadRequestError, stream_format="websocket")
    assert_openai_error(error, 400, "websocket")
