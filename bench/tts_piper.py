"""Times piper-tts (the reference implementation) on the same sentences as
Hearth's tts-bench (bench/src/bin/tts_bench.rs) and prints the
same JSON keys. Run by bench/tts.sh inside its venv.

usage: tts_piper.py VOICE.onnx SENTENCES_FILE [--runs N] [--threads N]

--threads sets ONNX Runtime's intra-op threads; without it piper-tts keeps
its default session options (what its users get).
"""

import argparse
import json
import time

import onnxruntime
from piper import PiperVoice
from piper.config import PiperConfig


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("voice")
    parser.add_argument("sentences")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()

    with open(args.sentences, encoding="utf-8") as f:
        lines = [l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")]

    started = time.perf_counter()
    if args.threads:
        # What PiperVoice.load does, with the thread count set.
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        with open(f"{args.voice}.json", encoding="utf-8") as f:
            config = PiperConfig.from_dict(json.load(f))
        voice = PiperVoice(
            config=config,
            session=onnxruntime.InferenceSession(
                args.voice, sess_options=options, providers=["CPUExecutionProvider"]
            ),
        )
    else:
        voice = PiperVoice.load(args.voice)
    load = time.perf_counter() - started

    def speak(text: str):
        """Synthesizes like Hearth's engine: one int16 chunk per sentence."""
        first = None
        t0 = time.perf_counter()
        samples = 0
        rate = 0
        chunks = 0
        for chunk in voice.synthesize(text):
            pcm = chunk.audio_int16_array  # the PCM16 conversion Hearth also does
            if first is None:
                first = time.perf_counter() - t0
            samples += len(pcm)
            rate = chunk.sample_rate
            chunks += 1
        return samples, rate, chunks, first

    started = time.perf_counter()
    speak("Hello world.")
    warmup = time.perf_counter() - started

    run_ms, first_chunk_ms = [], []
    audio_seconds, sentences = 0.0, 0
    for _ in range(args.runs):
        samples, rate, sentences = 0, 1, 0
        started = time.perf_counter()
        for line in lines:
            n, rate, chunks, first = speak(line)
            samples += n
            sentences += chunks
            if first is not None:
                first_chunk_ms.append(first * 1e3)
        run_ms.append((time.perf_counter() - started) * 1e3)
        audio_seconds = samples / rate

    threads = f", {args.threads} thread(s)" if args.threads else ", default session options"
    print(
        json.dumps(
            {
                "engine": f"piper-tts 1.8 (onnxruntime {onnxruntime.__version__}{threads})",
                "load_ms": load * 1e3,
                "warmup_ms": warmup * 1e3,
                "load_to_warm_ms": (load + warmup) * 1e3,
                "run_ms": run_ms,
                "first_chunk_ms": first_chunk_ms,
                "audio_seconds": audio_seconds,
                "sentences": sentences,
            }
        )
    )


if __name__ == "__main__":
    main()
