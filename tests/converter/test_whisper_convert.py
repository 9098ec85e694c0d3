"""Tests for scripts/whisper_ct2_to_ggml.py (CTranslate2 Whisper -> whisper.cpp ggml),
in float16 and in ggml's q8_0 and q5_1 block formats (--type).

Run with the tools venv:  $HEARTH_CACHE/venv-tools/bin/python -m pytest tests/converter
The tests on the real tiny.en model need `scripts/fetch-models.sh --only stt` first;
the synthetic-model tests need nothing but numpy.
"""
import base64
import hashlib
import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
CONVERTER = ROOT / "scripts" / "whisper_ct2_to_ggml.py"
FETCH = ROOT / "scripts" / "fetch-models.sh"
CACHE = Path(os.environ.get("HEARTH_CACHE", Path.home() / ".cache" / "hearth"))
WHISPER = CACHE / "models" / "whisper"
CT2_DIR = WHISPER / "ct2-tiny.en"
MEL = WHISPER / "openai-assets" / "mel_filters.npz"
TIKTOKEN = WHISPER / "openai-assets" / "gpt2.tiktoken"

TINY_EN_HPARAMS = {  # whisper tiny.en, as whisper.cpp prints them
    "n_vocab": 51864, "n_audio_ctx": 1500, "n_audio_state": 384, "n_audio_head": 6,
    "n_audio_layer": 4, "n_text_ctx": 448, "n_text_state": 384, "n_text_head": 6,
    "n_text_layer": 4, "n_mels": 80, "ftype": 1,
}
QK = 32  # values per q8_0 / q5_1 block
# --type: header ftype (with ggml's quantization version 2 folded in), tensor type of the
# 2-D weight matrices, bytes per block of 32 values
QUANT = {"q8_0": (2007, 8, 34), "q5_1": (2009, 7, 24)}
BLOCK_BYTES = {8: 34, 7: 24}
ATTN = ["query.weight", "query.bias", "key.weight", "value.weight", "value.bias", "out.weight", "out.bias"]


