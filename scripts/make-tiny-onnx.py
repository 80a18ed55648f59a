#!/usr/bin/env python3
"""Builds tests/models/tiny-mlp.onnx, the tiny ONNX model of the `onnx` backend's tests, and the tiny text
embedding model of the `/v1/embeddings` tests.

Usage: python3 scripts/make-tiny-onnx.py   (needs `pip install onnx numpy`; the outputs are committed)

The model (opset 13, IR version 8) is a two-layer perceptron with a dynamic batch dimension "N":

    x: float32 [N, 4]
    h = Relu(MatMul(x, W1) + b1)      W1: [4, 8], b1: [8]
    y = MatMul(h, W2) + b2            W2: [8, 3], b2: [3]
    y: float32 [N, 3]

All weights are multiples of 1/8 (exact in float32), deterministic:

    W1[i][j] = ((i * 8 + j) % 7 - 3) / 8          i in 0..4, j in 0..8
    b1[j]    = (j % 3 - 1) / 8
    W2[j][k] = ((j * 3 + k) % 5 - 2) / 8          j in 0..8, k in 0..3
    b2[k]    = (k - 1) / 8

For the fixed input x = [[1, 2, 3, 4], [-1, 0.5, 2, -3]] the expected output is

    y = [[0.296875, -0.5625, 0.0625], [-0.140625, 0.2265625, 0.59375]]

(exact: every product and sum is a multiple of 1/512). The script prints it again.

It also builds tests/models/tiny-text.onnx and its tokenizer, tests/models/tiny-text.tokenizer.json, the
tiny text embedding model of the `/v1/embeddings` tests (opset 13, IR version 8, dynamic "N" and "S"):

    input_ids, attention_mask, token_type_ids: int64 [N, S]
    last_hidden_state = E[input_ids] + T[token_type_ids] + attention_mask * M
    last_hidden_state: float32 [N, S, 4]

    E[v][d] = ((v * 4 + d) % 9 - 4) / 8        v in 0..9 (the vocabulary), d in 0..4
    T[t][d] = (t + 1) * (d % 2) / 8            t in 0..2
    M[d]    = (d + 1) / 16

The tokenizer is a HuggingFace tokenizer.json written by hand (no `tokenizers` package needed): lower-case,
split into words and runs of punctuation (the regex-based `Whitespace` pre-tokenizer), a word-level vocabulary of 9 tokens ([PAD] [UNK] [CLS] [SEP] hello
world inferno cache fast), and "[CLS] $A [SEP]" around every text. The server mean-pools
last_hidden_state over the tokens the attention mask keeps; the script prints the expected embeddings of
TEXTS.
"""

import json
import os
import re

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

W1 = np.array([[((i * 8 + j) % 7 - 3) / 8 for j in range(8)] for i in range(4)], dtype=np.float32)
B1 = np.array([(j % 3 - 1) / 8 for j in range(8)], dtype=np.float32)
W2 = np.array([[((j * 3 + k) % 5 - 2) / 8 for k in range(3)] for j in range(8)], dtype=np.float32)
B2 = np.array([(k - 1) / 8 for k in range(3)], dtype=np.float32)
X = np.array([[1, 2, 3, 4], [-1, 0.5, 2, -3]], dtype=np.float32)


