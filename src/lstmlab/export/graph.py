"""A small ONNX graph builder on `onnx.helper`: unique names, constants, nodes, subgraphs.

Every exported graph is written op by op from the module's weights (no tracing), so it
is deterministic and its batch and time axes are dynamic by construction.

    graph = Graph("lstm")
    x = graph.input("x", FLOAT, ["time", "batch", 10])
    y = graph.op("MatMul", [x, graph.const(weight.T, "w")])
    graph.output("y", y, FLOAT, ["time", "batch", 20])
    model = graph.model()

A `Scan` body is a child graph (`graph.child(...)`): it shares the names and the
constants of its root (weights stay initialisers of the main graph, which the body reads
from the outer scope), and has its own nodes, inputs and outputs.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17  # LayerNormalization (17); ONNX Runtime 1.32 runs opsets up to 23 (and more)
IR_VERSION = 8  # the IR version that goes with opset 17
FLOAT, INT64, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


class Graph:
    """Nodes, inputs, outputs and (for the root) initialisers of one ONNX graph."""

    def __init__(self, name: str, root: Graph | None = None):
        self.name = name
        self.root = root or self
        self.nodes: list[onnx.NodeProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        if root is None:
            self.initializers: list[onnx.TensorProto] = []
            self.counter = 0
            self.constants: dict[tuple, str] = {}  # small constants, shared by value

    def child(self, name: str) -> Graph:
        """A subgraph (Scan / Loop body) that reads this graph's constants from the outer scope."""
        return Graph(self.unique(name), root=self.root)

    def unique(self, hint: str) -> str:
        self.root.counter += 1
        return f"{hint}_{self.root.counter}"

    def const(self, value, hint: str = "const", dtype=np.float32) -> str:
        """An initialiser holding `value` (array-like); small ones are shared by value."""
        array = np.array(value, dtype=dtype, order="C")  # (np.ascontiguousarray would make a scalar 1-d)
        key = (array.dtype.str, array.shape, array.tobytes()) if array.size <= 16 else None
        if key is not None and key in self.root.constants:
            return self.root.constants[key]
        name = self.unique(hint)
        self.root.initializers.append(numpy_helper.from_array(array, name))
        if key is not None:
            self.root.constants[key] = name
        return name

    def ints(self, values, hint: str = "ints") -> str:
        """An int64 constant (shapes, axes, indices)."""
        return self.const(values, hint, np.int64)

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, outputs: int = 1, **attributes):
        """Add a node; returns its output name (or a list of `outputs` names)."""
        names = [self.unique(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=self.unique("node_" + op_type),
                                           **attributes))
        return names[0] if outputs == 1 else names

    def input(self, name: str, elem_type: int, shape: list | None) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def output(self, name: str, value: str, elem_type: int, shape: list | None) -> str:
        """Expose `value` under `name` (an Identity, so any value can be a named output)."""
        self.nodes.append(helper.make_node("Identity", [value], [name], name=self.unique("node_out")))
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def graph(self) -> onnx.GraphProto:
        initializers = self.initializers if self.root is self else []
        return helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, initializers)

    def model(self, metadata: dict[str, str] | None = None, doc: str = "") -> onnx.ModelProto:
        from lstmlab import __version__

        model = helper.make_model(self.graph(), producer_name="lstmlab", producer_version=__version__,
                                  opset_imports=[helper.make_opsetid("", OPSET)], doc_string=doc)
        model.ir_version = IR_VERSION
        for key, value in (metadata or {}).items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        return model

    # ------------------------------------------------------------- common layers
    def linear(self, x: str, weight, bias=None, hint: str = "linear") -> str:
        """x (..., in) @ weight.T (weight (out, in), as torch.nn.Linear) + bias (out,)."""
        y = self.op("MatMul", [x, self.const(np.asarray(weight).T, hint + "_weight")], hint)
        if bias is not None:
            y = self.op("Add", [y, self.const(bias, hint + "_bias")], hint)
        return y

    def split(self, x: str, sizes: list[int], axis: int = -1, hint: str = "part") -> list[str]:
        return self.op("Split", [x, self.ints(sizes, "split")], hint, outputs=len(sizes), axis=axis)

    def unsqueeze(self, x: str, axes: list[int]) -> str:
        return self.op("Unsqueeze", [x, self.ints(axes, "axes")])

    def squeeze(self, x: str, axes: list[int]) -> str:
        return self.op("Squeeze", [x, self.ints(axes, "axes")])

    def concat(self, values: list[str], axis: int) -> str:
        return values[0] if len(values) == 1 else self.op("Concat", values, axis=axis)

    def layer_norm(self, x: str, gain, bias=None, eps: float = 1e-5) -> str:
        """LN over the last axis of x, times gain (n,), plus bias (n,) (zeros if None): the
        LayerNormalization op (opset 17), as torch.nn.functional.layer_norm."""
        gain = np.asarray(gain, dtype=np.float32)
        bias = np.zeros_like(gain) if bias is None else np.asarray(bias, dtype=np.float32)
        return self.op("LayerNormalization", [x, self.const(gain, "ln_gain"), self.const(bias, "ln_bias")],
                       "ln", axis=-1, epsilon=eps)


def to_numpy(tensor) -> np.ndarray | None:
    """A torch tensor (any device) as a float32 numpy array; None stays None."""
    if tensor is None:
        return None
    return tensor.detach().to("cpu").float().numpy()
