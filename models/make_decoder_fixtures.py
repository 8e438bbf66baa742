#!/usr/bin/env python3
"""Generate the tiny decoder-only (text generation) fixtures committed under `models/fixtures/`.

No real LLM can be downloaded here, so these are written with `onnx.helper` and numpy weights
from a fixed seed, in the I/O convention of Hugging Face Optimum's decoder exports:
`input_ids`, `attention_mask`, optional `position_ids` and `past_key_values.N.key|value` in;
`logits` and `present.N.key|value` out. Two architectures:

- `tiny-gpt2` (GPT2LMHeadModel): learned positions computed inside the graph (no
  `position_ids` input), LayerNorm, 4-head attention, GELU MLP, float32 KV cache, no chat
  template (so the "model has no chat template" path is exercised).
- `tiny-qwen2` (Qwen2ForCausalLM): grouped-query attention (4 query heads share 2 KV heads),
  rotary embeddings driven by a `position_ids` input, RMSNorm, SwiGLU MLP, a float16 KV cache,
  a ChatML chat template and a sampling `generation_config.json` like Qwen2.5-Instruct's.

Both have an untied output head (with tied random embeddings greedy decoding keeps repeating the
last token, which would hide KV-cache bugs) and a byte-level BPE `tokenizer.json` trained here,
so emoji and CJK characters are split across several tokens and decode to partial UTF-8.
Rerunning reproduces the files byte for byte.
"""
from __future__ import annotations

import csv
import shutil

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from benchtop_models import MODELS_DIR, write_json

OUT = MODELS_DIR / "fixtures"
HIDDEN, LAYERS, POSITIONS, VOCAB = 64, 2, 2048, 512

# Texts with multi-byte characters the byte-level BPE will not merge, so generation and
# tokenisation cross UTF-8 boundaries.
EXTRA_TEXTS = [
    "Grüße aus Köln! Ça va très bien, merci.",
    "こんにちは、世界。日本語のテキストです。",
    "Emoji: 🙂 🚀 🎉 👍🏽 — done.",
    "Привет, как дела? Всё хорошо.",
    "مرحبا بالعالم",
]

CHATML_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {{- '<|im_start|>system\\n' + messages[0]['content'].strip() + '<|im_end|>\\n' }}\n"
    "{%- else %}\n"
    "    {{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if message['role'] not in ['system', 'user', 'assistant'] %}\n"
    "        {{- raise_exception('Unknown role: ' + message['role']) }}\n"
    "    {%- endif %}\n"
    "    {%- if message.role == 'system' and not loop.first %}\n"
    "        {{- raise_exception('Only the first message may be a system message') }}\n"
    "    {%- endif %}\n"
    "    {%- if not (message.role == 'system' and loop.first) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content | trim + '<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n"
)


def corpus() -> list[str]:
    with (MODELS_DIR / "data" / "support_triage.csv").open(newline="", encoding="utf-8") as f:
        return [r["text"] for r in csv.DictReader(f)] + EXTRA_TEXTS * 3


