#!/usr/bin/env python3
"""Convert a CTranslate2 (faster-whisper) Whisper model to a whisper.cpp ggml file.

Usage:
  whisper_ct2_to_ggml.py --model-dir DIR --mel-filters mel_filters.npz \
      --tokenizer gpt2.tiktoken --out ggml-tiny.en.bin [--type f16|q8_0|q5_1]

DIR holds CTranslate2's model.bin (and vocabulary.txt, used as a cross-check).
The output has the layout written by whisper.cpp's models/convert-pt-to-ggml.py:
magic, 11 int32 hparams, mel filters, tokenizer, then the tensors under OpenAI
Whisper's names.  2-D+ weights are float16, 1-D tensors, conv biases and
positional embeddings float32.  With --type q8_0 or q5_1 the 2-D float16
weights (the matrices whisper.cpp allocates with the file's weight type) are
quantized instead, in ggml's block formats and with the header's ftype
carrying ggml's quantization version, as whisper.cpp's quantize tool does;
conv kernels stay float16.  Output is a pure function of the inputs.
Needs numpy only (no torch).
"""
import argparse
import base64
import os
import re
import struct
import sys

import numpy as np

GGML_MAGIC = 0x67676D6C
# ggml's quantization format version, folded into the header's ftype
# (ftype + 1000 * version) for quantized files, as whisper.cpp reads it.
GGML_QNT_VERSION = 2
# --type: (header ftype, tensor type of the 2-D weight matrices)
WEIGHT_TYPES = {
    "f16": (1, 1),             # GGML_FTYPE_MOSTLY_F16, GGML_TYPE_F16
    "q8_0": (7, 8),            # GGML_FTYPE_MOSTLY_Q8_0, GGML_TYPE_Q8_0
    "q5_1": (9, 7),            # GGML_FTYPE_MOSTLY_Q5_1, GGML_TYPE_Q5_1
}
QK = 32  # values per block in both q8_0 and q5_1
# CTranslate2 DataType enum (include/ctranslate2/types.h)
CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


class ConvertError(Exception):
    pass


class Reader:
    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.buf = f.read()
        self.pos = 0

    def take(self, n, what):
        if self.pos + n > len(self.buf):
            raise ConvertError(
                f"{self.path}: truncated or corrupt CTranslate2 model file "
                f"(need {n} bytes for {what} at offset {self.pos}, file has {len(self.buf)})")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def u(self, fmt, what):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

    def string(self, what):
        (n,) = self.u("H", what)
        return self.take(n, what).rstrip(b"\0").decode("utf-8")


def read_ct2(path):
    """Return (spec_name, {name: ndarray}) for a CTranslate2 model.bin (binary version 4..6)."""
    r = Reader(path)
    (version,) = r.u("I", "binary version")
    if not 4 <= version <= 6:
        raise ConvertError(f"{path}: unsupported CTranslate2 binary version {version} (expected 4..6)")
    spec = r.string("spec name")
    r.u("I", "spec revision")
    (count,) = r.u("I", "variable count")
    variables = {}
    for _ in range(count):
        name = r.string("variable name")
        (rank,) = r.u("B", name)
        shape = r.u(f"{rank}I", name)
        dtype_id, nbytes = r.u("BI", name)
        if dtype_id not in CT2_DTYPES:
            raise ConvertError(f"{path}: variable {name} has unsupported dtype id {dtype_id} "
                               "(quantized models are not supported; use a float16/float32 model)")
        data = np.frombuffer(r.take(nbytes, name), dtype=CT2_DTYPES[dtype_id])
        if data.size != int(np.prod(shape, dtype=np.int64)):
            raise ConvertError(f"{path}: variable {name}: {nbytes} bytes do not match shape {shape}")
        variables[name] = data.reshape(shape)
    (n_alias,) = r.u("I", "alias count")
    for _ in range(n_alias):
        alias, target = r.string("alias"), r.string("alias target")
        variables[alias] = variables[target]
    if r.pos != len(r.buf):
        raise ConvertError(f"{path}: {len(r.buf) - r.pos} unexpected trailing bytes")
    return spec, variables


def quantize_q8_0(rows):
    """ggml's block_q8_0 for each 32 values: f16 scale d = max|x| / 127, then
    32 int8 roundf(x * (1 / d)) (ggml's quantize_row_q8_0_ref, in float32 like
    it; roundf rounds half away from zero)."""
    x = rows.astype(np.float32).reshape(-1, QK)
    amax = np.abs(x).max(axis=1)
    d = amax / 127.0
    inv = np.divide(1.0, d, out=np.zeros_like(d), where=d != 0)
    v = x * inv[:, None]
    # roundf exactly: rint, except that exact halves go away from zero.  (Adding
    # 0.5 in float32 and truncating would round 0.49999997 up to 1.)
    t = np.trunc(v)
    q = np.clip(np.where(np.abs(v - t) == 0.5, t + np.sign(v), np.rint(v)), -128, 127).astype(np.int8)
    out = np.empty(len(x), dtype=[("d", "<f2"), ("qs", "i1", QK)])
    out["d"], out["qs"] = d.astype(np.float16), q
    return out.tobytes()


