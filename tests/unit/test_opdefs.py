"""One definition per op (issue 20): every ``OpKind`` has an ``OpDef``, and the kernels the
definitions declare are exactly the emitters the backend registers, so a kind cannot be
given a layout or variant nobody emits, and no emitter serves an undeclared one."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import sqzc.backends.llvm.emit  # noqa: F401  (registers the emitters)
from sqzc.backends.llvm.emit.registry import EMITTERS
from sqzc.errors import InternalError, ModelError
from sqzc.ops import (
    OPDEFS,
    ConvAttrs,
    OpDef,
    OpKind,
    OrtOrder,
    TensorType,
    define,
    infer_type,
    kinds_tagged,
    make_activation,
    reference,
    variant_of,
)
from sqzc.ops.kinds import OpNode


def test_every_kind_has_one_definition() -> None:
    assert set(OPDEFS) == set(OpKind)
    assert all(k is d.kind for k, d in OPDEFS.items())


def test_declared_kernels_are_exactly_the_registered_emitters() -> None:
    declared = {(k, *key) for k, d in OPDEFS.items() for key in d.kernels}
    assert declared - set(EMITTERS) == set(), "declared kernels without an emitter"
    assert set(EMITTERS) - declared == set(), "emitters no definition declares"


def test_every_computing_kind_has_a_plain_kernel_for_its_operands() -> None:
    """Whatever assign-layout decides, the plain layout is the fallback: every kind that
    owns code has a plain kernel for each dtype class it takes."""
    for kind, d in OPDEFS.items():
        if kind in (OpKind.INPUT, OpKind.CONST):
            assert not d.kernels, kind
            continue
        wanted = {"float": ("float",), "int8": ("uint8", "int8"), "any": ("any",)}[d.operands]
        plain = {dc for dc, layout, _ in d.kernels if layout == "plain"}
        assert plain & {*wanted, "any"} or (d.operands == "any" and plain), kind


def test_attribute_classes_are_frozen_dataclasses() -> None:
    for d in OPDEFS.values():
        assert dataclasses.is_dataclass(d.attrs), d.kind
        assert d.attrs.__dataclass_params__.frozen, d.kind  # type: ignore[attr-defined]


def test_definitions_cannot_be_replaced() -> None:
    with pytest.raises(InternalError, match="defined twice"):
        define(OPDEFS[OpKind.ACTIVATION])


def test_tags_give_the_kind_sets() -> None:
    assert kinds_tagged("binary") == {OpKind.ADD, OpKind.SUB, OpKind.MUL, OpKind.DIV}
    assert kinds_tagged("activation") == {OpKind.ACTIVATION}


def test_conv_variant_follows_its_attributes() -> None:
    def op(**kw: object) -> OpNode:
        return OpNode(OpKind.CONV, ConvAttrs((3, 3), **kw), TensorType((1, 1, 1, 1), "float32"))

    assert variant_of(op()) == "direct"
    assert variant_of(op(winograd=4, packed=16, out_channels=1)) == "winograd"
    assert variant_of(op(ort_order=OrtOrder("sgemm", 128))) == "mlas"
    for v in ("direct", "winograd", "mlas"):
        assert (OpKind.CONV, "float", "plain" if v != "winograd" else "blocked", v) in EMITTERS


def test_queries_dispatch_through_the_table() -> None:
    x = TensorType((2, 3), "float32")
    assert infer_type(OpKind.ADD, OPDEFS[OpKind.ADD].attrs(), [x, TensorType((3,), "float32")]) == x
    a = np.arange(6, dtype=np.float32).reshape(2, 3) - 2
    relu = make_activation("relu")
    assert np.array_equal(reference(OpKind.ACTIVATION, relu, [a]), np.maximum(a, 0))
    with pytest.raises(ModelError, match="no reference semantics for input"):
        reference(OpKind.INPUT, OPDEFS[OpKind.INPUT].attrs(), [])
    assert isinstance(OPDEFS[OpKind.CONV], OpDef)
