#!/usr/bin/env python3
"""Driver of bench/wyoming.sh: Wyoming servers measured side by side with
wyoming-bench's own measuring code (PyPI `wyoming-bench`: one fresh
AsyncTcpClient connection per measurement; TTS time to first audio is from
sending the request to the first `audio-chunk`, STT time from sending
`transcribe` to the `transcript`), but alternating the servers request by
request — `wyoming-bench tts A B` measures all of A, then all of B — so
both see the same machine noise.

    wyoming_driver.py --tts hearth=127.0.0.1:10200 --tts wyoming-piper=127.0.0.1:10201 \
                     --stt hearth=127.0.0.1:10200 --stt wyoming-faster-whisper=127.0.0.1:10300 \
                     --corpus DIR --rounds 5 --json results.jsonl

TTS: wyoming-bench's four default texts (one to four sentences), whole
(`synthesize`) and streamed (`synthesize-start`, a chunk per sentence,
`synthesize-stop`). STT: every `<name>.wav` + `<name>.txt` of the corpus,
sent as fast as the socket takes it in 1,024-sample chunks with
wyoming-bench's 0.5 s of trailing silence; word error rate over the whole
corpus (substitutions, insertions and deletions over reference words,
after wyoming-bench's normalization). One untimed warmup per server and
kind first. Every read has a timeout, and the whole run a time limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

from wyoming.asr import Transcribe
from wyoming_bench.const import MODE_NON_STREAMING, MODE_STREAMING
from wyoming_bench.reporting import stats
from wyoming_bench.stt.client import measure_stt_once
from wyoming_bench.stt.corpus import load_corpus
from wyoming_bench.tts.client import measure_once
from wyoming_bench.tts.texts import DEFAULT_TEXTS

CHUNK_SAMPLES = 1024
TRAILING_SILENCE = 0.5


def server(spec: str) -> tuple[str, str, int]:
    name, _, address = spec.partition("=")
    host, _, port = address.rpartition(":")
    if not (name and host and port.isdigit()):
        raise argparse.ArgumentTypeError(f"{spec!r}: give NAME=HOST:PORT")
    return name, host, int(port)


def rotated(items: list, by: int) -> list:
    by %= max(1, len(items))
    return items[by:] + items[:by]


async def run(args, out) -> dict:
    results: dict = {"tts": {}, "stt": {}}
    record = lambda row: (out.write(json.dumps(row) + "\n"), out.flush())  # noqa: E731
    timeout = args.timeout

    # ---- TTS
    modes = [MODE_NON_STREAMING, MODE_STREAMING]
    for name, host, port in args.tts:
        for mode in modes:
            w = await measure_once(host, port, mode, DEFAULT_TEXTS[0], None, None, timeout, timeout)
            if not w.ok:
                sys.exit(f"warmup of {name} ({mode}) failed: {w.error}")
    for round_no in range(args.rounds):
        for text in DEFAULT_TEXTS:
            for mode in modes:
                for name, host, port in rotated(args.tts, round_no):
                    m = await measure_once(host, port, mode, text, None, None, timeout, timeout)
                    row = {"kind": "tts", "server": name, "mode": mode, "round": round_no, "text": text,
                           "ok": m.ok, "error": m.error, "ttfa_s": m.ttft_s, "total_s": m.total_s,
                           "audio_s": m.audio_duration_s, "cycles": m.n_audio_cycles}
                    record(row)
                    if not m.ok:
                        sys.exit(f"{name} failed ({mode}): {m.error}")
                    results["tts"].setdefault((name, mode), []).append(m)
        print(f"tts round {round_no + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    # ---- STT
    corpus = load_corpus(args.corpus) if args.stt else []
    if args.stt and not corpus:
        sys.exit(f"no .wav + .txt pairs in {args.corpus}")
    transcribe = Transcribe(language="en")
    for name, host, port in args.stt:
        w = await measure_stt_once(host, port, MODE_NON_STREAMING, corpus[0], transcribe, CHUNK_SAMPLES,
                                   timeout, timeout, trailing_silence=TRAILING_SILENCE)
        if not w.ok:
            sys.exit(f"warmup of {name} (stt) failed: {w.error}")
    for round_no in range(args.rounds):
        for sample in corpus:
            for name, host, port in rotated(args.stt, round_no):
                m = await measure_stt_once(host, port, MODE_NON_STREAMING, sample, transcribe, CHUNK_SAMPLES,
                                           timeout, timeout, trailing_silence=TRAILING_SILENCE)
                row = {"kind": "stt", "server": name, "round": round_no, "sample": sample.sample_id,
                       "audio_s": sample.duration_s, "ok": m.ok, "error": m.error, "total_s": m.total_s,
                       "hypothesis": m.hypothesis, "reference": sample.reference, "wer": m.wer,
                       "errors": (m.sub or 0) + (m.ins or 0) + (m.del_ or 0), "ref_words": m.n_ref_words}
                record(row)
                if not m.ok:
                    sys.exit(f"{name} failed (stt): {m.error}")
                results["stt"].setdefault(name, []).append(m)
        print(f"stt round {round_no + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    return results


def ms(value) -> str:
    return "—" if value is None else f"{value * 1000:.0f}"


def report(results: dict, args) -> None:
    tts_names = [name for name, _, _ in args.tts]
    print()
    print(f"TTS, time to first audio (ms), {args.rounds} rounds × {len(DEFAULT_TEXTS)} texts (1–4 sentences):")
    print()
    print("| server | mode | n | median | p95 | total median | total p95 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    medians: dict = {}
    for mode in (MODE_NON_STREAMING, MODE_STREAMING):
        for name in tts_names:
            ms_list = results["tts"].get((name, mode), [])
            first = stats([m.ttft_s for m in ms_list])
            total = stats([m.total_s for m in ms_list])
            medians[(name, mode)] = first["median"]
            print(f"| {name} | {mode} | {first['n']} | {ms(first['median'])} | {ms(first['p95'])} | "
                  f"{ms(total['median'])} | {ms(total['p95'])} |")
    if len(tts_names) == 2:
        a, b = tts_names
        for mode in (MODE_NON_STREAMING, MODE_STREAMING):
            if medians.get((a, mode)) and medians.get((b, mode)):
                print(f"\n{a} / {b} time to first audio, {mode}: {medians[(a, mode)] / medians[(b, mode)]:.2f}×")
    if results["stt"]:
        corpus_s = sum(m.audio_duration_s for m in next(iter(results["stt"].values()))) / args.rounds
        print()
        print(f"STT, transcription time (ms), {args.rounds} rounds × the corpus ({corpus_s:.1f} s of audio):")
        print()
        print("| server | n | median | p95 | WER |")
        print("|---|---:|---:|---:|---:|")
        per_server = {}
        for name, ms_list in results["stt"].items():
            total = stats([m.total_s for m in ms_list])
            errors = sum((m.sub or 0) + (m.ins or 0) + (m.del_ or 0) for m in ms_list)
            words = sum(m.n_ref_words or 0 for m in ms_list)
            per_server[name] = total["median"]
            print(f"| {name} | {total['n']} | {ms(total['median'])} | {ms(total['p95'])} | "
                  f"{100 * errors / max(1, words):.1f}% |")
        names = list(per_server)
        if len(names) == 2 and all(per_server.values()):
            print(f"\n{names[0]} / {names[1]} transcription time: {per_server[names[0]] / per_server[names[1]]:.2f}×")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tts", type=server, action="append", default=[], metavar="NAME=HOST:PORT")
    p.add_argument("--stt", type=server, action="append", default=[], metavar="NAME=HOST:PORT")
    p.add_argument("--corpus", help="directory of <name>.wav + <name>.txt (needed with --stt)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per connect and per event (default 60)")
    p.add_argument("--time-limit", type=float, default=1800.0, help="seconds for the whole run (default 1800)")
    p.add_argument("--json", default="/dev/null", help="write one JSON line per measurement here")
    args = p.parse_args()
    started = time.monotonic()
    load_before = os.getloadavg()
    with open(args.json, "w") as out:
        try:
            results = asyncio.run(asyncio.wait_for(run(args, out), args.time_limit))
        except asyncio.TimeoutError:
            print(f"the run took longer than --time-limit {args.time_limit:.0f} s", file=sys.stderr)
            return 1
    report(results, args)
    load_after = os.getloadavg()
    print(f"\n(the run took {time.monotonic() - started:.0f} s; 1-minute load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after, on {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
