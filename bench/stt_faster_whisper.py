#!/usr/bin/env python3
"""The faster-whisper side of bench/stt.sh: what stt-bench does for Hearth
(load, warm up on 1 s of silence, then transcribe a WAV file --runs times),
with faster-whisper (CTranslate2) on the same Whisper weights.

    stt_faster_whisper.py --model DIR [--threads 2] [--compute-type int8] [--runs 3] WAV...

DIR is a CTranslate2 Whisper model with its tokenizer.json (bench/stt.sh
builds it offline with bench/whisper_ct2_assets.py). Prints one JSON line
per WAV, shaped like stt-bench's: engine, load_ms, warmup_ms,
audio_seconds, run_ms, cpu_ms (process CPU time, all threads) and the text
of the last run.

Decoding as Hearth's stt-whisper configures whisper.cpp: greedy (beam_size
1) with best_of 5 for the temperature fallback, temperatures 0.0 to 1.0 in
steps of 0.2, log-probability threshold -1.0, no-speech threshold 0.6,
compression-ratio threshold 2.4 (whisper.cpp's entropy threshold 2.4 plays
that part), English, no VAD filter, no conditioning on earlier text
(whisper.cpp's no_context), timestamps decoded. The timed call is
transcribe() on decoded 16 kHz float samples, until its last segment is
read; reading and resampling the file is not timed (stt-bench times
Hearth's resampling, but the timed clip is 16 kHz already).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import wave

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from faster_whisper import WhisperModel, decode_audio  # noqa: E402
from faster_whisper.version import __version__ as FW_VERSION  # noqa: E402

RATE = 16_000
OPTIONS = {
    "language": "en",
    "task": "transcribe",
    "beam_size": 1,
    "best_of": 5,
    "temperature": [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
    "compression_ratio_threshold": 2.4,
    "log_prob_threshold": -1.0,
    "no_speech_threshold": 0.6,
    "condition_on_previous_text": False,
    "vad_filter": False,
    "without_timestamps": False,
}


def read_wav(path: str) -> np.ndarray:
    """16 kHz mono float32: PCM16 mono 16 kHz files directly (as the timed
    clip is), anything else through faster-whisper's own decoder."""
    with wave.open(path) as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2):
            return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0
    return decode_audio(path, sampling_rate=RATE)


def transcribe(model: WhisperModel, audio: np.ndarray) -> str:
    segments, _ = model.transcribe(audio, **OPTIONS)
    return "".join(s.text for s in segments).strip()


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("wav", nargs="+")
    p.add_argument("--model", required=True, help="CTranslate2 Whisper model directory")
    p.add_argument("--threads", type=int, default=2, help="cpu_threads (default 2)")
    p.add_argument("--compute-type", default="int8", help="CTranslate2 compute type (default int8)")
    p.add_argument("--runs", type=int, default=3, help="timed transcriptions per file (default 3)")
    a = p.parse_args()

    started = time.perf_counter()
    model = WhisperModel(a.model, device="cpu", compute_type=a.compute_type, cpu_threads=a.threads,
                         num_workers=1, local_files_only=True)
    load = time.perf_counter() - started
    started = time.perf_counter()
    transcribe(model, np.zeros(RATE, np.float32))
    warmup = time.perf_counter() - started

    engine = f"faster-whisper {FW_VERSION} {a.compute_type} (CTranslate2)"
    for path in a.wav:
        audio = read_wav(path)
        runs, cpu, text = [], [], ""
        for _ in range(a.runs):
            cpu_started, started = time.process_time(), time.perf_counter()
            text = transcribe(model, audio)
            runs.append(ms(time.perf_counter() - started))
            cpu.append(ms(time.process_time() - cpu_started))
        print(json.dumps({"engine": engine, "load_ms": ms(load), "warmup_ms": ms(warmup),
                          "audio_seconds": len(audio) / RATE, "threads": a.threads, "options": OPTIONS,
                          "run_ms": runs, "cpu_ms": cpu, "text": text}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