def load_converter():
    spec = importlib.util.spec_from_file_location("whisper_ct2_to_ggml", CONVERTER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_converter(model_dir, out, mel=MEL, tok=TIKTOKEN, *extra):
    return subprocess.run(
        [sys.executable, str(CONVERTER), "--model-dir", str(model_dir), "--mel-filters", str(mel),
         "--tokenizer", str(tok), "--out", str(out), *extra],
        capture_output=True, text=True, timeout=300)


def read_ggml(path):
    """Parse a whisper.cpp ggml model file; returns (hparams, mel, tokens, tensors).

    A tensor is (type, ggml dims, data): f32/f16 data as an array in numpy order, quantized
    data (types 8 q8_0, 7 q5_1) as the raw bytes of its blocks."""
    buf = Path(path).read_bytes()
    pos = 0

    def ints(n):
        nonlocal pos
        vals = struct.unpack_from(f"<{n}i", buf, pos)
        pos += 4 * n
        return vals

    magic, *hp = ints(12)
    assert magic == 0x67676D6C, f"bad magic {magic:#x}"
    hparams = dict(zip(TINY_EN_HPARAMS, hp))
    n_mel, n_fft = ints(2)
    mel = np.frombuffer(buf, "<f4", n_mel * n_fft, pos).reshape(n_mel, n_fft)
    pos += 4 * n_mel * n_fft
    (n_tokens,) = ints(1)
    tokens = []
    for _ in range(n_tokens):
        (n,) = ints(1)
        tokens.append(buf[pos:pos + n])
        pos += n
    tensors = {}
    while pos < len(buf):
        n_dims, name_len, ftype = ints(3)
        ne = list(ints(n_dims))
        name = buf[pos:pos + name_len].decode()
        pos += name_len
        count = int(np.prod(ne))
        if ftype in BLOCK_BYTES:
            assert ne[0] % QK == 0, f"{name}: row of {ne[0]} in a block type"
            nbytes = count // QK * BLOCK_BYTES[ftype]
            data = buf[pos:pos + nbytes]
            assert len(data) == nbytes, f"{name}: truncated"
            pos += nbytes
        else:
            assert ftype in (0, 1), f"{name}: unexpected tensor type {ftype}"
            data = np.frombuffer(buf, "<f4" if ftype == 0 else "<f2", count, pos).reshape(list(reversed(ne)))
            pos += data.nbytes
        assert name not in tensors, f"duplicate tensor {name}"
        tensors[name] = (ftype, ne, data)
    assert pos == len(buf), "trailing bytes after the last tensor"
    return hparams, mel, tokens, tensors


def expected_names(n_enc, n_dec):
    names = ["encoder.positional_embedding", "encoder.conv1.weight", "encoder.conv1.bias",
             "encoder.conv2.weight", "encoder.conv2.bias", "encoder.ln_post.weight", "encoder.ln_post.bias",
             "decoder.positional_embedding", "decoder.token_embedding.weight", "decoder.ln.weight", "decoder.ln.bias"]
    mlp = ["mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias", "mlp_ln.weight", "mlp_ln.bias",
           "attn_ln.weight", "attn_ln.bias"]
    for i in range(n_enc):
        names += [f"encoder.blocks.{i}.{n}" for n in mlp + ["attn." + a for a in ATTN]]
    for i in range(n_dec):
        names += [f"decoder.blocks.{i}.{n}" for n in mlp + ["attn." + a for a in ATTN]
                  + ["cross_attn." + a for a in ATTN] + ["cross_attn_ln.weight", "cross_attn_ln.bias"]]
    return set(names)


def recorded_sha(var="GGML_TINY_EN_SHA256"):
    m = re.search(rf"^{var}=([0-9a-f]{{64}})$", FETCH.read_text(), re.M)
    assert m, f"{var} not found in {FETCH}"
    return m.group(1)


def dequantize(ttype, raw, shape):
    """ggml's dequantize_row_q8_0 / dequantize_row_q5_1, written from the block layouts
    (independently of the converter): float32 values in numpy order `shape`."""
    if ttype == 8:  # block_q8_0: f16 d, int8 qs[32]; x = d * q
        blocks = np.frombuffer(raw, [("d", "<f2"), ("qs", "i1", QK)])
        x = blocks["d"].astype(np.float32)[:, None] * blocks["qs"].astype(np.float32)
    elif ttype == 7:  # block_q5_1: f16 d, f16 m, u32 qh, u8 qs[16]; x = d * q + m
        blocks = np.frombuffer(raw, [("d", "<f2"), ("m", "<f2"), ("qh", "<u4"), ("qs", "u1", QK // 2)])
        codes = q5_1_codes(blocks)
        x = blocks["d"].astype(np.float32)[:, None] * codes + blocks["m"].astype(np.float32)[:, None]
    else:
        raise AssertionError(f"not a block type: {ttype}")
    return x.reshape(shape)


def q5_1_codes(blocks):
    """The 32 five-bit codes of each q5_1 block: value j's low four bits are the low
    (j < 16) or high (j >= 16) nibble of qs[j % 16], its fifth bit is bit j of qh."""
    qs = blocks["qs"].astype(np.uint32)
    low = np.concatenate([qs & 0x0F, qs >> 4], axis=1)
    high = (blocks["qh"][:, None] >> np.arange(QK, dtype=np.uint32)) & 1
    return (low | (high << 4)).astype(np.float32)


def f16_rounding(v):
    """The most rounding `v` to float16 can change it by: half a unit in the last place,
    relative for normal numbers, 2**-25 among the subnormals."""
    return np.maximum(np.abs(v) * 2.0 ** -11, 2.0 ** -25)


def q8_0_bound(x):
    """Largest error q8_0 may make on each value of `x` (rows of 32): half a step of
    d = max|x| / 127, plus the step's own rounding to f16 times the largest code."""
    amax = np.abs(x.reshape(-1, QK)).max(axis=1, keepdims=True)
    d = amax / 127
    return (0.5 * d + 127 * f16_rounding(d) + 1e-6 * amax).repeat(QK, axis=1).reshape(x.shape)


def q5_1_bound(x):
    """Largest error q5_1 may make on each value of `x`: half a step of
    d = (max - min) / 31, plus the f16 rounding of d (times the largest code, 31) and of
    the minimum."""
    rows = x.reshape(-1, QK)
    lo, hi = rows.min(axis=1, keepdims=True), rows.max(axis=1, keepdims=True)
    d = (hi - lo) / 31
    bound = 0.5 * d + 31 * f16_rounding(d) + f16_rounding(lo) + 1e-6 * (np.abs(lo) + np.abs(hi))
    return bound.repeat(QK, axis=1).reshape(x.shape)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- real tiny.en model

@pytest.fixture(scope="session")
def real_inputs():
    missing = [str(p) for p in (CT2_DIR / "model.bin", CT2_DIR / "vocabulary.txt", MEL, TIKTOKEN) if not p.exists()]
    if missing:
        pytest.fail("converter inputs missing: " + ", ".join(missing)
                    + " - run scripts/fetch-models.sh --only stt first")
    return CT2_DIR


@pytest.fixture(scope="session")
def converted(real_inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("ggml") / "ggml-tiny.en.bin"
    r = run_converter(real_inputs, out)
    assert r.returncode == 0, r.stderr
    assert "167 tensors" in r.stdout
    return out


@pytest.fixture(scope="session")
def parsed(converted):
    return read_ggml(converted)


def test_magic_and_hparams(parsed):
    hparams, mel, tokens, _ = parsed
    assert hparams == TINY_EN_HPARAMS
    assert mel.shape == (80, 201)
    assert np.all(mel >= 0) and mel.max() > 0
    assert len(tokens) == 50256  # gpt2.tiktoken; whisper.cpp adds the special tokens itself
    assert tokens[0] == b"!" and tokens[220] == b" "


def test_tensor_count_names_and_shapes(parsed):
    _, _, _, tensors = parsed
    assert len(tensors) == 167
    assert set(tensors) == expected_names(4, 4)
    # (ftype, ggml dims = numpy shape reversed)
    assert tensors["encoder.conv1.weight"][:2] == (1, [3, 80, 384])
    assert tensors["encoder.conv1.bias"][:2] == (0, [1, 384])
    assert tensors["encoder.conv2.weight"][:2] == (1, [3, 384, 384])
    assert tensors["encoder.conv2.bias"][:2] == (0, [1, 384])
    assert tensors["encoder.positional_embedding"][:2] == (0, [384, 1500])
    assert tensors["decoder.positional_embedding"][:2] == (0, [384, 448])
    assert tensors["decoder.token_embedding.weight"][:2] == (1, [384, 51864])
    assert tensors["encoder.blocks.0.attn.query.weight"][:2] == (1, [384, 384])
    assert tensors["encoder.blocks.0.attn.query.bias"][:2] == (0, [384])
    assert tensors["decoder.blocks.3.cross_attn.key.weight"][:2] == (1, [384, 384])
    assert tensors["decoder.blocks.3.mlp.0.weight"][:2] == (1, [384, 1536])
    assert tensors["decoder.blocks.3.mlp.2.weight"][:2] == (1, [1536, 384])
    assert tensors["decoder.ln.bias"][:2] == (0, [384])
    assert "encoder.blocks.0.attn.key.bias" not in tensors


def test_fused_qkv_is_split_in_order(parsed, real_inputs):
    _, _, _, tensors = parsed
    _, ct2 = load_converter().read_ct2(str(real_inputs / "model.bin"))
    fused = ct2["encoder/layer_2/self_attention/linear_0/weight"]
    for i, part in enumerate(["query", "key", "value"]):
        got = tensors[f"encoder.blocks.2.attn.{part}.weight"][2]
        assert np.array_equal(got, fused[i * 384:(i + 1) * 384])
    kv_bias = ct2["decoder/layer_1/attention/linear_1/bias"]
    assert np.array_equal(tensors["decoder.blocks.1.cross_attn.value.bias"][2], kv_bias[384:].astype(np.float32))
    assert np.array_equal(tensors["decoder.blocks.1.cross_attn.query.weight"][2],
                          ct2["decoder/layer_1/attention/linear_0/weight"])


def test_output_is_deterministic_and_matches_recorded_sha(converted):
    want = recorded_sha()
    assert sha256(converted) == want
    fetched = WHISPER / "ggml-tiny.en.bin"
    if fetched.exists():
        assert sha256(fetched) == want


@pytest.mark.parametrize("keep", [100, 4096, 75_000_000])
def test_truncated_model_bin_gives_clear_error(real_inputs, tmp_path, keep):
    bad = tmp_path / "ct2"
    bad.mkdir()
    with open(real_inputs / "model.bin", "rb") as src:
        (bad / "model.bin").write_bytes(src.read(keep))
    shutil.copy(real_inputs / "vocabulary.txt", bad / "vocabulary.txt")
    out = tmp_path / "out.bin"
    r = run_converter(bad, out)
    assert r.returncode != 0
    assert str(bad / "model.bin") in r.stderr
    assert "truncated" in r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists() and not Path(str(out) + ".tmp").exists()


def test_missing_model_dir_gives_clear_error(tmp_path):
    r = run_converter(tmp_path / "nope", tmp_path / "out.bin")
    assert r.returncode != 0
    assert "model.bin" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------- synthetic model (numpy only)

def _ct2_string(s):
    b = s.encode() + b"\0"
    return struct.pack("<H", len(b)) + b


def write_synthetic_ct2(path, n_state=16, n_heads=2, n_enc=1, n_dec=2, n_vocab=12, n_mels=80,
                        key_bias=0.0, dtype=np.float32):
    """A tiny random Whisper model in CTranslate2's model.bin layout (binary version 6)."""
    rng = np.random.default_rng(0)
    ff = 4 * n_state
    v = {}

    def lin(name, out_dim, in_dim):
        v[name + "/weight"] = rng.standard_normal((out_dim, in_dim)).astype(dtype)
        v[name + "/bias"] = rng.standard_normal(out_dim).astype(dtype)

    def ln(name):
        v[name + "/gamma"] = rng.standard_normal(n_state).astype(dtype)
        v[name + "/beta"] = rng.standard_normal(n_state).astype(dtype)

    def self_attn(scope):
        lin(scope + "/linear_0", 3 * n_state, n_state)
        v[scope + "/linear_0/bias"][n_state:2 * n_state] = key_bias
        lin(scope + "/linear_1", n_state, n_state)
        ln(scope + "/layer_norm")

    def ffn(scope):
        lin(scope + "/linear_0", ff, n_state)
        lin(scope + "/linear_1", n_state, ff)
        ln(scope + "/layer_norm")

    v["encoder/conv1/weight"] = rng.standard_normal((n_state, n_mels, 3)).astype(dtype)
    v["encoder/conv1/bias"] = rng.standard_normal(n_state).astype(dtype)
    v["encoder/conv2/weight"] = rng.standard_normal((n_state, n_state, 3)).astype(dtype)
    v["encoder/conv2/bias"] = rng.standard_normal(n_state).astype(dtype)
    v["encoder/position_encodings/encodings"] = rng.standard_normal((30, n_state)).astype(dtype)
    v["encoder/num_heads"] = np.array(n_heads, np.int16)
    for i in range(n_enc):
        self_attn(f"encoder/layer_{i}/self_attention")
        ffn(f"encoder/layer_{i}/ffn")
    ln("encoder/layer_norm")
    v["decoder/embeddings/weight"] = rng.standard_normal((n_vocab, n_state)).astype(dtype)
    v["decoder/position_encodings/encodings"] = rng.standard_normal((8, n_state)).astype(dtype)
    v["decoder/num_heads"] = np.array(n_heads, np.int16)
    v["decoder/scale_embeddings"] = np.array(0, np.int8)
    for i in range(n_dec):
        self_attn(f"decoder/layer_{i}/self_attention")
        lin(f"decoder/layer_{i}/attention/linear_0", n_state, n_state)
        lin(f"decoder/layer_{i}/attention/linear_1", 2 * n_state, n_state)
        v[f"decoder/layer_{i}/attention/linear_1/bias"][:n_state] = key_bias
        lin(f"decoder/layer_{i}/attention/linear_2", n_state, n_state)
        ln(f"decoder/layer_{i}/attention/layer_norm")
        ffn(f"decoder/layer_{i}/ffn")
    ln("decoder/layer_norm")

    type_ids = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.float16): 4}
    out = bytearray(struct.pack("<I", 6) + _ct2_string("WhisperSpec") + struct.pack("<II", 3, len(v)))
    for name in sorted(v):
        a = v[name]
        out += _ct2_string(name) + struct.pack(f"<B{a.ndim}I", a.ndim, *a.shape)
        out += struct.pack("<BI", type_ids[a.dtype], a.nbytes) + a.tobytes()
    out += struct.pack("<I", 1) + _ct2_string("decoder/projection/weight") + _ct2_string("decoder/embeddings/weight")
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.bin").write_bytes(bytes(out))
    (path / "vocabulary.txt").write_text("".join(f"t{i}\n" for i in range(n_vocab)))
    return v


@pytest.fixture
def synthetic_assets(tmp_path):
    mel = tmp_path / "mel_filters.npz"
    np.savez(mel, mel_80=np.linspace(0, 1, 80 * 201, dtype=np.float32).reshape(80, 201))
    tok = tmp_path / "gpt2.tiktoken"
    tok.write_bytes(b"".join(base64.b64encode(t) + b" %d\n" % i for i, t in enumerate([b"a", b"b", b" hello"])))
    return mel, tok


def test_synthetic_model_converts(tmp_path, synthetic_assets):
    mel, tok = synthetic_assets
    v = write_synthetic_ct2(tmp_path / "ct2")
    out = tmp_path / "out.bin"
    r = run_converter(tmp_path / "ct2", out, mel, tok)
    assert r.returncode == 0, r.stderr
    hparams, mel_out, tokens, tensors = read_ggml(out)
    assert list(hparams.values()) == [12, 30, 16, 2, 1, 8, 16, 2, 2, 80, 1]
    assert mel_out.shape == (80, 201) and mel_out[79, 200] == 1.0
    assert tokens == [b"a", b"b", b" hello"]
    assert set(tensors) == expected_names(1, 2)
    # float32 source: 2-D+ weights become f16, 1-D stay f32
    ftype, ne, data = tensors["decoder.blocks.1.attn.value.weight"]
    assert (ftype, ne) == (1, [16, 16])
    assert np.array_equal(data, v["decoder/layer_1/self_attention/linear_0/weight"][32:].astype(np.float16))
    ftype, ne, data = tensors["decoder.blocks.0.cross_attn.value.bias"]
    assert (ftype, ne) == (0, [16])
    assert np.array_equal(data, v["decoder/layer_0/attention/linear_1/bias"][16:])
    assert tensors["encoder.conv1.bias"][:2] == (0, [1, 16])
    # same inputs, same bytes
    out2 = tmp_path / "out2.bin"
    assert run_converter(tmp_path / "ct2", out2, mel, tok).returncode == 0
    assert out.read_bytes() == out2.read_bytes()


def test_nonzero_key_bias_is_rejected(tmp_path, synthetic_assets):
    mel, tok = synthetic_assets
    write_synthetic_ct2(tmp_path / "ct2", key_bias=0.5)
    r = run_converter(tmp_path / "ct2", tmp_path / "out.bin", mel, tok)
    assert r.returncode != 0
    assert "key bias" in r.stderr


def test_wrong_vocabulary_size_is_rejected(tmp_path, synthetic_assets):
    mel, tok = synthetic_assets
    write_synthetic_ct2(tmp_path / "ct2")
    (tmp_path / "ct2" / "vocabulary.txt").write_text("only\ntwo\n")
    r = run_converter(tmp_path / "ct2", tmp_path / "out.bin", mel, tok)
    assert r.returncode != 0
    assert "vocabulary.txt" in r.stderr


# ---------------------------------------------------------------- quantized blocks (numpy only)

def test_q8_0_blocks_are_ggml_s_and_within_half_a_step():
    conv = load_converter()
    rng = np.random.default_rng(1)
    scales = np.repeat(np.float32([1e-4, 0.02, 1.0, 30.0]), 8 * QK)  # a block per row of 32 each
    x = (rng.standard_normal((4, 8 * QK)).astype(np.float32) * scales.reshape(4, -1)).astype(np.float16)
    x[0, :QK] = 0  # an all-zero block: scale 0, codes 0
    x[1, 5] = 8.0  # one outlier sets its block's scale
    raw = conv.quantize_q8_0(x)
    assert len(raw) == x.size // QK * 34
    blocks = np.frombuffer(raw, [("d", "<f2"), ("qs", "i1", QK)])
    assert blocks["d"][0] == 0 and not blocks["qs"][0].any()
    # the largest magnitude of each block gets code +-127
    assert np.all(np.abs(blocks["qs"][1:]).max(axis=1) == 127)
    xf = x.astype(np.float32)
    # the codes are C's roundf(x * (1 / d)) in float32, halves away from zero
    d = np.abs(xf.reshape(-1, QK)).max(axis=1) / np.float32(127)
    inv = np.where(d != 0, np.float32(1) / np.where(d != 0, d, 1), 0).astype(np.float32)
    v = (xf.reshape(-1, QK) * inv[:, None]).astype(np.float64)
    assert np.array_equal(blocks["qs"], (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int8))
    err = np.abs(dequantize(8, raw, x.shape) - xf)
    assert np.all(err <= q8_0_bound(xf)), err.max()


def test_q8_0_rounds_halves_away_from_zero_like_roundf():
    conv = load_converter()
    # max 127 makes d = 1 exactly: the codes are round(x); 0.49999997 must not become 1
    x = np.zeros(QK, np.float32)
    x[:6] = [127, 0.5, -0.5, 2.5, -2.5, np.nextafter(np.float32(0.5), np.float32(0))]
    qs = np.frombuffer(conv.quantize_q8_0(x), [("d", "<f2"), ("qs", "i1", QK)])["qs"][0]
    assert list(qs[:6]) == [127, 1, -1, 3, -3, 0]


def test_q5_1_blocks_are_ggml_s_and_within_half_a_step():
    conv = load_converter()
    # exact codes: a block whose values are 0..31 in shuffled places (d = 1, m = 0), which
    # checks where each code's nibble and fifth bit are stored
    rng = np.random.default_rng(2)
    perm = rng.permutation(QK).astype(np.float32)
    raw = conv.quantize_q5_1(perm)
    assert len(raw) == 24
    block = np.frombuffer(raw, [("d", "<f2"), ("m", "<f2"), ("qh", "<u4"), ("qs", "u1", QK // 2)])
    assert (block["d"][0], block["m"][0]) == (1.0, 0.0)
    assert np.array_equal(q5_1_codes(block)[0], perm)
    # random rows at several scales, an offset block, a constant block
    scales = np.repeat(np.float32([1e-4, 0.02, 1.0, 30.0]), 8 * QK)
    x = (rng.standard_normal((4, 8 * QK)).astype(np.float32) * scales.reshape(4, -1)).astype(np.float16)
    x[2, QK:2 * QK] += np.float16(5)
    x[3, :QK] = np.float16(-1.5)
    xf = x.astype(np.float32)
    raw = conv.quantize_q5_1(x)
    assert len(raw) == x.size // QK * 24
    codes = q5_1_codes(np.frombuffer(raw, [("d", "<f2"), ("m", "<f2"), ("qh", "<u4"), ("qs", "u1", QK // 2)]))
    assert codes.min() == 0 and codes.max() == 31
    err = np.abs(dequantize(7, raw, x.shape) - xf)
    assert np.all(err <= q5_1_bound(xf)), err.max()
    assert np.all(dequantize(7, raw, x.shape)[3, :QK] == np.float32(-1.5))


@pytest.mark.parametrize("wtype", sorted(QUANT))
def test_quantized_synthetic_model(tmp_path, synthetic_assets, wtype):
    mel, tok = synthetic_assets
    v = write_synthetic_ct2(tmp_path / "ct2", n_state=32, n_vocab=12)
    out = tmp_path / "out.bin"
    r = run_converter(tmp_path / "ct2", out, mel, tok, "--type", wtype)
    assert r.returncode == 0, r.stderr
    ftype, qtype, _ = QUANT[wtype]
    hparams, _, tokens, tensors = read_ggml(out)
    assert hparams["ftype"] == ftype
    assert hparams["ftype"] % 1000 == {"q8_0": 7, "q5_1": 9}[wtype]  # GGML_FTYPE_MOSTLY_*
    assert tokens == [b"a", b"b", b" hello"]
    assert set(tensors) == expected_names(1, 2)
    for name, (ttype, ne, data) in tensors.items():
        if name in ("encoder.conv1.weight", "encoder.conv2.weight"):
            want = 1  # 3-D conv kernels stay f16, as whisper.cpp allocates them
        elif name.endswith("positional_embedding") or len(ne) == 1 or name.endswith(("conv1.bias", "conv2.bias")):
            want = 0  # biases, norms, positional embeddings: f32
        else:
            want = qtype  # every 2-D weight matrix
            assert len(ne) == 2 and name.endswith(".weight"), name
        assert ttype == want, f"{name}: type {ttype}, expected {want}"
    # dequantized weights are the (f16) input within the format's error bound
    bound = {"q8_0": q8_0_bound, "q5_1": q5_1_bound}[wtype]
    for name, src in [("decoder.blocks.1.attn.value.weight", v["decoder/layer_1/self_attention/linear_0/weight"][64:]),
                      ("encoder.blocks.0.mlp.2.weight", v["encoder/layer_0/ffn/linear_1/weight"]),
                      ("decoder.token_embedding.weight", v["decoder/embeddings/weight"])]:
        ttype, ne, raw = tensors[name]
        assert ne == list(reversed(src.shape))
        want = src.astype(np.float16).astype(np.float32)
        err = np.abs(dequantize(ttype, raw, src.shape) - want)
        assert np.all(err <= bound(want)), f"{name}: error {err.max()}"
    assert np.array_equal(tensors["decoder.blocks.0.cross_attn.value.bias"][2], v["decoder/layer_0/attention/linear_1/bias"][32:])
    # deterministic
    out2 = tmp_path / "out2.bin"
    assert run_converter(tmp_path / "ct2", out2, mel, tok, "--type", wtype).returncode == 0
    assert out.read_bytes() == out2.read_bytes()


@pytest.mark.parametrize("wtype", sorted(QUANT))
def test_rows_not_a_multiple_of_32_are_refused(tmp_path, synthetic_assets, wtype):
    mel, tok = synthetic_assets
    write_synthetic_ct2(tmp_path / "ct2", n_state=16)
    out = tmp_path / "out.bin"
    r = run_converter(tmp_path / "ct2", out, mel, tok, "--type", wtype)
    assert r.returncode == 1
    assert "rows of 16 values cannot be cut into" in r.stderr and "blocks of 32" in r.stderr, r.stderr
    assert "--type f16" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists() and not Path(str(out) + ".tmp").exists()
    # the same model converts as f16
    assert run_converter(tmp_path / "ct2", out, mel, tok, "--type", "f16").returncode == 0


def test_unknown_type_is_refused(tmp_path, synthetic_assets):
    mel, tok = synthetic_assets
    write_synthetic_ct2(tmp_path / "ct2")
    r = run_converter(tmp_path / "ct2", tmp_path / "out.bin", mel, tok, "--type", "q4_0")
    assert r.returncode == 2 and "invalid choice" in r.stderr and "q8_0" in r.stderr


# ---------------------------------------------------------------- quantized real tiny.en model

@pytest.mark.parametrize("wtype", sorted(QUANT))
def test_quantized_tiny_en_matches_recorded_sha(real_inputs, tmp_path, wtype):
    out = tmp_path / f"ggml-tiny.en-{wtype}.bin"
    r = run_converter(real_inputs, out, MEL, TIKTOKEN, "--type", wtype)
    assert r.returncode == 0, r.stderr
    hparams, _, _, tensors = read_ggml(out)
    assert hparams == {**TINY_EN_HPARAMS, "ftype": QUANT[wtype][0]}
    assert len(tensors) == 167
    qtype = QUANT[wtype][1]
    assert tensors["decoder.token_embedding.weight"][:2] == (qtype, [384, 51864])
    assert tensors["encoder.blocks.3.mlp.0.weight"][:2] == (qtype, [384, 1536])
    assert tensors["encoder.conv2.weight"][:2] == (1, [3, 384, 384])
    assert tensors["encoder.positional_embedding"][:2] == (0, [384, 1500])
    want = recorded_sha(f"GGML_TINY_EN_{wtype.upper()}_SHA256")
    assert sha256(out) == want
    fetched = WHISPER / out.name
    if fetched.exists():
        assert sha256(fetched) == want
