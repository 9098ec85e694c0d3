"""POST /v1/audio/transcriptions with the real Whisper model, through the
official `openai` SDK: the JFK clip as recorded and as ffmpeg makes it in
the formats browsers and phones record, every response format, streaming,
the errors, and a round trip through the Piper voice."""

from __future__ import annotations

import re

import openai
import pytest

from hearth_testing import JFK, JFK_TEXT
from wer import wer

MAX_WER = 0.10
CLIPS = ["wav", "mp3", "flac", "ogg-opus", "webm-opus", "ogg-vorbis", "m4a-aac", "wav-44k-stereo"]


def transcribe(client, path, **options):
    options.setdefault("model", "whisper-1")
    with open(path, "rb") as f:
        return client.audio.transcriptions.create(file=f, **options)


@pytest.mark.parametrize("clip", CLIPS)
def test_every_recording_format(client, clips, clip):
    result = transcribe(client, clips[clip])
    assert wer(JFK_TEXT, result.text) <= MAX_WER, result.text


def test_the_model_by_its_own_id(client, models):
    result = transcribe(client, JFK, model=models["stt"])
    assert wer(JFK_TEXT, result.text) <= MAX_WER, result.text


def test_json(client):
    result = transcribe(client, JFK, response_format="json")
    assert isinstance(result, openai.types.audio.Transcription)
    assert wer(JFK_TEXT, result.text) <= MAX_WER, result.text


def test_text(client):
    result = transcribe(client, JFK, response_format="text")
    assert isinstance(result, str)
    assert wer(JFK_TEXT, result) <= MAX_WER, result


def cues(subtitles: str, separator: str) -> list[tuple[float, float, str]]:
    """(start, end, text) of each cue of an SRT or WebVTT document."""
    stamp = r"(\d\d):(\d\d):(\d\d)" + re.escape(separator) + r"(\d\d\d)"
    found = []
    for block in re.split(r"\n\s*\n", subtitles.strip()):
        lines = block.strip().splitlines()
        for i, line in enumerate(lines):
            m = re.fullmatch(stamp + r" --> " + stamp, line.strip())
            if m:
                g = [int(x) for x in m.groups()]
                start = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000
                end = g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000
                found.append((start, end, " ".join(lines[i + 1:])))
                break
    return found


def check_cues(found):
    assert found, "no cues"
    assert all(0 <= start < end <= 11.5 for start, end, _ in found), found
    assert all(a[1] <= b[0] + 0.01 for a, b in zip(found, found[1:])), found
    assert wer(JFK_TEXT, " ".join(text for _, _, text in found)) <= MAX_WER, found


def test_srt(client):
    result = transcribe(client, JFK, response_format="srt")
    assert isinstance(result, str)
    assert result.lstrip().startswith("1\n"), result
    check_cues(cues(result, ","))


def test_vtt(client):
    result = transcribe(client, JFK, response_format="vtt")
    assert isinstance(result, str)
    assert result.startswith("WEBVTT"), result
    check_cues(cues(result, "."))


def test_verbose_json(client):
    result = transcribe(client, JFK, response_format="verbose_json")
    assert isinstance(result, openai.types.audio.TranscriptionVerbose)
    assert wer(JFK_TEXT, result.text) <= MAX_WER, result.text
    assert result.language in ("en", "english")
    assert 10.5 <= result.duration <= 11.5, result.duration
    assert result.segments, result
    for segment in result.segments:
        assert 0 <= segment.start < segment.end <= result.duration + 0.5, segment
    for a, b in zip(result.segments, result.segments[1:]):
        assert a.end <= b.start + 0.01 and a.id < b.id, (a, b)
    assert wer(JFK_TEXT, " ".join(s.text for s in result.segments)) <= MAX_WER


def test_stream(client):
    events = list(transcribe(client, JFK, stream=True))
    types = [e.type for e in events]
    assert types[-1] == "transcript.text.done", types
    assert types[:-1] and set(types[:-1]) == {"transcript.text.delta"}, types
    done = events[-1].text
    assert wer(JFK_TEXT, done) <= MAX_WER, done
    joined = "".join(e.delta for e in events[:-1])
    assert joined.split() == done.split(), (joined, done)


def test_not_audio_is_415(client, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("These are not the sounds you are looking for.\n" * 20)
    with pytest.raises(openai.APIStatusError) as caught:
        transcribe(client, path)
    error = caught.value
    assert error.status_code == 415
    assert error.code == "unsupported_media_type"
    message = error.response.json()["error"]["message"]
    for name in ("wav", "mp3", "flac", "ogg", "webm", "m4a"):
        assert name in message, message


def test_damaged_audio_is_refused(client, tmp_path):
    # A WAV header and then nothing that decodes: a 4xx, not a 5xx.
    path = tmp_path / "broken.wav"
    path.write_bytes(JFK.read_bytes()[:44] + bytes(range(256)) * 4)
    with pytest.raises(openai.APIStatusError) as caught:
        transcribe(client, path)
    assert caught.value.status_code in (400, 415), caught.value.response.text


def upload_over_25_mb(tmp_path):
    path = tmp_path / "long.wav"
    path.write_bytes(JFK.read_bytes()[:44] + bytes(26 * 1000 * 1000))
    return path


def test_over_25_mb_is_413(real, tmp_path):
    # The server answers before it has read the whole upload and then
    # closes the connection without saying so (test_scripted.py,
    # test_early_answers_that_close_say_so): a client of its own, whose
    # pool nothing else uses, and a few attempts should the connection be
    # reset before the answer is read.
    path = upload_over_25_mb(tmp_path)
    with real.client() as client:
        error = upload_until_answered(client, path)
    assert error.status_code == 413, error
    assert error.code == "too_large"
    assert "25 MB" in error.response.json()["error"]["message"]


def upload_until_answered(client, path):
    for _ in range(5):
        try:
            transcribe(client, path)
            raise AssertionError("a 26 MB upload was transcribed")
        except openai.APIConnectionError:
            continue
        except openai.APIStatusError as e:
            return e
    raise AssertionError(f"the answer to an upload of {path} was lost 5 times in a row")


def test_unknown_model_is_404(client, models):
    with pytest.raises(openai.NotFoundError) as caught:
        transcribe(client, JFK, model="no-such-model")
    assert models["stt"] in caught.value.response.json()["error"]["message"]


def test_unknown_response_format_is_400(client):
    with pytest.raises(openai.BadRequestError) as caught:
        transcribe(client, JFK, response_format="diarized_json")
    message = caught.value.response.json()["error"]["message"]
    for name in ("json", "text", "srt", "vtt", "verbose_json"):
        assert name in message, message


# ---------------------------------------------------------------------------
# Round trip: the voice's speech, transcribed.

ROUND_TRIP = [
    "The weather today is sunny with a light breeze from the west.",
    "Please call me back when you get home tonight.",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_round_trip(client, models, tmp_path, text):
    path = tmp_path / "spoken.wav"
    with client.audio.speech.with_streaming_response.create(
        model=models["tts"], voice="alloy", input=text, response_format="wav"
    ) as response:
        response.stream_to_file(path)
    result = transcribe(client, path, model=models["stt"])
    assert wer(text, result.text) <= 0.15, result.text
