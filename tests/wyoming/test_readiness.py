"""Wyoming while the engines load, fail or are swapped, and its limits,
with the scripted test engines (plugins/scripted: slow loads on request, a
tone per sentence, a fixed transcript). Each test has a server of its
own."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time

import numpy as np
import pytest
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.info import Describe, Info
from wyoming.ping import Ping
from wyoming.tts import Synthesize, SynthesizeStart

from hearth_testing import http_request, scripted_config
from wyoming_support import READ_TIMEOUT, Server, exchange, pcm, run, types

LOAD_MS = 6000
SLOW = dict(
    tts=f'load_ms = {LOAD_MS}\nload_steps = 4\nmodel = "scripted-voice"\nsample_rate = 16000',
    stt=f'load_ms = {LOAD_MS}\nload_steps = 4\nmodel = "scripted-whisper"\ntranscript = "hello from the script"',
)


def tone(seconds: float = 1.0, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()


def audio_events(data: bytes, rate: int = 16000) -> list:
    events = [AudioStart(rate=rate, width=2, channels=1).event()]
    for at in range(0, len(data), 2048):
        events.append(AudioChunk(rate=rate, width=2, channels=1, audio=data[at:at + 2048]).event())
    events.append(AudioStop().event())
    return events


@pytest.fixture
def server_for(tmp_path):
    """Starts a scripted server with the given config; stops it after the
    test and checks that SIGTERM ended it cleanly."""
    started = []

    def start(wyoming: str = "enabled = true", **script) -> Server:
        server = Server(scripted_config(tmp_path, chat=None, wyoming=wyoming, **script), name="scripted")
        started.append(server)
        server.wait_live()
        return server

    yield start
    for server in started:
        code = server.stop()
        assert code == 0, f"hearth serve exited with {code}"


async def refused(server: Server, events: list) -> Error:
    """Sends `events`; the answer must be an `error` within seconds, and the
    connection must then close."""
    started = time.monotonic()
    async with server.client() as client:
        for event in events:
            await client.write_event(event)
        answer = await asyncio.wait_for(client.read_event(), 10)
        assert answer is not None and answer.type == "error", answer
        after = await asyncio.wait_for(client.read_event(), 10)
        assert after is None, f"the connection stayed open after the error: {after}"
    assert time.monotonic() - started < 10
    return Error.from_event(answer)


def check_not_ready(error: Error, service: str):
    assert error.code == "not_ready", error
    assert error.text.startswith(f"{service} is not ready: "), error.text
    # Its state and progress, and Hearth's.
    assert re.search(r"(pending|loading, \d+%|warming)", error.text), error.text
    assert re.search(r"Hearth is (INITIALIZING|LOADING_MODELS|WARMING_UP) at \d+%", error.text), error.text


def test_before_ready_info_says_not_installed_and_requests_get_the_state(server_for):
    server = server_for(**SLOW)
    events = run(exchange(server, [Describe().event()], until=("info",)))
    info = Info.from_event(events[0])
    tts, asr = info.tts[0], info.asr[0]
    for program, artifact in ((tts, tts.voices[0]), (asr, asr.models[0])):
        assert program.installed is False and artifact.installed is False, program
        assert "not ready: " in program.description and "Hearth is" in program.description, program.description
        assert "not ready: " in artifact.description, artifact.description
    # The names are known before the engines say them: the plugin, and its
    # configured model.
    assert tts.name == "scripted-tts" and asr.name == "scripted-stt"

    check_not_ready(run(refused(server, [Synthesize(text="Hello there.").event()])), "tts")
    check_not_ready(run(refused(server, [SynthesizeStart().event()])), "tts")
    check_not_ready(run(refused(server, [Transcribe(language="en").event()])), "stt")
    # Audio without transcribe is refused at audio-start.
    check_not_ready(run(refused(server, audio_events(tone(0.2))[:2])), "stt")

    # Once ready, the same requests are served.
    server.wait_ready(("tts", "stt"), timeout=60)
    info = Info.from_event(run(exchange(server, [Describe().event()], until=("info",)))[0])
    assert info.tts[0].installed and info.tts[0].voices[0].installed
    assert info.tts[0].voices[0].name == "scripted-voice"
    assert info.asr[0].installed and info.asr[0].models[0].name == "scripted-whisper"
    assert "not ready" not in info.tts[0].description
    spoken = run(exchange(server, [Synthesize(text="Hello there.").event()], until=("audio-stop",)))
    assert types(spoken)[0] == "audio-start" and types(spoken)[-1] == "audio-stop", types(spoken)
    assert abs(len(pcm(spoken)) / 16000 - 0.06 * len("Hello there.")) < 0.01
    heard = run(exchange(server, [Transcribe().event(), *audio_events(tone())], until=("transcript",)))
    assert heard[-1].type == "transcript" and heard[-1].data["text"] == "hello from the script", heard


def test_a_failed_service_is_reported_with_its_error(server_for):
    server = server_for(
        tts='sample_rate = 16000',
        stt='fail_load = "disk on fire"',
    )
    server.wait_ready(("tts",), timeout=60)
    deadline = time.monotonic() + 30
    while True:
        body = json.loads(http_request("GET", f"{server.url}/api/ready")[1])
        if body["services"]["stt"]["status"] == "failed":
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.1)
    info = Info.from_event(run(exchange(server, [Describe().event()], until=("info",)))[0])
    assert info.tts[0].installed and not info.asr[0].installed
    assert "failed: disk on fire" in info.asr[0].description, info.asr[0].description
    error = run(refused(server, [Transcribe().event()]))
    assert error.code == "not_ready" and "failed: disk on fire" in error.text, error
    # TTS serves on.
    spoken = run(exchange(server, [Synthesize(text="Still here.").event()], until=("audio-stop",)))
    assert types(spoken)[-1] == "audio-stop"


def test_an_engine_that_dies_mid_synthesis_ends_the_request_with_an_error(server_for):
    server = server_for(tts='sample_rate = 16000\ncrash = "exit"\ncrash_in = "operation"', stt="")
    server.wait_ready(("tts",), timeout=60)
    events = run(exchange(server, [Synthesize(text="One sentence. And another.").event()], until=("audio-stop",)))
    assert events[-1] is not None and events[-1].type == "error", types(events)
    error = Error.from_event(events[-1])
    assert error.code == "engine_error" and "tts" in error.text, error
    # The host lives on.
    pong = run(exchange(server, [Ping(text="alive").event()], until=("pong",)))
    assert types(pong) == ["pong"]


def test_a_swapped_engine_serves_from_the_next_request(server_for):
    server = server_for(tts="sample_rate = 16000", stt="")
    # A reload waits for every service to settle.
    server.wait_ready(("tts", "stt"), timeout=60)
    first = run(exchange(server, [Synthesize(text="Before.").event()], until=("audio-stop",)))
    assert AudioStart.from_event(first[0]).rate == 16000
    # Reload with another output rate: the engine is swapped live.
    server.config.write_text(server.config.read_text().replace("sample_rate = 16000", "sample_rate = 24000"))
    status, body, _ = http_request("POST", f"{server.url}/api/reload", timeout=60)
    assert status == 200, body
    after = run(exchange(server, [Synthesize(text="After.").event()], until=("audio-stop",)))
    assert AudioStart.from_event(after[0]).rate == 24000, after[0]


def test_an_idle_client_is_told_and_disconnected(server_for):
    server = server_for('enabled = true\nidle_timeout = "1s"', tts="", stt="")

    async def idle():
        async with server.client() as client:
            started = time.monotonic()
            event = await asyncio.wait_for(client.read_event(), 10)
            waited = time.monotonic() - started
            after = await asyncio.wait_for(client.read_event(), 10)
            return event, waited, after

    event, waited, after = run(idle())
    assert event.type == "error" and event.data["code"] == "timeout", event
    assert "idle_timeout" in event.data["text"]
    assert 0.8 <= waited <= 5, waited
    assert after is None


def test_connections_over_the_cap_are_refused_with_busy(server_for):
    server = server_for("enabled = true\nmax_connections = 2", tts="", stt="")

    async def admitted():
        """A connection that got a slot (the start-up probe's slot is freed
        when the server has seen it close, which may take a moment)."""
        for _ in range(50):
            client = server.client()
            await client.connect()
            try:
                await client.write_event(Ping(text="in").event())
                answer = await asyncio.wait_for(client.read_event(), READ_TIMEOUT)
            except ConnectionError:
                answer = None
            if answer is not None and answer.type == "pong":
                return client
            await client.disconnect()
            await asyncio.sleep(0.1)
        raise AssertionError("no slot became free")

    async def crowd():
        first = await admitted()
        second = await admitted()
        async with server.client() as third:
            busy = await asyncio.wait_for(third.read_event(), 10)
            closed = await asyncio.wait_for(third.read_event(), 10)
        await first.disconnect()
        # A slot is free again (the server notices the close at once).
        for _ in range(50):
            async with server.client() as fourth:
                await fourth.write_event(Ping(text="now").event())
                answer = await asyncio.wait_for(fourth.read_event(), 10)
            if answer is not None and answer.type == "pong":
                break
            await asyncio.sleep(0.1)
        await second.disconnect()
        return busy, closed, answer

    busy, closed, answer = run(crowd())
    assert busy.type == "error" and busy.data["code"] == "busy", busy
    assert "max_connections" in busy.data["text"]
    assert closed is None
    assert answer.type == "pong", answer
    metrics = http_request("GET", f"{server.url}/metrics")[1].decode()
    assert 'hearth_refused_total{reason="wyoming_max_connections"}' in metrics


def test_zeroconf_starts_and_advertises(tmp_path):
    """`zeroconf = true` starts cleanly and says what it advertises. Run in
    a network namespace of its own (loopback only), so no mDNS packet
    leaves this machine; the advertisement itself is browsed for by the
    Rust test `wyoming::zeroconf::tests`."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip (util-linux, iproute2)")
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, timeout=10)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a network namespace here: {probe.stderr.decode().strip()}")
    config = scripted_config(tmp_path, tts="", stt="", chat=None, wyoming="enabled = true\nzeroconf = true")
    server = Server(
        config,
        name="zeroconf",
        prefix=["unshare", "--net", "sh", "-c", 'ip link set lo up multicast on && exec "$@"', "sh"],
    )
    try:
        deadline = time.monotonic() + 20
        while "advertising Wyoming over mDNS" not in server.log():
            server.check_alive("starting with zeroconf")
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.1)
        time.sleep(1.0)
        server.check_alive("advertising")
        log = server.log()
        assert re.search(r"as hearth-[A-Za-z0-9-]+-\d+\._wyoming\._tcp\.local\.", log), log
        assert "cannot advertise" not in log, log
    finally:
        code = server.stop()
    assert code == 0, code
