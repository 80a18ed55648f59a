#!/usr/bin/env python3
"""Builds tests/models/tiny-mlp.onnx, the tiny ONNX model of the `onnx` backend's tests.

Usage: python3 scripts/make-tiny-onnx.py   (needs `pip install onnx numpy`; the output is committed)

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
"""

import os

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


def main() -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = os.path.join(root, "tests", "models", "tiny-mlp.onnx")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    onnx.save(build(), out)
    y = np.maximum(X @ W1 + B1, 0) @ W2 + B2
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")
    print("x =", X.tolist())
    print("y =", y.tolist())


if __name__ == "__main__":
    main()
