"""Deep-compressed zoo models (issue 21): pruned and weight-shared SqueezeNets, seeded.

``sqzc zoo --density D --codebook-bits B`` prunes every conv weight by magnitude and shares
its values (``sqzc.tools.zoo.deep_compress``). For such a model the default build
(``--weights auto``) must choose the compressed storage, store the weights within 1.05x the
per-tensor zero-order bound (conv weights at their bound, everything else raw, as issue 21
states it), and give outputs bit-identical to the raw build and within the float tolerance
of onnxruntime. Densities 0.1-1.0 with 4-8-bit codebooks; the default tier takes one
case, the exhaustive tier the rest, a pruned model without shared values included (its
values are all distinct: positions plus the values in full, the SPARSE_RAW codec).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqz_testing import assert_close, ort_run

import sqzc
from sqzc.driver import CompileOptions
from sqzc.ops import ConstAttrs
from sqzc.tools.zoo import build, deep_compress
from sqzc.weights.analysis import kernel_constants, zero_order_bound


@pytest.mark.parametrize("density, bits", [
    (0.3, 6),
    pytest.param(1.0, 4, marks=pytest.mark.exhaustive),
    pytest.param(0.1, 4, marks=pytest.mark.exhaustive),
    pytest.param(0.6, 8, marks=pytest.mark.exhaustive),
    pytest.param(0.3, 0, marks=pytest.mark.exhaustive),     # pruned only: SPARSE_RAW
], ids=lambda v: str(v))
def test_deep_compressed_zoo_model(density: float, bits: int, tmp_path: Path) -> None:
    model = build("squeezenet1.1", density=density, codebook_bits=bits, seed=5)
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    default = sqzc.compile(path, tmp_path / "auto.so", CompileOptions())
    sqzc.compile(path, tmp_path / "raw.so", CompileOptions(weights="raw"))
    meta = default.metadata
    assert meta["weights_storage"] == "compressed"

    graph = default.graph
    bound = 0.0
    for nid in kernel_constants(graph):
        attrs = graph.op(nid).attrs
        assert isinstance(attrs, ConstAttrs)
        source = np.asarray(attrs.recipe.source if attrs.recipe is not None else attrs.value)
        bound += zero_order_bound(source).total if source.ndim == 4 else source.nbytes
    stored = int(meta["weights_stored_bytes"])  # type: ignore[call-overload]
    assert stored <= 1.05 * bound, (stored, bound, stored / bound)

    packed, raw = sqzc.load(tmp_path / "auto.so", threads=1), sqzc.load(tmp_path / "raw.so")
    x = np.random.default_rng(2).standard_normal((1, 3, 224, 224)).astype(np.float32)
    got = packed(x)
    assert got.tobytes() == raw(x).tobytes()
    assert_close(got, ort_run(model, {"data_0": x})[0])


def test_deep_compress_prunes_and_shares() -> None:
    w = np.random.default_rng(0).standard_normal((32, 16, 3, 3))
    out = deep_compress(w, density=0.25, codebook_bits=3)
    nonzero = out != 0
    assert nonzero.sum() == round(0.25 * w.size)            # the largest quarter kept
    assert np.abs(w[nonzero]).min() >= np.abs(w[~nonzero]).max()
    assert np.unique(out[nonzero]).size <= 7                # 2**3 - 1 shared values
    assert np.array_equal(deep_compress(w), w)               # defaults: untouched


@pytest.mark.parametrize("weight_qdq, density, opset", [
    ("int4", 1.0, 21),
    pytest.param("int4-blocked", 1.0, 21, marks=pytest.mark.exhaustive),
    pytest.param("int8", 0.3, 13, marks=pytest.mark.exhaustive),  # int8 QDQ of a pruned model
], ids=lambda v: str(v))
def test_weight_qdq_zoo_model(weight_qdq: str, density: float, opset: int,
                              tmp_path: Path) -> None:
    """Weight-only QDQ zoo models (``sqzc zoo --weight-qdq``): the DequantizeLinear of each
    constant weight folds into float32 weights that keep their codes as the stored source
    (``Dequantize`` recipes: int4 codes in at most 4 bits a weight, plus the scale and
    zero-point tables, which the stored size counts: 5 bytes a block when blocked). The
    default build stores them compressed within 1.05x the zero-order bound of the codes
    plus those tables, bit-identical to the raw build, within the float tolerance of
    onnxruntime (which runs DequantizeLinear, then a float Conv)."""
    model = build("squeezenet1.1", opset=opset, density=density, weight_qdq=weight_qdq,
                  num_classes=100, image_size=64, seed=6)
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    default = sqzc.compile(path, tmp_path / "auto.so", CompileOptions())
    sqzc.compile(path, tmp_path / "raw.so", CompileOptions(weights="raw"))
    assert default.metadata["weights_storage"] == "compressed"
    graph = default.graph
    bound, codes, tables = 0.0, 0, 0
    for nid in kernel_constants(graph):
        attrs = graph.op(nid).attrs
        assert isinstance(attrs, ConstAttrs)
        source = np.asarray(attrs.recipe.source if attrs.recipe is not None else attrs.value)
        bound += min(zero_order_bound(source).total, source.nbytes) if source.ndim == 4 \
            else source.nbytes
        if source.ndim == 4:  # conv weights: their codes
            assert source.dtype == np.int8
            codes += source.size
            tables += 5 * len(attrs.recipe.steps[0].scale) if "blocked" in weight_qdq \
                else 8 * len(attrs.recipe.steps[0].scale)  # type: ignore[union-attr]
    stored = int(default.metadata["weights_stored_bytes"])  # type: ignore[call-overload]
    assert stored <= 1.05 * (bound + tables), (stored, bound, tables)
    biases = sum(np.asarray(graph.op(n).attrs.value).nbytes  # type: ignore[attr-defined]
                 for n in kernel_constants(graph) if len(graph.op(n).out.shape) == 1)
    if weight_qdq.startswith("int4"):  # 4 bits a code, plus scales and zero points
        assert stored <= codes / 2 + tables + biases + 256 * len(kernel_constants(graph))
    packed, raw = sqzc.load(tmp_path / "auto.so", threads=1), sqzc.load(tmp_path / "raw.so")
    x = np.random.default_rng(3).standard_normal((1, 3, 64, 64)).astype(np.float32)
    got = packed(x)
    assert got.tobytes() == raw(x).tobytes()
    assert_close(got, ort_run(model, {"data_0": x})[0])