def tokenizer(special: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    return tok


class Graph:
    """A small helper over onnx.helper: named initialisers and nodes with generated names."""

    def __init__(self, rng: np.random.Generator):
        self.rng, self.nodes, self.inits, self.count = rng, [], [], 0

    def weight(self, name: str, *shape: int, std: float) -> str:
        self.inits.append(numpy_helper.from_array((self.rng.standard_normal(shape) * std).astype(np.float32), name))
        return name

    def const(self, name: str, value, dtype=np.int64) -> str:
        self.inits.append(numpy_helper.from_array(np.array(value, dtype=dtype), name))
        return name

    def op(self, op: str, inputs: list[str], **attrs) -> str:
        self.count += 1
        out = f"{op.lower()}_{self.count}"
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def ops(self, op: str, inputs: list[str], outputs: int, **attrs) -> list[str]:
        self.count += 1
        outs = [f"{op.lower()}_{self.count}_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, outs, **attrs))
        return outs

    def named(self, op: str, inputs: list[str], out: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def matmul(self, x: str, name: str, fan_in: int, fan_out: int, std: float | None = None) -> str:
        return self.op("MatMul", [x, self.weight(name, fan_in, fan_out, std=std or fan_in ** -0.5)])


def decoder(arch: str, vocab: int, heads: int, kv_heads: int, intermediate: int, seed: int) -> onnx.ModelProto:
    g = Graph(np.random.default_rng(seed))
    head_dim = HIDDEN // heads
    kv_type = TensorProto.FLOAT16 if arch == "qwen2" else TensorProto.FLOAT
    for name, value in {"zero": 0, "one": 1, "two": 2, "axis0": [0], "axis1": [1], "axis2": [2], "axis_last": [-1],
                        "split_shape": [0, 0, -1, head_dim], "merge_shape": [0, 0, HIDDEN],
                        "kv_expand": [1, 1, heads // kv_heads, 1, 1], "kv_merge": [0, heads, -1, head_dim]}.items():
        g.const(name, value)
    g.const("scale", head_dim ** -0.5, np.float32)
    g.const("zero_f", 0.0, np.float32)
    g.const("neg_inf", -1e9, np.float32)
    g.const("eps", 1e-6, np.float32)

    seq = g.op("Gather", [g.op("Shape", ["input_ids"]), "one"], axis=0)
    total = g.op("Gather", [g.op("Shape", ["attention_mask"]), "one"], axis=0)
    past = g.op("Sub", [total, seq])
    # Causal mask over [query, key] in absolute positions, and the padding mask over keys.
    keys = g.op("Range", ["zero", total, "one"])
    queries = g.op("Unsqueeze", [g.op("Range", [past, total, "one"]), "axis_last"])
    causal = g.op("LessOrEqual", [keys, queries])                                        # [S, T]
    padding = g.op("Unsqueeze", [g.op("Cast", ["attention_mask"], to=TensorProto.BOOL), "axis1"])
    padding = g.op("Unsqueeze", [padding, "axis1"])                                       # [B, 1, 1, T]
    bias = g.op("Where", [g.op("And", [causal, padding]), "zero_f", "neg_inf"])          # [B, 1, S, T]

    x = g.op("Gather", [g.weight("embed_tokens", vocab, HIDDEN, std=1.0), "input_ids"])
    if arch == "gpt2":
        positions = g.op("Range", [past, total, "one"])
        x = g.op("Add", [x, g.op("Gather", [g.weight("embed_positions", POSITIONS, HIDDEN, std=0.5), positions])])
    else:
        inv_freq = 1.0 / (10000 ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
        g.const("inv_freq", inv_freq, np.float32)
        angles = g.op("Mul", [g.op("Unsqueeze", [g.op("Cast", ["position_ids"], to=TensorProto.FLOAT), "axis_last"]),
                              "inv_freq"])                                                 # [B, S, hd/2]
        angles = g.op("Concat", [angles, angles], axis=-1)
        cos = g.op("Unsqueeze", [g.op("Cos", [angles]), "axis1"])                         # [B, 1, S, hd]
        sin = g.op("Unsqueeze", [g.op("Sin", [angles]), "axis1"])

    def norm(h: str, name: str) -> str:
        weight = g.const(f"{name}.weight", np.ones(HIDDEN), np.float32)
        if arch == "gpt2":
            return g.op("LayerNormalization", [h, weight, g.const(f"{name}.bias", np.zeros(HIDDEN), np.float32)],
                        axis=-1, epsilon=1e-5)
        mean_square = g.op("ReduceMean", [g.op("Mul", [h, h]), "axis_last"], keepdims=1)
        return g.op("Mul", [g.op("Mul", [h, g.op("Reciprocal", [g.op("Sqrt", [g.op("Add", [mean_square, "eps"])])])]),
                            weight])

    def heads_first(h: str) -> str:
        return g.op("Transpose", [g.op("Reshape", [h, "split_shape"])], perm=[0, 2, 1, 3])

    def rotate(h: str) -> str:
        first, second = g.ops("Split", [h], 2, axis=-1, num_outputs=2)
        rotated = g.op("Concat", [g.op("Neg", [second]), first], axis=-1)
        return g.op("Add", [g.op("Mul", [h, cos]), g.op("Mul", [rotated, sin])])

    for layer in range(LAYERS):
        p = f"layers.{layer}"
        h = norm(x, f"{p}.input_norm")
        q = heads_first(g.matmul(h, f"{p}.q", HIDDEN, HIDDEN))
        k = heads_first(g.matmul(h, f"{p}.k", HIDDEN, kv_heads * head_dim))
        v = heads_first(g.matmul(h, f"{p}.v", HIDDEN, kv_heads * head_dim))
        if arch == "qwen2":
            q, k = rotate(q), rotate(k)
        cache = []
        for kind, new in (("key", k), ("value", v)):
            if kv_type == TensorProto.FLOAT16:
                new = g.op("Cast", [new], to=kv_type)
            present = g.named("Concat", [f"past_key_values.{layer}.{kind}", new], f"present.{layer}.{kind}", axis=2)
            if kv_type == TensorProto.FLOAT16:
                present = g.op("Cast", [present], to=TensorProto.FLOAT)
            if kv_heads != heads:  # grouped-query attention: each KV head serves heads/kv_heads queries
                present = g.op("Expand", [g.op("Unsqueeze", [present, "axis2"]), "kv_expand"])
                present = g.op("Reshape", [present, "kv_merge"])
            cache.append(present)
        scores = g.op("Mul", [g.op("MatMul", [q, g.op("Transpose", [cache[0]], perm=[0, 1, 3, 2])]), "scale"])
        attention = g.op("Softmax", [g.op("Add", [scores, bias])], axis=-1)
        context = g.op("Transpose", [g.op("MatMul", [attention, cache[1]])], perm=[0, 2, 1, 3])
        x = g.op("Add", [x, g.matmul(g.op("Reshape", [context, "merge_shape"]), f"{p}.o", HIDDEN, HIDDEN)])
        h = norm(x, f"{p}.post_norm")
        if arch == "gpt2":
            up = g.op("Add", [g.matmul(h, f"{p}.fc", HIDDEN, intermediate),
                              g.const(f"{p}.fc.bias", np.zeros(intermediate), np.float32)])
            # GELU written with Erf (the Gelu operator needs opset 20).
            erf = g.op("Erf", [g.op("Mul", [up, g.const(f"{p}.rsqrt2", 2 ** -0.5, np.float32)])])
            act = g.op("Mul", [g.op("Mul", [up, g.op("Add", [erf, g.const(f"{p}.one_f", 1.0, np.float32)])]),
                               g.const(f"{p}.half", 0.5, np.float32)])
        else:
            gate = g.matmul(h, f"{p}.gate", HIDDEN, intermediate)
            act = g.op("Mul", [g.op("Mul", [gate, g.op("Sigmoid", [gate])]), g.matmul(h, f"{p}.up", HIDDEN, intermediate)])
        x = g.op("Add", [x, g.matmul(act, f"{p}.down", intermediate, HIDDEN)])
    # An untied head with logits spread over several units, so greedy choices are clear-cut.
    g.named("MatMul", [norm(x, "final_norm"), g.weight("lm_head", HIDDEN, vocab, std=3.0 * HIDDEN ** -0.5)], "logits")

    kv_shape = ["batch_size", kv_heads, "past_sequence_length", head_dim]
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
              helper.make_tensor_value_info("attention_mask", TensorProto.INT64,
                                            ["batch_size", "past_sequence_length + sequence_length"])]
    if arch == "qwen2":
        inputs.append(helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch_size", "sequence_length"]))
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch_size", "sequence_length", vocab])]
    for layer in range(LAYERS):
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(f"past_key_values.{layer}.{kind}", kv_type, kv_shape))
            outputs.append(helper.make_tensor_value_info(
                f"present.{layer}.{kind}", kv_type,
                ["batch_size", kv_heads, "past_sequence_length + sequence_length", head_dim]))
    used = {name for node in g.nodes for name in node.input}  # the shared constants one architecture skips
    graph = helper.make_graph(g.nodes, f"tiny-{arch}", inputs, outputs, [i for i in g.inits if i.name in used])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="benchtop-fixtures")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def write(name: str, arch: str, special: list[str], config: dict, generation: dict, tokenizer_config: dict,
          heads: int, kv_heads: int, intermediate: int, seed: int) -> None:
    folder = OUT / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    tok = tokenizer(special)
    vocab = tok.get_vocab_size()
    ids = {t: tok.token_to_id(t) for t in special}
    by_id = lambda v: [ids[t] for t in v] if isinstance(v, list) else ids[v]
    config = {**{k: v for k, v in config.items() if k != "_ids"}, **{k: by_id(v) for k, v in config["_ids"].items()}}
    generation = {**{k: v for k, v in generation.items() if k != "_ids"},
                  **{k: by_id(v) for k, v in generation["_ids"].items()}}
    onnx.save(decoder(arch, vocab, heads, kv_heads, intermediate, seed), folder / "model.onnx")
    tok.save(str(folder / "tokenizer.json"))
    write_json(folder / "config.json", {**config, "vocab_size": vocab, "hidden_size": HIDDEN,
                                        "num_hidden_layers": LAYERS, "num_attention_heads": heads,
                                        "num_key_value_heads": kv_heads, "max_position_embeddings": POSITIONS})
    write_json(folder / "generation_config.json", generation)
    write_json(folder / "tokenizer_config.json", {**tokenizer_config, "model_max_length": POSITIONS,
                                                  "added_tokens_decoder": {
                                                      str(ids[t]): {"content": t, "special": True, "lstrip": False,
                                                                    "rstrip": False, "normalized": False,
                                                                    "single_word": False} for t in special}})


def main() -> None:
    write("tiny-gpt2", "gpt2", ["<|endoftext|>"],
          config={"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_positions": POSITIONS,
                  "_ids": {"bos_token_id": "<|endoftext|>", "eos_token_id": "<|endoftext|>"}},
          generation={"_transformers_version": "4.46.0", "_ids": {"bos_token_id": "<|endoftext|>",
                                                                   "eos_token_id": "<|endoftext|>"}},
          # GPT-2 style: special tokens as AddedToken objects, no chat template.
          tokenizer_config={"tokenizer_class": "GPT2Tokenizer", "add_bos_token": False,
                            "bos_token": {"__type": "AddedToken", "content": "<|endoftext|>", "special": True},
                            "eos_token": {"__type": "AddedToken", "content": "<|endoftext|>", "special": True}},
          heads=4, kv_heads=4, intermediate=256, seed=7)
    write("tiny-qwen2", "qwen2", ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
          config={"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "intermediate_size": 128,
                  "rope_theta": 10000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": False,
                  "torch_dtype": "float16", "_ids": {"bos_token_id": "<|endoftext|>", "eos_token_id": "<|im_end|>"}},
          generation={"do_sample": True, "temperature": 0.7, "top_p": 0.8, "top_k": 20,
                      "repetition_penalty": 1.05, "_transformers_version": "4.46.0",
                      "_ids": {"bos_token_id": "<|endoftext|>", "eos_token_id": ["<|im_end|>", "<|endoftext|>"],
                               "pad_token_id": "<|endoftext|>"}},
          tokenizer_config={"tokenizer_class": "Qwen2Tokenizer", "bos_token": None, "eos_token": "<|im_end|>",
                            "pad_token": "<|endoftext|>", "chat_template": CHATML_TEMPLATE},
          heads=4, kv_heads=2, intermediate=128, seed=11)
    for folder in sorted(OUT.glob("tiny-*")):
        size = sum(f.stat().st_size for f in folder.iterdir())
        print(f"{folder.relative_to(MODELS_DIR)}: {size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
