"""Static input shapes and the dynamic batch.

A symbolic leading (batch) dimension is compiled at 1 and the generated library loops over
the batch; that is valid only when no op mixes samples, which the two checks here verify
(on the symbolic ONNX model and on the converted IR). Any other symbolic dimension must
be fixed by the user (``--input-shape``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import onnx

from sqzc.errors import ModelError, UnsupportedError
from sqzc.ir import Graph
from sqzc.ops import OpKind, op_name, opdef


def _value_info_dims(vi: onnx.ValueInfoProto) -> list[int | str | None]:
    dims: list[int | str | None] = []
    for d in vi.type.tensor_type.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        elif d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        else:
            dims.append(None)
    return dims


def fix_input_shapes(model: onnx.ModelProto, inputs: list[onnx.ValueInfoProto], label: str,
                     user_shapes: Mapping[str, Sequence[int]]) -> bool:
    """Give every graph input a static shape (batch 1 for a symbolic batch dim).

    Returns True if the model has a dynamic batch dimension.
    """
    names = {vi.name for vi in inputs}
    for name in user_shapes:
        if name not in names:
            raise ModelError(f"{label}: --input-shape names '{name}', but the model inputs are "
                             f"{sorted(names)}")
    dynamic = []
    for vi in inputs:
        if not vi.type.HasField("tensor_type"):
            raise ModelError(f"{label}: input '{vi.name}' is not a tensor")
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            if vi.name not in user_shapes:
                raise ModelError(f"{label}: input '{vi.name}' has no shape; give one with "
                                 f"--input-shape {vi.name}=1x3x224x224")
        if vi.name in user_shapes:
            shape = [int(d) for d in user_shapes[vi.name]]
            if any(d < 1 for d in shape):
                raise ModelError(f"{label}: --input-shape for '{vi.name}' has a dim < 1")
            old = _value_info_dims(vi)
            if tt.HasField("shape") and len(old) != len(shape):
                raise ModelError(f"{label}: --input-shape for '{vi.name}' has rank {len(shape)},"
                                 f" the model says {len(old)}")
            for i, (o, n) in enumerate(zip(old, shape)):
                if isinstance(o, int) and o > 0 and o != n:
                    raise ModelError(f"{label}: --input-shape for '{vi.name}' sets dim {i} to "
                                     f"{n}, the model fixes it to {o}")
            tt.ClearField("shape")
            tt.shape.dim.extend([onnx.TensorShapeProto.Dimension(dim_value=d) for d in shape])
            dynamic.append(False)
            continue
        dims = _value_info_dims(vi)
        for i, d in enumerate(dims):
            if isinstance(d, int) and d > 0:
                continue
            if isinstance(d, int) and d <= 0 and d is not None:
                raise UnsupportedError(f"{label}: input '{vi.name}' dim {i} is {d}: zero-sized "
                                       "and negative dimensions are not supported")
            if i == 0 and len(dims) > 1:
                continue
            shown = "x".join(str(x) if isinstance(x, int) and x > 0 else
                             (str(x) if isinstance(x, str) and x else f"D{k}").upper()
                             for k, x in enumerate(dims))
            raise ModelError(f"{label}: input '{vi.name}' dim {i} is symbolic ({d!r}); fix the "
                             f"shape with --input-shape {vi.name}={shown}, every dim a number "
                             "(the batch too: only a model whose other dims are all fixed "
                             "keeps a dynamic batch)")
        is_dyn = len(dims) > 1 and not (isinstance(dims[0], int) and dims[0] > 0)
        dynamic.append(is_dyn)
        if is_dyn:
            tt.shape.dim[0].Clear()
            tt.shape.dim[0].dim_value = 1
    if any(dynamic) and not all(dynamic):
        raise ModelError(f"{label}: some inputs have a symbolic batch dim and some a fixed one; "
                         "fix all with --input-shape")
    return bool(dynamic) and all(dynamic)


def check_leading_dims_symbolic(model: onnx.ModelProto, label: str) -> None:
    """Under a symbolic batch, no inferred activation may have a fixed leading dim.

    The graph is compiled at batch 1, so a literal ``Reshape(x, [1, -1])`` looks exactly
    like PyTorch's ``[N, -1]`` head; onnx shape inference with the batch kept symbolic
    tells them apart (it infers 1 for the first, the batch symbol for the second).
    """
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:
        return  # the strict inference of the fixed-shape model already vetted the graph
    init = {t.name for t in model.graph.initializer}
    reach = {vi.name for vi in model.graph.input if vi.name not in init}
    for node in model.graph.node:  # tensors computed from a graph input (not weights)
        if any(i in reach for i in node.input):
            reach.update(o for o in node.output if o)
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        if vi.name not in reach:
            continue
        tt = vi.type.tensor_type
        if not tt.HasField("shape") or not tt.shape.dim:
            continue
        d0 = tt.shape.dim[0]
        if d0.HasField("dim_value") and tt.elem_type in (onnx.TensorProto.FLOAT,
                                                         onnx.TensorProto.FLOAT16,
                                                         onnx.TensorProto.UINT8,
                                                         onnx.TensorProto.INT8):
            raise UnsupportedError(
                f"{label}: dynamic batch: tensor '{vi.name}' has a fixed leading dim "
                f"{d0.dim_value} (the graph mixes samples); fix the batch with --input-shape")


def check_batch_separable(graph: Graph, label: str) -> None:
    """Verify a graph compiled at batch 1 is valid for any batch N.

    The library runs the batch-1 program once per sample, which is exact when no op mixes
    samples: every runtime tensor keeps a leading batch axis of 1, no op reduces,
    normalizes, concatenates or moves that axis, and constants never broadcast along it.
    Ops computed from constants alone (a QDQ model's weight DequantizeLinear) are
    constants too: constant folding evaluates them, batch or no batch.
    """
    constant = graph.constant_derived()
    for nid in graph.nodes():
        op = graph.op(nid)
        if op.kind in (OpKind.CONST, OpKind.INPUT) or nid in constant:
            continue
        where = f"node '{op.origin_str}' ({op_name(op)})"
        shape = op.out.shape
        if not shape or shape[0] != 1:
            raise UnsupportedError(
                f"{label}: dynamic batch: {where} produces {op.out} without a leading batch "
                "axis; fix the batch with --input-shape")
        d = opdef(op.kind)
        mixes = d.batch_rule(op.attrs) if d.batch_rule else ""
        if mixes:
            raise UnsupportedError(f"{label}: dynamic batch: {where} {mixes}")
        for src in op.inputs:
            t = graph.op(src).out
            const_src = src in constant
            # a constant with the output's rank and a leading dim > 1 would be broadcast
            # along the batch (a rank-2 MatMul weight is not: its first dim is K)
            broadcasting = "broadcast" in d.tags or ("matmul" in d.tags and len(shape) > 2)
            if broadcasting and const_src and len(t.shape) == len(shape) \
                    and t.shape and t.shape[0] != 1:
                raise UnsupportedError(f"{label}: dynamic batch: {where} broadcasts a constant "
                                       "along the batch axis")
            if not const_src and (not t.shape or t.shape[0] != 1):
                raise UnsupportedError(f"{label}: dynamic batch: {where} reads {t} without a "
                                       "leading batch axis")
