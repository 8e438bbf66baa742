#!/usr/bin/env python3
"""Write reference outputs that the Rust engine's tests must match (within 1e-4).

An independent implementation of what Benchtop computes — onnxruntime and tokenizers from PyPI,
numpy for pooling and activations — run one text at a time (no padding involved), for a fixed set
of inputs: ordinary sentences, empty and whitespace-only text, emoji, CJK, right-to-left scripts,
and a 100,000-character text that must be truncated.

Output: `<out>/<model>.json` = {"model", "max_length", "cases": [{"text", "tokens", "truncated",
"embedding" | "logits"}]}.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchtop_models import MODELS_DIR, default_models_dir, feeds, load_tokenizer, max_length, read_json, session, write_json

INPUTS = [
    "I was charged twice for my subscription this month.",
    "The app crashes every time I open the settings page.",
    "How do I enable two-factor authentication?",
    "Do you offer volume discounts for 200+ seats?",
    "I love the new dashboard design, great job!",
    "What are your office hours?",
    "",
    "   \t  \n ",
    "Great product 🎉🚀 but the export 💥 keeps failing 😡",
    "我的账户被锁定了，请帮我解锁。",
    "لا أستطيع تسجيل الدخول إلى حسابي منذ الأمس",
    "שלום, החשבון שלי נחסם",
    "Mixed: café naïve résumé — ½ ≠ 0.5 ™",
    "word " * 20000,
]


def reference(folder: Path) -> dict:
    config = read_json(folder / "config.json")
    manifest = read_json(folder / "benchtop.json") if (folder / "benchtop.json").is_file() else {}
    classify = "id2label" in config and manifest.get("task", "classification") == "classification"
    tok, sess = load_tokenizer(folder), session(folder / "model.onnx")
    cases = []
    for text in INPUTS:
        enc = tok.encode(text)
        out = sess.run(None, feeds(sess, [enc.ids], [enc.attention_mask], [enc.type_ids]))[0][0]
        case = {"text": text, "tokens": len(enc.ids), "truncated": len(enc.overflowing) > 0}
        if classify:
            case["logits"] = out.tolist()
        else:
            if manifest.get("pooling", "mean") == "cls":
                vec = out[0]
            else:
                vec = out.mean(axis=0)  # one text, no padding: every position is attended
            if manifest.get("normalize", True):
                vec = vec / max(np.linalg.norm(vec), 1e-12)
            case["embedding"] = vec.tolist()
        cases.append(case)
    return {"model": folder.name, "max_length": max_length(folder), "cases": cases}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models-dir", type=Path, default=default_models_dir())
    ap.add_argument("--out", type=Path, default=MODELS_DIR / "build" / "golden")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    folders = [args.models_dir / "minilm-l6-v2", args.models_dir / "support-triage",
               MODELS_DIR / "fixtures" / "tiny-multilabel", MODELS_DIR / "fixtures" / "tiny-cls-embed"]
    for folder in folders:
        write_json(args.out / f"{folder.name}.json", reference(folder))
    print(f"golden references for {len(folders)} models in {args.out}")


if __name__ == "__main__":
    main()
