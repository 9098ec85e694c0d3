"""The Wyoming protocol against the real engines (Piper, Whisper), spoken
by the `wyoming` package's AsyncTcpClient: describe/info, ping, transcribe
(16 kHz mono and 44.1 kHz stereo), synthesize (whole and streamed), and
garbage."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import wave

import pytest
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioStart, AudioStop, wav_to_chunks
from wyoming.error import Error
from wyoming.event import async_read_event
from wyoming.info import Describe, Info
from wyoming.ping import Ping
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

from hearth_testing import JFK, JFK_TEXT, rms
from wer import wer
from wyoming_support import READ_TIMEOUT, exchange, pcm, run, types

SAMPLES_PER_CHUNK = 1024


def test_describe_lists_the_engines_as_installed_programs(real):
    events = run(exchange(real, [Describe().event()], until=("info",)))
    assert types(events) == ["info"]
    info = Info.from_event(events[0])

    assert len(info.tts) == 1, info.tts
    tts = info.tts[0]
    assert tts.name == "tts-piper" and tts.installed, tts
    assert tts.supports_synthesize_streaming is True
    assert tts.version and tts.description and "not ready" not in tts.description, tts
    assert [v.name for v in tts.voices] == ["en_US-joe-medium"]
    voice = tts.voices[0]
    assert voice.installed and voice.languages == ["en_US"], voice
    assert voice.speakers is None, voice  # one speaker
    assert voice.attribution.name == "piper", voice

    assert len(info.asr) == 1, info.asr
    asr = info.asr[0]
    assert asr.name == "stt-whisper" and asr.installed, asr
    assert asr.supports_transcript_streaming is True
    assert [m.name for m in asr.models] == ["ggml-tiny.en-q8_0"]
    assert asr.models[0].installed and asr.models[0].languages == ["en"], asr.models[0]
    # Hearth serves nothing else.
    assert info.wake == [] and info.handle == [] and info.intent == [] and info.satellite is None


def test_ping_is_answered_with_pong(real):
    events = run(exchange(real, [Ping(text="are you there").event()], until=("pong",)))
    assert types(events) == ["pong"]
    assert events[0].data["text"] == "are you there"


def transcribe(server, path, samples_per_chunk=SAMPLES_PER_CHUNK):
    """Streams a WAV file as Home Assistant does (transcribe, audio-start,
    chunks, audio-stop) and returns the events up to transcript-stop."""
    with wave.open(str(path), "rb") as w:
        audio = [e.event() for e in wav_to_chunks(w, samples_per_chunk, start_event=True, stop_event=True)]
    return run(exchange(server, [Transcribe(language="en").event(), *audio], until=("transcript-stop",)))


def check_transcript(events):
    assert events[-1] is not None and events[-1].type == "transcript-stop", types(events)
    kinds = types(events)
    # The protocol's order for streaming servers; `transcript` is what
    # clients without streaming read.
    assert kinds[0] == "transcript-start" and kinds[-2:] == ["transcript", "transcript-stop"], kinds
    assert set(kinds[1:-2]) == {"transcript-chunk"}, kinds
    transcript = Transcript.from_event(events[-2])
    assert transcript.language == "en", transcript
    chunks = "".join(e.data["text"] for e in events if e.type == "transcript-chunk")
    assert chunks.split() == transcript.text.split(), (chunks, transcript.text)
    error = wer(JFK_TEXT, transcript.text)
    assert error <= 0.1, f"WER {error:.2f}: {transcript.text!r}"
    return transcript


def test_transcribes_16k_mono_sent_in_1024_sample_chunks(real):
    with wave.open(str(JFK), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
    check_transcript(transcribe(real, JFK))


def test_transcribes_44k_stereo_converting_it(real, jfk_44k_stereo):
    with wave.open(str(jfk_44k_stereo), "rb") as w:
        assert (w.getframerate(), w.getnchannels()) == (44100, 2)
    check_transcript(transcribe(real, jfk_44k_stereo))


def test_audio_without_transcribe_is_transcribed_too(real):
    # wyoming-faster-whisper transcribes an audio stream without a
    # transcribe event; so does Hearth.
    with wave.open(str(JFK), "rb") as w:
        audio = [e.event() for e in wav_to_chunks(w, 4096, start_event=True, stop_event=True)]
    events = run(exchange(real, audio, until=("transcript-stop",)))
    check_transcript(events)


def test_synthesizes_a_sentence(real):
    text = "The quick brown fox jumps over the lazy dog."
    events = run(exchange(real, [Synthesize(text=text).event()], until=("audio-stop",)))
    kinds = types(events)
    assert kinds[0] == "audio-start" and kinds[-1] == "audio-stop", kinds
    assert set(kinds[1:-1]) == {"audio-chunk"} and len(kinds) > 3, kinds
    start = AudioStart.from_event(events[0])
    assert (start.rate, start.width, start.channels) == (22050, 2, 1), start
    for chunk in events[1:-1]:
        assert chunk.data["rate"] == 22050 and len(chunk.payload) <= SAMPLES_PER_CHUNK * 2
    audio = pcm(events)
    seconds = len(audio) / start.rate
    assert 1.5 <= seconds <= 6.0, seconds
    assert rms(audio) > 0.02, rms(audio)

    # What it said is what was asked: Whisper hears it.
    import io

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(start.rate)
        w.writeframes(b"".join(e.payload for e in events if e.type == "audio-chunk"))
    buffer.seek(0)
    with wave.open(buffer, "rb") as w:
        audio_events = [e.event() for e in wav_to_chunks(w, SAMPLES_PER_CHUNK, start_event=True, stop_event=True)]
    heard = run(exchange(real, audio_events, until=("transcript",)))
    assert heard[-1].type == "transcript", types(heard)
    assert wer(text, heard[-1].data["text"]) <= 0.25, heard[-1].data


SENTENCES = [
    "Hello there, this is the first sentence. ",
    "The second one follows right behind it. ",
    "And the third one ends the text.",
]


async def streamed(server, copy_of_the_text: bool):
    """Streams SENTENCES; the first audio must arrive before the last
    sentence (and synthesize-stop) is sent. Returns (events, how long before
    sending synthesize-stop the first audio arrived)."""
    events = []
    async with server.client() as client:
        await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="en_US-joe-medium")).event())
        # The first sentence, and the second's first word: a sentence ending
        # in "." is complete once the next word shows it is not "e.g. this"
        # (the shared sentence rule), or at synthesize-stop.
        await client.write_event(SynthesizeChunk(text=SENTENCES[0]).event())
        for word in SENTENCES[1].split(" "):
            await client.write_event(SynthesizeChunk(text=word + " ").event())
        # Nothing more is sent until the first sentence is heard.
        while True:
            event = await client.read_event()
            assert event is not None and event.type != "error", event
            events.append(event)
            if event.type == "audio-chunk":
                break
        first_audio = time.monotonic()
        for word in SENTENCES[2].split(" "):
            await client.write_event(SynthesizeChunk(text=word + " ").event())
        if copy_of_the_text:
            # Home Assistant sends the whole text too, for servers without
            # streaming; a streaming server ignores it.
            await client.write_event(Synthesize(text="".join(SENTENCES)).event())
        stop_sent = time.monotonic()
        await client.write_event(SynthesizeStop().event())
        while True:
            event = await client.read_event()
            assert event is not None and event.type != "error", event
            events.append(event)
            if event.type == "synthesize-stopped":
                break
        # Nothing follows synthesize-stopped (the copy made no audio).
        try:
            extra = await asyncio.wait_for(client.read_event(), timeout=1.0)
        except asyncio.TimeoutError:
            extra = "nothing"
        assert extra == "nothing", extra
    return events, stop_sent - first_audio


def check_three_sentences(events):
    kinds = types(events)
    assert kinds.count("audio-start") == 3 and kinds.count("audio-stop") == 3, kinds
    assert kinds[-1] == "synthesize-stopped" and kinds[-2] == "audio-stop", kinds
    # One audio cycle per sentence, as wyoming-piper streams.
    cycle = []
    for kind in kinds[:-1]:
        if kind == "audio-start":
            assert not cycle, kinds
        cycle.append(kind)
        if kind == "audio-stop":
            assert cycle[0] == "audio-start" and set(cycle[1:-1]) == {"audio-chunk"}, cycle
            cycle = []
    audio = pcm(events)
    seconds = len(audio) / 22050
    assert 4.0 <= seconds <= 14.0, seconds
    assert rms(audio) > 0.02


def test_streamed_synthesis_speaks_the_first_sentence_before_the_text_ends(real):
    events, lead = run(streamed(real, copy_of_the_text=False))
    assert lead >= 0
    check_three_sentences(events)


def test_streamed_synthesis_ignores_the_copy_streaming_clients_send(real):
    events, _ = run(streamed(real, copy_of_the_text=True))
    check_three_sentences(events)


def raw_exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Sends raw bytes, returns everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        received = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            part = s.recv(65536)
            if not part:
                return received
            received += part
        raise AssertionError(f"the server did not close the connection within {timeout} s: {received!r}")


def read_frames(data: bytes) -> list:
    async def read():
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        frames = []
        while (event := await async_read_event(reader)) is not None:
            frames.append(event)
        return frames

    return asyncio.run(read())


@pytest.mark.parametrize(
    "garbage, code",
    [
        (b"this is not json\n", "bad_request"),
        (b"\x00\xff\xfe binary noise \x80\n", "bad_request"),
        (b'{"data": {"text": "no type"}}\n', "bad_request"),
        (b'{"type": "synthesize", "data": {"no_text": 1}}\n', "bad_request"),
        (b'{"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1}, "payload_length": 3}\nabc',
         "bad_request"),
        (b'{"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1}, "payload_length": 99999999}\n',
         "too_large"),
        (b"x" * 70000 + b"\n", "too_large"),
    ],
)
def test_garbage_gets_an_error_and_a_closed_connection_and_the_server_goes_on(real, garbage, code):
    received = raw_exchange(real.wyoming_port, garbage)
    frames = read_frames(received)
    assert [f.type for f in frames] == ["error"], received[:500]
    error = Error.from_event(frames[0])
    assert error.code == code and error.text, error
    # The header says the package version Hearth speaks.
    header = json.loads(received.split(b"\n", 1)[0])
    assert header["version"] == "1.10.2" and header["type"] == "error", header
    # The next client is served.
    events = run(exchange(real, [Ping(text="still here").event()], until=("pong",)))
    assert types(events) == ["pong"]


def test_unknown_events_are_dropped_as_wyoming_servers_do(real):
    async def go():
        async with real.client() as client:
            from wyoming.event import Event

            await client.write_event(Event(type="select-program", data={"name": "tts-piper"}))
            await client.write_event(Event(type="detect", data={"names": ["ok_nabu"]}))
            await client.write_event(Ping(text="after").event())
            return await asyncio.wait_for(client.read_event(), READ_TIMEOUT)

    event = run(go())
    assert event.type == "pong" and event.data["text"] == "after"


def test_empty_text_gives_only_audio_stop_as_wyoming_piper(real):
    events = run(exchange(real, [Synthesize(text="   ").event()], until=("audio-stop",)))
    assert types(events) == ["audio-stop"]
    assert AudioStop.from_event(events[0]).timestamp is None
