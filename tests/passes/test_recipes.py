"""Derived constants carry the recipe that rebuilds them from their source (issue 21: a
compressed library stores the source and redoes the layout steps at load time). For every
constant a pass derived, on the zoo and the real models, at every target block size, the
recipe must give the value byte for byte, Winograd included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sqzc.driver as drv
from sqzc.ir import Graph
from sqzc.ops import ConstAttrs, OpKind
from sqzc.ops.recipes import PackConv, PackQConv, PadTo, Winograd, recipe_matches
from sqzc.tools.zoo import build

SHARED = Path(__file__).resolve().parents[3] / "shared" / "models"
REAL = ["derived/squeezenet1.0-12-int8-qoperator.derived.onnx",
        "deepcomp/squeezenet1.0-deepcompression.onnx"]


def _optimized(path: Path, cpu: str) -> Graph:
    opts = drv.CompileOptions(target_cpu=cpu)
    g = drv.load_graph(str(path), opts)
    drv.optimize(g, opts)
    return g


@pytest.mark.parametrize("cpu", ("znver4", "haswell"))
@pytest.mark.parametrize("model", ["squeezenet1.1", *REAL])
def test_every_derived_constant_rebuilds_from_its_recipe(model: str, cpu: str,
                                                         tmp_path: Path) -> None:
    if model.endswith(".onnx"):
        path = SHARED / model
        if not path.is_file():
            pytest.fail(f"missing shared model {path} (see ../shared/models/MANIFEST.md)")
    else:
        path = tmp_path / "m.onnx"
        path.write_bytes(build(model).SerializeToString())
    g = _optimized(path, cpu)
    steps: set[type] = set()
    for nid in g.nodes():
        op = g.op(nid)
        if op.kind is not OpKind.CONST or op.attrs.recipe is None:  # type: ignore[attr-defined]
            continue
        a = op.attrs
        assert isinstance(a, ConstAttrs)
        assert recipe_matches(a.recipe, a.value), nid
        steps.update(type(s) for s in a.recipe.steps)
    expected = {PackQConv} if "int8" in model else {PackConv, PadTo, Winograd}
    assert expected <= steps, steps


def test_a_recipe_that_does_not_rebuild_its_value_is_an_internal_error() -> None:
    from sqzc.errors import InternalError
    from sqzc.ir_verifier import verify
    from sqzc.ops.recipes import recipe_of

    g = Graph("g")
    w = np.arange(8, dtype=np.float32).reshape(2, 1, 2, 2)
    wrong = np.zeros((1, 1, 2, 2, 16), np.float32)  # not pack_conv_weight(w, 16)
    g.add_const(wrong, "w", ("w",), recipe_of(w, PackConv(16)))
    with pytest.raises(InternalError, match="recipe .*PackConv.* does not rebuild"):
        verify(g)
