"""Model-file limits and malformed names found by the fuzzer (issue 6, hardening).

Each test here pins one root cause behind fuzz findings (tests/hardening/
test_hardening_fuzz.py classifies fuzz cases with these root causes as known, so the fuzz
test keeps failing on anything new).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from hardening_support import mini_squeezenet, save

import sqzc
from sqzc.errors import SqzcError

#: README "Safety and limits": single tensors are limited to 2^28 elements.
MAX_TENSOR_ELEMENTS = 1 << 28


def _with_conv_pads(node: str, pads: list[int]) -> onnx.ModelProto:
    m = mini_squeezenet()
    for n in m.graph.node:
        if n.name == node:
            for a in n.attribute:
                if a.name == "pads":
                    a.ints[:] = pads
    return m


def _with_input_dims(h: int, w: int) -> onnx.ModelProto:
    m = mini_squeezenet()
    dims = m.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = h, w
    return m


OVERSIZED = {
    # conv10's output gets 2^32+3 rows: -O0 codegen then loops ~4e9 times in Python
    # (backends/llvm/emit/conv.py valid_range) -> hang.
    "conv10-bottom-pad-2^32": lambda: _with_conv_pads("conv10", [0, 0, 2**32 + 1, 0]),
    # conv10's output gets 2^62 rows: workspace_bytes = 737869762948382077504 wraps to
    # 12864 in sqz_workspace_size() and the library writes out of bounds -> SIGSEGV.
    "conv10-top-pad-2^62": lambda: _with_conv_pads("conv10", [2**62, 0, 0, 0]),
    # the graph input itself is 3 x 2^62 x 17: -O3 codegen loops over the rows in Python
    # (backends/llvm/emit/conv_blocked.py row_groups) -> hang.
    "input-rows-2^62": lambda: _with_input_dims(2**62, 17),
    # a 2^40 x 17 input: compiles, then sqzc.load(...)(x) raises numpy's MemoryError.
    "input-rows-2^40": lambda: _with_input_dims(2**40, 17),
}


def test_limit_models_are_valid_onnx() -> None:
    """The oversized models are well-formed: onnx's checker and shape inference accept them,
    so rejecting them is sqzc's job."""
    for make in OVERSIZED.values():
        m = make()
        onnx.checker.check_model(m)
        onnx.shape_inference.infer_shapes(m, strict_mode=True)


@pytest.mark.parametrize("case", sorted(OVERSIZED))
def test_oversized_tensors_are_rejected(case: str, tmp_path: Path) -> None:
    path = save(OVERSIZED[case](), tmp_path)
    with pytest.raises(SqzcError):  # analysis only (output=None): no codegen, no hang
        result = sqzc.compile(path, None)
        biggest = max(int(np.prod(result.graph.op(n).out.shape, dtype=object))
                      for n in result.graph.nodes())
        print(f"{case}: compiled; largest tensor {biggest} elements, workspace "
              f"{result.metadata['workspace_bytes']} bytes")


_CHILD = """
import sys, numpy as np, sqzc
try:
    sqzc.compile(sys.argv[1], sys.argv[2], sqzc.CompileOptions(opt_level=0))
    m = sqzc.load(sys.argv[2], threads=1)
    print("workspace", m.workspace_size, m.metadata["workspace_bytes"], flush=True)
    y = m(np.ones((1, 3, 17, 17), np.float32))
    print("RAN", y.shape)
except sqzc.SqzcError as e:
    print("SQZCERROR", type(e).__name__, e)
"""


def test_wrapped_workspace_does_not_crash(tmp_path: Path) -> None:
    path = save(OVERSIZED["conv10-top-pad-2^62"](), tmp_path)
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(tmp_path / "w.so")],
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, (f"child died with {proc.returncode}: {proc.stdout[-500:]}"
                                  f"{proc.stderr[-1500:]}")
    assert "SQZCERROR" in proc.stdout or "RAN" in proc.stdout, proc.stdout


def _model_with_raw_name(old: bytes, new: bytes) -> bytes:
    """The mini SqueezeNet with the node name ``old`` replaced by the bytes ``new``
    (not valid UTF-8, which the protobuf API would refuse to set)."""
    data = mini_squeezenet().SerializeToString()
    assert len(old) == len(new) and data.count(old) == 1
    return data.replace(old, new)


def test_non_utf8_node_name(tmp_path: Path) -> None:
    data = _model_with_raw_name(b"fire2/relu_squeeze1x1", b"fire2/relu_squeeze1x\xf2")
    path = tmp_path / "badname.onnx"
    path.write_bytes(data)
    m = onnx.load(str(path))
    onnx.checker.check_model(m)  # onnx accepts it
    try:
        sqzc.compile(path, tmp_path / "badname.so", sqzc.CompileOptions(opt_level=0))
    except SqzcError:
        return  # a clear error is fine
    x = np.random.default_rng(0).standard_normal((1, 3, 17, 17)).astype(np.float32)
    assert sqzc.load(tmp_path / "badname.so")(x).shape == (1, 10, 1, 1)
