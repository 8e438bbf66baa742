#!/usr/bin/env python3
"""Train the `support-triage` head: multinomial logistic regression over MiniLM sentence
embeddings (mean pooled, L2 normalised), on `data/support_triage.csv`'s train split.

Writes `support-triage/head.json` (labels, weight [384 x labels], bias) and
`support-triage/metrics.json` (held-out accuracy, per-label precision/recall, confusion matrix).
`build.py` then appends the head to the MiniLM graph. Deterministic: full-batch gradient descent
from zeros; the L2 strength is chosen by 5-fold cross-validation on the train split only (fixed
fold seed), so the held-out split is looked at once, for the reported accuracy.

Run after the MiniLM model is built (`python models/build.py` builds it first).
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from benchtop_models import MODELS_DIR, default_models_dir, embed_one_by_one, write_json

LABELS = ["billing", "technical", "account", "sales", "feedback", "other"]


def load(split: str) -> tuple[list[str], np.ndarray]:
    with (MODELS_DIR / "data" / "support_triage.csv").open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == split]
    return [r["text"] for r in rows], np.array([LABELS.index(r["label"]) for r in rows])


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def train(x: np.ndarray, y: np.ndarray, steps: int, lr: float, l2: float) -> tuple[np.ndarray, np.ndarray]:
    w = np.zeros((x.shape[1], len(LABELS)), dtype=np.float64)
    b = np.zeros(len(LABELS), dtype=np.float64)
    onehot = np.eye(len(LABELS))[y]
    for _ in range(steps):
        grad = (softmax(x @ w + b) - onehot) / len(x)
        w -= lr * (x.T @ grad + l2 * w)
        b -= lr * grad.sum(axis=0)
    return w.astype(np.float32), b.astype(np.float32)


def choose_l2(x: np.ndarray, y: np.ndarray, grid: list[float], steps: int, lr: float) -> tuple[float, dict]:
    folds = np.array_split(np.random.default_rng(0).permutation(len(x)), 5)
    scores = {}
    for l2 in grid:
        accs = []
        for k, valid in enumerate(folds):
            fit = np.concatenate([f for j, f in enumerate(folds) if j != k])
            w, b = train(x[fit], y[fit], steps, lr, l2)
            accs.append(float(((x[valid] @ w + b).argmax(axis=1) == y[valid]).mean()))
        scores[l2] = round(float(np.mean(accs)), 4)
    return max(grid, key=lambda l2: scores[l2]), scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minilm", type=Path, default=default_models_dir() / "minilm-l6-v2")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--lr", type=float, default=4.0)
    ap.add_argument("--l2-grid", type=float, nargs="+", default=[1e-4, 1e-3, 3e-3, 1e-2, 3e-2])
    args = ap.parse_args()

    train_texts, y_train = load("train")
    test_texts, y_test = load("test")
    x_train = embed_one_by_one(args.minilm, train_texts, threads=2).astype(np.float64)
    x_test = embed_one_by_one(args.minilm, test_texts, threads=2).astype(np.float64)
    l2, cv = choose_l2(x_train, y_train, args.l2_grid, args.steps, args.lr)
    w, b = train(x_train, y_train, args.steps, args.lr, l2)

    pred = (x_test.astype(np.float32) @ w + b).argmax(axis=1)
    confusion = np.zeros((len(LABELS), len(LABELS)), dtype=int)
    for t, p in zip(y_test, pred):
        confusion[t, p] += 1
    per_label = {}
    for i, label in enumerate(LABELS):
        tp = confusion[i, i]
        per_label[label] = {
            "precision": round(float(tp / max(confusion[:, i].sum(), 1)), 4),
            "recall": round(float(tp / max(confusion[i].sum(), 1)), 4),
            "support": int(confusion[i].sum()),
        }
    train_acc = float(((x_train.astype(np.float32) @ w + b).argmax(axis=1) == y_train).mean())
    metrics = {
        "held_out_accuracy": round(float((pred == y_test).mean()), 4),
        "train_accuracy": round(train_acc, 4),
        "train_rows": len(train_texts),
        "test_rows": len(test_texts),
        "per_label": per_label,
        "confusion": {"labels": LABELS, "rows_true_cols_predicted": confusion.tolist()},
        "hyperparameters": {"steps": args.steps, "lr": args.lr, "l2": l2},
        "cross_validation_accuracy_by_l2": {str(k): v for k, v in cv.items()},
    }
    head = {"labels": LABELS, "weight": w.tolist(), "bias": b.tolist()}
    write_json(MODELS_DIR / "support-triage" / "head.json", head)
    write_json(MODELS_DIR / "support-triage" / "metrics.json", metrics)
    print(f"held-out accuracy {metrics['held_out_accuracy']:.4f} on {len(test_texts)} messages "
          f"(train {train_acc:.4f} on {len(train_texts)})")


if __name__ == "__main__":
    main()
