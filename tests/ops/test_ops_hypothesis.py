"""Property sweeps over Conv and MaxPool/AveragePool attributes (hypothesis, derandomized
so CI is deterministic): any valid combination must match onnxruntime."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from onnx_builders import init, rand, single
from sqz_testing import assert_matches_ort

from sqzc.ops import conv_out_dim, pool_out_dim

SETTINGS = settings(deadline=None, max_examples=25, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@st.composite
def conv_cases(draw: st.DrawFn) -> dict:
    group = draw(st.sampled_from([1, 1, 2, 3]))
    c_in = group * draw(st.integers(1, 3))
    c_out = group * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    h, w = draw(st.integers(3, 10)), draw(st.integers(3, 10))
    strides = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    auto_pad = draw(st.sampled_from(["NOTSET", "NOTSET", "NOTSET", "VALID", "SAME_UPPER",
                                     "SAME_LOWER"]))
    # onnxruntime refuses dilation with SAME_* (test_conv checks those another way)
    dil = [1, 1] if auto_pad.startswith("SAME") else [draw(st.integers(1, 2)),
                                                       draw(st.integers(1, 2))]
    pads = [draw(st.integers(0, 3)) for _ in range(4)] if auto_pad == "NOTSET" else None
    if pads is not None:
        assume(conv_out_dim(h, kh, strides[0], dil[0], pads[0], pads[2]) >= 1)
        assume(conv_out_dim(w, kw, strides[1], dil[1], pads[1], pads[3]) >= 1)
    else:
        assume(h >= (kh - 1) * dil[0] + 1 and w >= (kw - 1) * dil[1] + 1)
    return dict(group=group, c_in=c_in, c_out=c_out, kernel=(kh, kw), hw=(h, w),
                strides=strides, dilations=dil, auto_pad=auto_pad, pads=pads,
                bias=draw(st.booleans()), opset=draw(st.sampled_from([7, 11, 13, 22])),
                seed=draw(st.integers(0, 1000)))


@SETTINGS
@given(case=conv_cases())
def test_conv_property(case: dict) -> None:
    """Random Conv: groups, non-square kernels up to 5, strides up to 3, dilations, explicit
    (often asymmetric, sometimes larger than the kernel) pads or auto_pad, with/without
    bias, Conv-1/11/22."""
    kh, kw = case["kernel"]
    inits = [init("W", rand((case["c_out"], case["c_in"] // case["group"], kh, kw),
                            case["seed"], 0.5))]
    if case["bias"]:
        inits.append(init("B", rand((case["c_out"],), case["seed"] + 1)))
    attrs: dict = {"kernel_shape": [kh, kw], "strides": case["strides"],
                   "dilations": case["dilations"], "group": case["group"]}
    if case["pads"] is not None:
        attrs["pads"] = case["pads"]
    else:
        attrs["auto_pad"] = case["auto_pad"]
    m = single("Conv", {"x": [1, case["c_in"], *case["hw"]]}, opset=case["opset"],
               initializers=inits, **attrs)
    assert_matches_ort(m, seed=case["seed"])


@st.composite
def pool_cases(draw: st.DrawFn) -> dict:
    op = draw(st.sampled_from(["MaxPool", "AveragePool"]))
    k = [draw(st.integers(1, 4)), draw(st.integers(1, 4))]
    h, w = draw(st.integers(2, 10)), draw(st.integers(2, 10))
    strides = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    auto_pad = draw(st.sampled_from(["NOTSET", "NOTSET", "NOTSET", "VALID", "SAME_UPPER",
                                     "SAME_LOWER"]))
    # onnxruntime derives SAME pads ignoring dilation (test_pool checks those another way)
    dil = [1, 1] if auto_pad.startswith("SAME") else [draw(st.integers(1, 2)),
                                                       draw(st.integers(1, 2))]
    ceil = draw(st.integers(0, 1))
    pads = None
    if auto_pad == "NOTSET":  # onnxruntime requires each pad to be smaller than the kernel
        pads = [draw(st.integers(0, k[i % 2] - 1)) for i in range(4)]
        for ax in range(2):
            assume(pool_out_dim((h, w)[ax], k[ax], strides[ax], dil[ax], pads[ax],
                                pads[ax + 2], bool(ceil)) >= 1)
    else:
        assume(h >= (k[0] - 1) * dil[0] + 1 and w >= (k[1] - 1) * dil[1] + 1)
    opset = 12 if op == "MaxPool" else (19 if dil != [1, 1] else draw(st.sampled_from(
        [11, 19, 22])))
    return dict(op=op, kernel=k, hw=(h, w), strides=strides, dilations=dil, pads=pads,
                auto_pad=auto_pad, ceil=ceil, count_include_pad=draw(st.integers(0, 1)),
                opset=opset, seed=draw(st.integers(0, 1000)), c=draw(st.integers(1, 3)))


@SETTINGS
@given(case=pool_cases())
def test_pool_property(case: dict) -> None:
    """Random MaxPool-12 / AveragePool-11/19/22: kernels 1-4, strides, dilations,
    pads below the kernel or auto_pad, ceil_mode, count_include_pad."""
    attrs: dict = {"kernel_shape": case["kernel"], "strides": case["strides"],
                   "ceil_mode": case["ceil"]}
    if case["dilations"] != [1, 1]:
        attrs["dilations"] = case["dilations"]
    if case["pads"] is not None:
        attrs["pads"] = case["pads"]
    else:
        attrs["auto_pad"] = case["auto_pad"]
    if case["op"] == "AveragePool":
        attrs["count_include_pad"] = case["count_include_pad"]
    m = single(case["op"], {"x": [1, case["c"], *case["hw"]]}, opset=case["opset"], **attrs)
    x = rand((1, case["c"], *case["hw"]), case["seed"])
    assert_matches_ort(m, inputs={"x": x.astype(np.float32)})
