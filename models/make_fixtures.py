#!/usr/bin/env python3
"""Generate the small test fixtures committed under `models/fixtures/` (well under 1 MB in all).

Both are BERT-shaped: word + position + token-type embeddings, one masked single-head attention
layer (so a wrong attention mask or padding changes the answer, as in a real encoder), then:
- `tiny-multilabel`: CLS pooling and a linear head → `logits` for 4 labels, sigmoid multi-label
  (`problem_type: multi_label_classification`).
- `tiny-cls-embed`: `last_hidden_state` out; a `benchtop.json` manifest asks for CLS pooling
  without normalisation.
The shared WordPiece `tokenizer.json` is trained on the support-triage texts and deliberately
pins padding to a fixed length and truncation beyond the model's 64 positions, which the engine
must override. Weights come from a fixed seed, so rerunning reproduces the files.
"""
from __future__ import annotations

import csv
import shutil

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from benchtop_models import MODELS_DIR, write_json

OUT = MODELS_DIR / "fixtures"
HIDDEN, POSITIONS, SPECIAL = 32, 64, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
LABELS = ["urgent", "money", "bug", "positive"]


def tokenizer() -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    with (MODELS_DIR / "data" / "support_triage.csv").open(newline="", encoding="utf-8") as f:
        texts = [r["text"] for r in csv.DictReader(f)]
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=600, special_tokens=SPECIAL, show_progress=False))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tok.enable_padding(length=16, pad_id=0, pad_token="[PAD]")  # fixed padding: the engine must override it
    tok.enable_truncation(max_length=512)                         # beyond the model's 64 positions
    return tok


def encoder(rng: np.random.Generator, vocab: int, head: str) -> onnx.ModelProto:
    w = lambda *shape: (rng.standard_normal(shape) * 0.3).astype(np.float32)
    inits = {
        "word": w(vocab, HIDDEN), "pos": w(POSITIONS, HIDDEN), "type": w(2, HIDDEN),
        "wq": w(HIDDEN, HIDDEN), "wk": w(HIDDEN, HIDDEN), "wv": w(HIDDEN, HIDDEN), "wo": w(HIDDEN, HIDDEN),
        "scale": np.array(1 / np.sqrt(HIDDEN), dtype=np.float32), "neg": np.array(-1e4, dtype=np.float32),
        "one_f": np.array(1.0, dtype=np.float32), "zero": np.array(0, dtype=np.int64),
        "one": np.array(1, dtype=np.int64), "axis1": np.array([1], dtype=np.int64),
    }
    N = helper.make_node
    nodes = [
        N("Shape", ["input_ids"], ["shape"]), N("Gather", ["shape", "one"], ["seq"], axis=0),
        N("Range", ["zero", "seq", "one"], ["positions"]),
        N("Gather", ["word", "input_ids"], ["e_word"]), N("Gather", ["pos", "positions"], ["e_pos"]),
        N("Gather", ["type", "token_type_ids"], ["e_type"]),
        N("Add", ["e_word", "e_pos"], ["e1"]), N("Add", ["e1", "e_type"], ["emb"]),
        N("MatMul", ["emb", "wq"], ["q"]), N("MatMul", ["emb", "wk"], ["k"]), N("MatMul", ["emb", "wv"], ["v"]),
        N("Transpose", ["k"], ["kt"], perm=[0, 2, 1]), N("MatMul", ["q", "kt"], ["qk"]),
        N("Mul", ["qk", "scale"], ["scores"]),
        N("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        N("Sub", ["one_f", "mask_f"], ["inv"]), N("Mul", ["inv", "neg"], ["bias2"]),
        N("Unsqueeze", ["bias2", "axis1"], ["bias"]), N("Add", ["scores", "bias"], ["masked"]),
        N("Softmax", ["masked"], ["attn"], axis=-1), N("MatMul", ["attn", "v"], ["ctx"]),
        N("MatMul", ["ctx", "wo"], ["proj"]), N("Add", ["emb", "proj"], ["resid"]),
    ]
    seq_dims = ["batch", "sequence"]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, seq_dims) for n in ("input_ids", "attention_mask", "token_type_ids")]
    if head == "classifier":
        inits.update({"wc": w(HIDDEN, len(LABELS)), "bc": w(len(LABELS))})
        nodes += [N("Tanh", ["resid"], ["hidden"]), N("Gather", ["hidden", "zero"], ["cls"], axis=1),
                  N("MatMul", ["cls", "wc"], ["cls_scores"]), N("Add", ["cls_scores", "bc"], ["logits"])]
        outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(LABELS)])]
    else:
        nodes.append(N("Tanh", ["resid"], ["last_hidden_state"]))
        outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", HIDDEN])]
    graph = helper.make_graph(nodes, f"benchtop-fixture-{head}", inputs, outputs,
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="benchtop-make-fixtures")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def bert_config(vocab: int, **extra) -> dict:
    return {"model_type": "bert", "hidden_size": HIDDEN, "num_hidden_layers": 1, "num_attention_heads": 1,
            "max_position_embeddings": POSITIONS, "vocab_size": vocab, "pad_token_id": 0, **extra}


def main() -> None:
    tok = tokenizer()
    vocab = tok.get_vocab_size()
    rng = np.random.default_rng(20261125)
    for name, head, config, manifest in [
        ("tiny-multilabel", "classifier", bert_config(
            vocab, architectures=["BertForSequenceClassification"], problem_type="multi_label_classification",
            id2label={str(i): l for i, l in enumerate(LABELS)}, label2id={l: i for i, l in enumerate(LABELS)}), None),
        ("tiny-cls-embed", "embedding", bert_config(vocab, architectures=["BertModel"]),
         {"task": "embedding", "pooling": "cls", "normalize": False}),
    ]:
        folder = OUT / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        onnx.save(encoder(rng, vocab, head), str(folder / "model.onnx"))
        tok.save(str(folder / "tokenizer.json"))
        write_json(folder / "config.json", config)
        if manifest:
            write_json(folder / "benchtop.json", manifest)
        print(f"{name}: {sum(f.stat().st_size for f in folder.iterdir()) / 1024:.0f} KiB in {folder}")


if __name__ == "__main__":
    main()