def build() -> onnx.ModelProto:
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["xw1"]),
        helper.make_node("Add", ["xw1", "b1"], ["h_pre"]),
        helper.make_node("Relu", ["h_pre"], ["h"]),
        helper.make_node("MatMul", ["h", "W2"], ["hw2"]),
        helper.make_node("Add", ["hw2", "b2"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        initializer=[
            numpy_helper.from_array(W1, "W1"),
            numpy_helper.from_array(B1, "b1"),
            numpy_helper.from_array(W2, "W2"),
            numpy_helper.from_array(B2, "b2"),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="inferno make-tiny-onnx.py"
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world", "inferno", "cache", "fast"]
E = np.array([[((v * 4 + d) % 9 - 4) / 8 for d in range(4)] for v in range(len(VOCAB))], dtype=np.float32)
T = np.array([[(t + 1) * (d % 2) / 8 for d in range(4)] for t in range(2)], dtype=np.float32)
M = np.array([(d + 1) / 16 for d in range(4)], dtype=np.float32)
TEXTS = ["hello world", "Inferno, cache fast!", "hello"]


def build_text() -> onnx.ModelProto:
    int_input = lambda name: helper.make_tensor_value_info(name, TensorProto.INT64, ["N", "S"])  # noqa: E731
    nodes = [
        helper.make_node("Gather", ["E", "input_ids"], ["tokens"], axis=0),
        helper.make_node("Gather", ["T", "token_type_ids"], ["types"], axis=0),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "last_axis"], ["mask_3d"]),
        helper.make_node("Mul", ["mask_3d", "M"], ["marked"]),
        helper.make_node("Add", ["tokens", "types"], ["typed"]),
        helper.make_node("Add", ["typed", "marked"], ["last_hidden_state"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-text",
        [int_input("input_ids"), int_input("attention_mask"), int_input("token_type_ids")],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["N", "S", 4])],
        initializer=[
            numpy_helper.from_array(E, "E"),
            numpy_helper.from_array(T, "T"),
            numpy_helper.from_array(M, "M"),
            numpy_helper.from_array(np.array([-1], dtype=np.int64), "last_axis"),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="inferno make-tiny-onnx.py"
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def special(token: str) -> dict:
    return {
        "id": VOCAB.index(token),
        "content": token,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
        "special": True,
    }


def tokenizer_json() -> dict:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    piece = lambda kind, id_: {kind: {"id": id_, "type_id": 0}}  # noqa: E731
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [special(t) for t in specials],
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [piece("SpecialToken", "[CLS]"), piece("Sequence", "A"), piece("SpecialToken", "[SEP]")],
            "pair": [
                piece("SpecialToken", "[CLS]"),
                piece("Sequence", "A"),
                piece("SpecialToken", "[SEP]"),
                {"Sequence": {"id": "B", "type_id": 1}},
                {"SpecialToken": {"id": "[SEP]", "type_id": 1}},
            ],
            "special_tokens": {
                t: {"id": t, "ids": [VOCAB.index(t)], "tokens": [t]} for t in ["[CLS]", "[SEP]"]
            },
        },
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": {t: i for i, t in enumerate(VOCAB)}, "unk_token": "[UNK]"},
    }


def tokenize(text: str) -> list:
    """What tokenizer_json() does to one text: lower-case, words and runs of punctuation, [CLS] ... [SEP]."""
    pieces = re.findall(r"\w+|[^\w\s]+", text.lower())
    ids = [VOCAB.index(p) if p in VOCAB else VOCAB.index("[UNK]") for p in pieces]
    return [VOCAB.index("[CLS]")] + ids + [VOCAB.index("[SEP]")]


def embed(text: str) -> list:
    ids = tokenize(text)
    hidden = E[ids] + T[0] + M
    return hidden.mean(axis=0).tolist()


def main() -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    models = os.path.join(root, "tests", "models")
    os.makedirs(models, exist_ok=True)
    out = os.path.join(models, "tiny-mlp.onnx")
    onnx.save(build(), out)
    y = np.maximum(X @ W1 + B1, 0) @ W2 + B2
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")
    print("x =", X.tolist())
    print("y =", y.tolist())

    text = os.path.join(models, "tiny-text.onnx")
    onnx.save(build_text(), text)
    tokenizer = os.path.join(models, "tiny-text.tokenizer.json")
    with open(tokenizer, "w", encoding="utf-8") as f:
        json.dump(tokenizer_json(), f, indent=1)
        f.write("\n")
    print(f"wrote {text} ({os.path.getsize(text)} bytes) and {tokenizer}")
    for t in TEXTS:
        print(f"{t!r}: tokens {tokenize(t)} embedding {embed(t)}")


if __name__ == "__main__":
    main()
