"""The baseline: how teams usually serve a model — Flask + onnxruntime + tokenizers, run under
gunicorn (`gunicorn -w 2 bench.flask_app:app`). Same model files as Benchtop, same request and
response shapes for /v1/embeddings and /v1/predict, one ONNX Runtime thread per worker (two workers
on two cores). Texts are truncated at the model's limit and a multi-text request is padded to its
longest text, with the usual 0/1 attention mask; the benchmark sends one text per request, so
nothing is padded and each call runs the same tensors Benchtop's engine would run for that text
alone. (Benchtop packs the texts of concurrent requests into one row instead — that, the
batching, is the difference being measured.) No logging, no auth: the baseline only has to answer.

Models come from BENCHTOP_MODELS (default: the cache's default models).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from flask import Flask, jsonify, request
from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models"))
from benchtop_models import default_models_dir, feeds, max_length, read_json, session  # noqa: E402

MODELS = Path(os.environ.get("BENCHTOP_MODELS", str(default_models_dir())))
THREADS = int(os.environ.get("BASELINE_THREADS", "1"))


class Loaded:
    def __init__(self, folder: Path):
        self.tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tok.enable_padding(pad_id=0, pad_token="[PAD]")
        self.tok.enable_truncation(max_length(folder))
        self.sess = session(folder / "model.onnx", THREADS)
        config = read_json(folder / "config.json")
        self.labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))] if "id2label" in config else []

    def run(self, texts):
        encs = self.tok.encode_batch(texts)
        ids = [e.ids for e in encs]
        mask = [e.attention_mask for e in encs]
        types = [e.type_ids for e in encs]
        out = self.sess.run(None, feeds(self.sess, ids, mask, types))[0]
        return out, np.asarray(mask), sum(sum(m) for m in mask)


models = {
    "minilm-l6-v2": Loaded(MODELS / "minilm-l6-v2"),
    "support-triage": Loaded(MODELS / "support-triage"),
}
app = Flask(__name__)


def texts_of(body):
    text = body.get("input")
    return [text] if isinstance(text, str) else list(text)


@app.post("/v1/embeddings")
def embeddings():
    body = request.get_json()
    model = models[body["model"]]
    out, mask, tokens = model.run(texts_of(body))
    m = mask[..., None].astype(np.float32)
    pooled = (out * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    data = [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(pooled)]
    return jsonify({"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


@app.post("/v1/predict")
def predict():
    body = request.get_json()
    model = models[body["model"]]
    logits, _, tokens = model.run(texts_of(body))
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = z / z.sum(axis=1, keepdims=True)
    data = []
    for i, row in enumerate(probs):
        order = np.argsort(-row)
        scores = [{"label": model.labels[j], "score": float(row[j])} for j in order]
        data.append({"index": i, "label": scores[0]["label"], "score": scores[0]["score"], "scores": scores})
    return jsonify({"object": "prediction", "model": body["model"], "data": data, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


@app.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})
