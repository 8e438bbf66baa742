"""Shared helpers for the scripts that fetch ONNX Runtime and build Benchtop's models and their
references. Importing this module needs only the standard library (numpy, onnxruntime and
tokenizers are imported where used).

The Python side exists to *make* models and to check the Rust engine against an independent
implementation (onnxruntime + tokenizers from PyPI); Benchtop itself never runs Python.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent
REPO = MODELS_DIR.parent


def cache_dir() -> Path:
    """Benchtop's cache directory; the same rule as the Rust side (`BENCHTOP_CACHE_DIR` first)."""
    if os.environ.get("BENCHTOP_CACHE_DIR"):
        return Path(os.environ["BENCHTOP_CACHE_DIR"])
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "benchtop"
    if sys.platform.startswith("win"):
        return Path(os.environ.get("LOCALAPPDATA", Path.home())) / "benchtop" / "cache"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "benchtop"


def default_models_dir() -> Path:
    return cache_dir() / "models"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def max_length(folder: Path) -> int:
    """The truncation length Benchtop uses for a folder: `benchtop.json`'s `max_length`, else the
    model's position limit. Mirrors the Rust engine so the references tokenize identically."""
    manifest = folder / "benchtop.json"
    if manifest.is_file() and "max_length" in read_json(manifest):
        return int(read_json(manifest)["max_length"])
    limits = []
    config = read_json(folder / "config.json")
    if "max_position_embeddings" in config:
        limits.append(int(config["max_position_embeddings"]))
    tc = folder / "tokenizer_config.json"
    if tc.is_file() and int(read_json(tc).get("model_max_length", 1 << 30)) < 1 << 20:
        limits.append(int(read_json(tc)["model_max_length"]))
    return min(limits) if limits else 512


def load_tokenizer(folder: Path):
    """The folder's tokenizer with Benchtop's overrides: no padding, truncation at `max_length`."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length(folder))
    return tok


def session(path: Path, threads: int = 1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def feeds(sess, ids, mask, type_ids) -> dict:
    """Inputs named the way BERT-style exports name them; only those the graph declares."""
    import numpy as np

    available = {
        "input_ids": np.asarray(ids, dtype=np.int64),
        "attention_mask": np.asarray(mask, dtype=np.int64),
        "token_type_ids": np.asarray(type_ids, dtype=np.int64),
    }
    return {i.name: available[i.name] for i in sess.get_inputs()}


def mean_pool_normalize(hidden, mask):
    """Masked mean over positions, then L2 normalisation, row by row."""
    import numpy as np

    m = mask.astype(np.float32)[..., None]
    pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def embed_one_by_one(folder: Path, texts: list[str], threads: int = 1):
    """Mean-pooled, normalised embeddings, one text per run (so no padding is involved)."""
    import numpy as np

    tok, sess = load_tokenizer(folder), session(folder / "model.onnx", threads)
    out = []
    for text in texts:
        enc = tok.encode(text)
        hidden = sess.run(None, feeds(sess, [enc.ids], [enc.attention_mask], [enc.type_ids]))[0]
        out.append(mean_pool_normalize(hidden, np.asarray([enc.attention_mask]))[0])
    return np.stack(out)
