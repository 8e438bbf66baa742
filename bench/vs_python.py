#!/usr/bin/env python3
"""Benchtop's engine against the Python stack teams usually write, side by side, in one run.

The Python baseline is the same model file run by onnxruntime (same version, same threads, same
graph optimisation level) with HF `tokenizers`, padding each batch to its longest member (the
tokenizer.json's fixed 128-token padding turned off, as Benchtop does), truncation at 256, and
numpy for pooling / softmax. A second Python column keeps tokenizer.json's padding as shipped
(every input padded to 128), which is what copying the model folder as-is gives.

Rounds alternate Python and Benchtop, so drift on a busy machine hits both; each figure is the
median of the per-round means. Within a Benchtop round, end-to-end engine calls alternate call by
call with bare `session.run` calls on the same session and tensors (`time_calls`), which gives
the last column: the engine's overhead over raw ONNX Runtime. Also measured: a cold `benchtop predict` of one sentence (whole
process: start, load runtime and model, answer), wall time and peak RSS.

Run by `./dev bench`, which passes --benchtop; needs the venv from `./dev setup`.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "models"))
from benchtop_models import default_models_dir, max_length, read_json, session  # noqa: E402


class PythonStack:
    def __init__(self, folder: Path, threads: int, pad_as_shipped: bool):
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        if not pad_as_shipped:
            self.tok.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the batch's longest
        self.tok.enable_truncation(max_length(folder))
        self.sess = session(folder / "model.onnx", threads)
        self.classify = "id2label" in read_json(folder / "config.json") and folder.name != "minilm-l6-v2"

    def __call__(self, texts: list[str]):
        encs = self.tok.encode_batch(texts)
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        types = np.array([e.type_ids for e in encs], dtype=np.int64)
        out = self.sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
        if self.classify:
            z = np.exp(out - out.max(axis=1, keepdims=True))
            return z / z.sum(axis=1, keepdims=True)
        m = mask[..., None].astype(np.float32)
        pooled = (out * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def time_python(fn, texts, iters):
    for _ in range(max(3, iters // 5)):
        fn(texts)
    out = []
    for _ in range(iters):
        t = time.perf_counter()
        fn(texts)
        out.append((time.perf_counter() - t) * 1e3)
    return statistics.mean(out)


def time_benchtop(example: Path, model: str, batch: int, iters: int, texts_file: Path) -> tuple[float, float]:
    """Mean ms per call of the engine and of raw session.run, measured paired in one process."""
    line = subprocess.run([str(example), model, str(batch), str(iters), str(texts_file)],
                          check=True, capture_output=True, text=True).stdout
    result = json.loads(line)
    return statistics.mean(result["engine_ms"]), statistics.mean(result["raw_ms"])


# Runs in a small fresh interpreter: a child forked from this process would count this process's
# memory (several loaded sessions) in its peak RSS until it execs.
COLD_START = """
import json, os, subprocess, sys, time
t = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"ms": (time.perf_counter() - t) * 1e3, "status": status, "maxrss_kib": usage.ru_maxrss}))
"""


def cold_start(benchtop: Path, runs: int) -> tuple[float, float]:
    walls, rss = [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", COLD_START, str(benchtop), "predict",
                              "I was charged twice for my subscription this month"],
                             check=True, capture_output=True, text=True).stdout
        result = json.loads(out)
        if result["status"] != 0:
            sys.exit("benchtop predict failed")
        walls.append(result["ms"])
        rss.append(result["maxrss_kib"] / 1024)
    return statistics.median(walls), statistics.median(rss)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchtop", type=Path, required=True, help="the release `benchtop` binary")
    ap.add_argument("--example", type=Path, help="the `time_calls` example binary (built if omitted)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count() and min(os.cpu_count(), 8))
    args = ap.parse_args()
    example = args.example
    if example is None:
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "benchtop-core", "--example", "time_calls"],
                       check=True, cwd=REPO)
        example = Path(args.benchtop).parent / "examples" / "time_calls"
    texts_file = REPO / "bench" / "texts.txt"
    texts = texts_file.read_text(encoding="utf-8").splitlines()
    print(f"threads {args.threads}; {args.rounds} alternating rounds; mean ms per call, median over rounds\n")
    print("| model | batch | Python (dynamic padding) | Python (padding as shipped) | Benchtop | speed-up vs best Python | raw session.run | Benchtop / raw |")
    print("|---|---|---|---|---|---|---|---|")
    for name in ["minilm-l6-v2", "support-triage"]:
        folder = default_models_dir() / name
        py = PythonStack(folder, args.threads, pad_as_shipped=False)
        shipped = PythonStack(folder, args.threads, pad_as_shipped=True)
        for batch in [1, 32]:
            batch_texts = (texts * 32)[:batch]
            iters = 200 if batch == 1 else 20
            rounds = {"py": [], "shipped": [], "bt": [], "raw": []}
            for _ in range(args.rounds):
                rounds["py"].append(time_python(py, batch_texts, iters))
                engine_ms, raw_ms = time_benchtop(example, name, batch, iters, texts_file)
                rounds["bt"].append(engine_ms)
                rounds["raw"].append(raw_ms)
                rounds["shipped"].append(time_python(shipped, batch_texts, max(iters // 4, 5)))
            m = {k: statistics.median(v) for k, v in rounds.items()}
            print(f"| {name} | {batch} | {m['py']:.3f} | {m['shipped']:.3f} | {m['bt']:.3f} | {m['py'] / m['bt']:.2f}× "
                  f"| {m['raw']:.3f} | {m['bt'] / m['raw']:.3f} |", flush=True)
    wall, rss = cold_start(args.benchtop, 7)
    print(f"\nCold `benchtop predict` of one sentence (median of 7): {wall:.0f} ms wall, peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