def quantize_q5_1(rows):
    """ggml's block_q5_1 for each 32 values: f16 step d = (max - min) / 31 and
    f16 minimum m, the fifth bits of the 32 codes packed in a u32, then the low
    nibbles of codes j and j + 16 in byte j (ggml's quantize_row_q5_1_ref)."""
    x = rows.astype(np.float32).reshape(-1, QK)
    lo, hi = x.min(axis=1), x.max(axis=1)
    d = (hi - lo) / 31.0
    inv = np.divide(1.0, d, out=np.zeros_like(d), where=d != 0)
    codes = np.clip(((x - lo[:, None]) * inv[:, None] + 0.5).astype(np.int32), 0, 31).astype(np.uint32)
    qs = ((codes[:, :16] & 0x0F) | ((codes[:, 16:] & 0x0F) << 4)).astype(np.uint8)
    bits = (codes >> 4) & 1
    qh = (bits << np.arange(QK, dtype=np.uint32)).sum(axis=1, dtype=np.uint64).astype(np.uint32)
    out = np.empty(len(x), dtype=[("d", "<f2"), ("m", "<f2"), ("qh", "<u4"), ("qs", "u1", QK // 2)])
    out["d"], out["m"], out["qh"], out["qs"] = d.astype(np.float16), lo.astype(np.float16), qh, qs
    return out.tobytes()


QUANTIZERS = {"q8_0": quantize_q8_0, "q5_1": quantize_q5_1}


def convert(model_dir, mel_path, tok_path, out_path, weight_type="f16"):
    model_bin = os.path.join(model_dir, "model.bin")
    spec, v = read_ct2(model_bin)
    if spec != "WhisperSpec":
        raise ConvertError(f"{model_bin}: spec is {spec!r}, not a Whisper model")

    def get(name):
        if name not in v:
            raise ConvertError(f"{model_bin}: missing variable {name}")
        return v[name]

    def n_layers(side):
        return len({k.split("/")[1] for k in v if re.match(side + r"/layer_[0-9]+/", k)})

    n_enc, n_dec = n_layers("encoder"), n_layers("decoder")
    emb = get("decoder/embeddings/weight")
    n_vocab, n_text_state = emb.shape
    vocab_txt = os.path.join(model_dir, "vocabulary.txt")
    if os.path.exists(vocab_txt):
        with open(vocab_txt, encoding="utf-8") as f:
            n_lines = sum(1 for _ in f)
        if n_lines != n_vocab:
            raise ConvertError(f"{vocab_txt}: {n_lines} entries but the embedding has {n_vocab} rows")
    conv1 = get("encoder/conv1/weight")

    def n_heads(side, n_state):  # older conversions lack num_heads; Whisper's head size is 64
        return int(v[side + "/num_heads"]) if side + "/num_heads" in v else n_state // 64

    hparams = [
        n_vocab,
        get("encoder/position_encodings/encodings").shape[0],  # n_audio_ctx
        conv1.shape[0],                                         # n_audio_state
        n_heads("encoder", conv1.shape[0]),
        n_enc,
        get("decoder/position_encodings/encodings").shape[0],  # n_text_ctx
        n_text_state,
        n_heads("decoder", n_text_state),
        n_dec,
        conv1.shape[1],                                         # n_mels
        WEIGHT_TYPES[weight_type][0]                            # ftype
        + (GGML_QNT_VERSION * 1000 if weight_type != "f16" else 0),
    ]
    n_mels = hparams[9]

    tensors = []  # (openai_name, array), in OpenAI state_dict order

    def linear(dst, src, bias=True):
        tensors.append((dst + ".weight", get(src + "/weight")))
        if bias:
            tensors.append((dst + ".bias", get(src + "/bias")))

    def layer_norm(dst, src):
        tensors.append((dst + ".weight", get(src + "/gamma")))
        tensors.append((dst + ".bias", get(src + "/beta")))

    def split_qkv(dst, w, b, parts):
        ws, bs = np.split(w, len(parts)), np.split(b, len(parts))
        for part, pw, pb in zip(parts, ws, bs):
            tensors.append((f"{dst}.{part}.weight", pw))
            if part == "key":  # Whisper's key projection has no bias; CT2 stores zeros
                if np.any(pb != 0):
                    raise ConvertError(f"{model_bin}: non-zero key bias in {dst}, cannot map to whisper.cpp")
            else:
                tensors.append((f"{dst}.{part}.bias", pb))

    def block(dst, src, cross):
        sa = src + "/self_attention"
        split_qkv(dst + ".attn", get(sa + "/linear_0/weight"), get(sa + "/linear_0/bias"),
                  ["query", "key", "value"])
        linear(dst + ".attn.out", sa + "/linear_1")
        layer_norm(dst + ".attn_ln", sa + "/layer_norm")
        if cross:
            ca = src + "/attention"
            linear(dst + ".cross_attn.query", ca + "/linear_0")
            split_qkv(dst + ".cross_attn", get(ca + "/linear_1/weight"), get(ca + "/linear_1/bias"),
                      ["key", "value"])
            linear(dst + ".cross_attn.out", ca + "/linear_2")
            layer_norm(dst + ".cross_attn_ln", ca + "/layer_norm")
        linear(dst + ".mlp.0", src + "/ffn/linear_0")
        linear(dst + ".mlp.2", src + "/ffn/linear_1")
        layer_norm(dst + ".mlp_ln", src + "/ffn/layer_norm")

    tensors.append(("encoder.positional_embedding", get("encoder/position_encodings/encodings")))
    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    for i in range(n_enc):
        block(f"encoder.blocks.{i}", f"encoder/layer_{i}", cross=False)
    layer_norm("encoder.ln_post", "encoder/layer_norm")
    tensors.append(("decoder.positional_embedding", get("decoder/position_encodings/encodings")))
    tensors.append(("decoder.token_embedding.weight", emb))
    for i in range(n_dec):
        block(f"decoder.blocks.{i}", f"decoder/layer_{i}", cross=True)
    layer_norm("decoder.ln", "decoder/layer_norm")

    try:
        with np.load(mel_path) as npz:
            filters = npz[f"mel_{n_mels}"].astype("<f4")
    except (OSError, KeyError, ValueError) as e:
        raise ConvertError(f"{mel_path}: cannot read mel_{n_mels} filters: {e}")
    try:
        with open(tok_path, "rb") as f:
            tokens = [base64.b64decode(line.split()[0]) for line in f.read().splitlines() if line.strip()]
    except (OSError, ValueError) as e:
        raise ConvertError(f"{tok_path}: cannot read tiktoken vocabulary: {e}")

    tmp = out_path + ".tmp"
    try:
        write_ggml(tmp, hparams, filters, tokens, tensors, weight_type)
        os.replace(tmp, out_path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return hparams, len(tensors)


def write_ggml(path, hparams, filters, tokens, tensors, weight_type="f16"):
    with open(path, "wb") as out:
        out.write(struct.pack("<12i", GGML_MAGIC, *hparams))
        out.write(struct.pack("<2i", *filters.shape))
        out.write(filters.tobytes())
        out.write(struct.pack("<i", len(tokens)))
        for t in tokens:
            out.write(struct.pack("<i", len(t)) + t)
        for name, data in tensors:
            if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
                data = data.reshape(-1, 1)  # whisper.cpp expects [n_state, 1]
            f32 = data.ndim < 2 or name.endswith("conv1.bias") or name.endswith("conv2.bias") \
                or name.endswith("positional_embedding")
            data = np.ascontiguousarray(data, dtype="<f4" if f32 else "<f2")
            quantize = QUANTIZERS.get(weight_type) if data.ndim == 2 and not f32 else None
            if quantize and data.shape[-1] % QK:
                raise ConvertError(f"{name}: rows of {data.shape[-1]} values cannot be cut into {weight_type} blocks "
                                   f"of {QK}; this model can only be written with --type f16")
            ttype = WEIGHT_TYPES[weight_type][1] if quantize else (0 if f32 else 1)
            enc = name.encode("utf-8")
            out.write(struct.pack("<3i", data.ndim, len(enc), ttype))
            out.write(struct.pack(f"<{data.ndim}i", *reversed(data.shape)))
            out.write(enc)
            out.write(quantize(data) if quantize else data.tobytes())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model-dir", required=True, help="directory with CTranslate2 model.bin + vocabulary.txt")
    p.add_argument("--mel-filters", required=True, help="openai-whisper assets/mel_filters.npz")
    p.add_argument("--tokenizer", required=True, help="openai-whisper assets/gpt2.tiktoken (or multilingual.tiktoken)")
    p.add_argument("--out", required=True, help="output ggml .bin")
    p.add_argument("--type", default="f16", choices=sorted(WEIGHT_TYPES),
                   help="weight type of the 2-D matrices (default f16; q8_0 and q5_1 are ggml's quantized blocks)")
    a = p.parse_args(argv)
    try:
        hparams, n = convert(a.model_dir, a.mel_filters, a.tokenizer, a.out, a.type)
    except ConvertError as e:
        print(f"whisper_ct2_to_ggml: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"whisper_ct2_to_ggml: error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 1
    print(f"wrote {a.out}: {n} tensors, hparams {hparams}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
