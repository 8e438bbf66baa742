#!/usr/bin/env python3
"""Write greedy-decoding references that Benchtop's generation loop must match token for token.

An independent implementation of the decoding loop — onnxruntime, numpy and tokenizers from
PyPI, chat templates rendered by jinja2 the way Hugging Face transformers renders them
(sandboxed, `trim_blocks`, `lstrip_blocks`, `raise_exception`) — run on the decoder fixtures for
a fixed set of prompts. Each case is decoded twice, with the KV cache and by recomputing the
whole sequence every step, and the two must agree before anything is written.

Output: `<out>/generate-<model>.json` = {"model", "eos", "cases": [{"name", "prompt" | "messages",
"rendered", "prompt_ids", "max_new_tokens", "repetition_penalty", "ids", "text", "finish"}]}.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import jinja2
import jinja2.sandbox
import numpy as np
from tokenizers import Tokenizer

from benchtop_models import MODELS_DIR, read_json, session, write_json

PROMPTS = [
    ("short", "The app crashes when"),
    ("unicode", "Grüße 🙂 こんにちは — مرحبا"),
    ("one-char", "a"),
    ("long", "I was charged twice for my subscription this month and support has not answered. " * 12),
]
CHATS = [
    ("chat-default-system", [{"role": "user", "content": "How do I reset my password?"}]),
    ("chat-with-system", [{"role": "system", "content": "  You answer in one sentence.  "},
                          {"role": "user", "content": "What are your office hours?"},
                          {"role": "assistant", "content": "Nine to five."},
                          {"role": "user", "content": "  And on weekends?\n"}]),
]
MAX_NEW_TOKENS = 40


def render(template: str, messages: list[dict], special: dict) -> str:
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                       extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, add_generation_prompt=True, **special)


def token(value) -> str | None:
    return value.get("content") if isinstance(value, dict) else value


def decode(sess, inputs: set[str], kv_type, layers: int, kv_heads: int, head_dim: int, prompt: list[int],
           eos: set[int], penalty: float, use_cache: bool) -> tuple[list[int], str]:
    ids, out, past = list(prompt), [], None
    finish = "length"
    for _ in range(MAX_NEW_TOKENS):
        step = ids if past is None else ids[-1:]
        start = 0 if past is None else len(ids) - 1
        feeds = {"input_ids": np.array([step], dtype=np.int64),
                 "attention_mask": np.ones((1, len(ids)), dtype=np.int64)}
        if "position_ids" in inputs:
            feeds["position_ids"] = np.arange(start, start + len(step), dtype=np.int64)[None, :]
        for layer in range(layers):
            for kind in ("key", "value"):
                feeds[f"past_key_values.{layer}.{kind}"] = (
                    past[f"present.{layer}.{kind}"] if past is not None
                    else np.zeros((1, kv_heads, 0, head_dim), dtype=kv_type))
        names = [o.name for o in sess.get_outputs()]
        results = dict(zip(names, sess.run(None, feeds)))
        logits = results["logits"][0, -1].astype(np.float64)
        if penalty != 1.0:  # Hugging Face's rule: divide positive logits, multiply negative ones
            seen = np.array(sorted(set(ids)))
            logits[seen] = np.where(logits[seen] > 0, logits[seen] / penalty, logits[seen] * penalty)
        nxt = int(np.argmax(logits))
        if nxt in eos:
            finish = "stop"
            break
        ids.append(nxt)
        out.append(nxt)
        if use_cache:
            past = results
    return out, finish


def reference(folder: Path) -> dict:
    config, generation = read_json(folder / "config.json"), read_json(folder / "generation_config.json")
    tokenizer_config = read_json(folder / "tokenizer_config.json")
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    sess = session(folder / "model.onnx")
    inputs = {i.name for i in sess.get_inputs()}
    past0 = next(i for i in sess.get_inputs() if i.name == "past_key_values.0.key")
    kv_type = np.float16 if past0.type == "tensor(float16)" else np.float32
    layers = sum(1 for i in inputs if i.startswith("past_key_values.") and i.endswith(".key"))
    kv_heads, head_dim = past0.shape[1], past0.shape[3]
    eos = generation["eos_token_id"]
    eos = set(eos if isinstance(eos, list) else [eos])
    special = {k: token(tokenizer_config.get(k)) for k in ("bos_token", "eos_token")}

    prompts = [(name, {"prompt": text}, text, True) for name, text in PROMPTS]
    if "chat_template" in tokenizer_config:
        prompts += [(name, {"messages": messages}, render(tokenizer_config["chat_template"], messages, special), False)
                    for name, messages in CHATS]
    cases = []
    for name, source, text, add_special in prompts:
        prompt_ids = tok.encode(text, add_special_tokens=add_special).ids
        for penalty in (1.0, 1.3):
            cached, finish = decode(sess, inputs, kv_type, layers, kv_heads, head_dim, prompt_ids, eos, penalty, True)
            uncached, _ = decode(sess, inputs, kv_type, layers, kv_heads, head_dim, prompt_ids, eos, penalty, False)
            if cached != uncached:
                raise SystemExit(f"{folder.name}/{name}: cached and uncached greedy decoding disagree:\n"
                                 f"{cached}\n{uncached}")
            cases.append({"name": f"{name}/penalty-{penalty}", **source, "rendered": text, "prompt_ids": prompt_ids,
                          "max_new_tokens": MAX_NEW_TOKENS, "repetition_penalty": penalty, "ids": cached,
                          "text": tok.decode(cached, skip_special_tokens=True), "finish": finish})
    return {"model": folder.name, "eos": sorted(eos), "context": config["max_position_embeddings"], "cases": cases}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=MODELS_DIR / "build" / "golden")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    folders = sorted((MODELS_DIR / "fixtures").glob("tiny-*"))
    folders = [f for f in folders if (f / "generation_config.json").is_file()]
    for folder in folders:
        ref = reference(folder)
        write_json(args.out / f"generate-{folder.name}.json", ref)
        tokens = sum(len(c["ids"]) for c in ref["cases"])
        print(f"{folder.name}: {len(ref['cases'])} greedy references, {tokens} tokens")


if __name__ == "__main__":
    main()
