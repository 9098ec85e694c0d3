"""Word error rate, the one definition the Python test suites (tests/openai,
tests/wyoming) and the benchmarks (bench/stt.sh) share. Standard library only,
so a benchmark can import it from any interpreter."""

from __future__ import annotations

import re


def normalize(text: str) -> list[str]:
    """Words for a word error rate: lower case, no punctuation."""
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level Levenshtein distance over reference words."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)] / max(1, len(ref))
