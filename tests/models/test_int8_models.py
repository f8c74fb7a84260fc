"""int8 SqueezeNets: sqzc against onnxruntime on every quantized intermediate tensor.

Every model is compiled at -O3 from a copy whose 8-bit intermediates are extra graph
outputs (``int8_helpers.expose_8bit``: every uint8/int8 node output, typed with
``onnx.shape_inference`` plus the com.microsoft ops it does not know), and both engines
run it. onnxruntime is used with its default session options (all graph optimizations;
one intra-op thread, which does not change results), plus ``session.qdqisint8allowed=1``
for QDQ models with int8 activations (below), unless a test says otherwise.

What is compared:

* 8-bit tensors: in quantization steps (``|sqzc - ort|`` as integers). QOperator and QDQ
  models must be bit-exact against the onnxruntime configuration each test names: every
  QDQ group becomes an integer op with onnxruntime's QLinearConv arithmetic (exact int32
  sums, ``float(acc) * multiplier``, round half to even). Only sqzc's integer groups
  against onnxruntime's x86-64 float path for int8 activations are held to one step.
* The float Softmax output: bit-exact too (sqzc's softmax reproduces MLAS's exp
  polynomial and summation order, ``backends/llvm/emit/softmax/float.py``).
* Top-1 on the six photos of shared/data (the MANIFEST's labels) and on noise.

onnxruntime optimized vs unoptimized on the shared QDQ model (measured here with
onnxruntime 1.32.0, x86-64 AVX-512 VNNI; ``test_shared_qdq_ort_unoptimized_vs_optimized``
checks the shape of it): with ``ORT_DISABLE_ALL`` every DQ -> Conv -> Q runs in float;
the default session fuses them into QLinearConv. The first tensor that differs is always
off by exactly one step (``fire2/squeeze1x1`` on five photos and noise1,
``fire2/expand3x3`` on noise0, ``conv1`` on noise2), and the difference then compounds
layer by layer to up to 6 steps at fire9/conv10. Differing elements over the 37 exposed
tensors (3,947,728 elements per input) are in ``ORT_NOOPT_VS_OPT`` (hummingbird: none;
chelsea: 75,971, max 6 steps): 437,298 of 35,529,552 elements (1.2%) over the 9 inputs.
Top-1 is the same in both modes on every input. sqzc follows the optimized (fused) path
and is bit-exact with it (0 mismatches on all 9 inputs, softmax output included), which is
why ``test_shared_qdq_bit_exact`` compares with the default session and not the unfused one.

Zoo models (``sqzc.tools.zoo`` SqueezeNet 1.0 and 1.1, opset 13, 64x64 inputs, 100 classes,
quantized here with ``quantize_static``; see ``int8_helpers.quantize``): a half fraction
of {QDQ, QOperator} x {per-tensor, per-channel} x {reduce_range off, on} x {QUInt8, QInt8
activations} (weights QInt8): each of the 16 settings runs on one of the two models,
SqueezeNet 1.0 when per_channel + reduce_range + int8-activations is odd, so each model
sees both formats, both granularities, both ranges and both activation types.
Measured (3 noise inputs, 39 exposed tensors each): every setting bit-exact with default
onnxruntime, QOperator and QDQ, QUInt8 and QInt8.

QInt8 activations: sqzc compiles every QDQ group to integer code, as onnxruntime does
with ``session.qdqisint8allowed=1`` (its default on Arm64), and is bit-exact with that
(``test_zoo_qdq_bit_exact``). onnxruntime 1.32's x86-64 default fuses a QDQ conv only if
its S8->U8 transformer turns both its input and its output Q -> DQ pair into uint8: in
the plain quantized SqueezeNets conv1 and conv10; the other 24 convs stay DQ -> float
Conv (im2col + sgemm) -> Q, and in the exposed copies (every Q output also a graph
output, which blocks the rewrite) all 26. Against that default sqzc's integer groups
are within one step layer by layer (each fed onnxruntime's inputs); end to end the
flips compound to up to 6 steps, as between onnxruntime's own fused and float runs
(``test_zoo_qdq_s8_layer_by_layer_within_one_step_of_ort_x86_default``).
``--no-fuse-int8-qdq`` makes sqzc take the x86-64 default's per-conv choice and sum the
float convs in MLAS's order, bit-exact with it (``test_zoo_qdq_s8_fuses_what_onnxruntime_fuses``,
``test_zoo_qdq_s8_ort_x86_float_path_bit_exact``).

Weights: the int8 libraries' weights are ~25% of the float ones without Winograd and
~9-11% with it (``weights_bytes`` of the compile metadata), asserted < 30%.

Runtime: ~18 libraries are compiled up front in parallel worker processes
(``int8_helpers.precompile``; ``SQZC_TEST_SERIAL=1`` compiles lazily instead).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from int8_helpers import (
    INPUT,
    OUTPUT,
    TOP1,
    ZOO_ARGS,
    Exposed,
    LAYER_INPUT,
    ExposedModels,
    OrtRunner,
    QuantConfig,
    StepDiff,
    noise_inputs,
    photo_inputs,
    precompile,
    quantize,
    step_diffs,
    summarize,
)
from model_libs import find_shared_dir
from sqz_testing import QDQ_MODES, assert_close, compile_and_load, ort_optimized_op_types

import sqzc
from sqzc.driver import CompileOptions
from sqzc.tools.zoo import build

pytest.importorskip("onnxruntime")

OPT_LEVEL = 3
SHARED = {
    "qoperator": "models/derived/squeezenet1.0-12-int8-qoperator.derived.onnx",
    "qdq": "models/derived/squeezenet1.0-12-int8-qdq.derived.onnx",
}
FP32 = "models/derived/squeezenet1.0-7-fp32.derived.onnx"
NOISE_SEEDS = (0, 1, 2)
INPUT_IDS = [*TOP1, *(f"noise{s}" for s in NOISE_SEEDS)]
WEIGHT_RATIO_LIMIT = 0.30

#: onnxruntime ORT_DISABLE_ALL vs default session on the shared QDQ model: per input,
#: (differing elements over the 37 exposed tensors, largest difference in steps).
ORT_NOOPT_VS_OPT = {
    "images/dog.jpg": (39_241, 5),
    "images/hummingbird.jpg": (0, 0),
    "images/kitten_224.png": (53_562, 6),
    "images/chelsea.png": (75_971, 6),
    "images/coffee.png": (81_340, 5),
    "reference/fish.png": (43_699, 6),
    "noise0": (35_547, 4),
    "noise1": (62_516, 5),
    "noise2": (45_422, 5),
}


def _zoo_configs() -> list[QuantConfig]:
    configs = []
    for fmt in ("qdq", "qop"):
        for pc in (False, True):
            for rr in (False, True):
                for act in ("u8", "s8"):
                    odd = (pc + rr + (act == "s8")) % 2 == 1
                    configs.append(QuantConfig("squeezenet1.0" if odd else "squeezenet1.1",
                                               fmt, pc, rr, act))
    return configs


ZOO_CONFIGS = _zoo_configs()

#: Tests that run compiled zoo libraries (``_precompile`` builds theirs up front).
_ZOO_LIB_TESTS = {"test_zoo_qoperator_bit_exact", "test_zoo_qdq_bit_exact",
                  "test_zoo_qdq_s8_layer_by_layer_within_one_step_of_ort_x86_default"}

#: onnxruntime's session config for QDQ models with int8 activations: sqzc fuses their
#: groups into integer ops as onnxruntime does with this entry (its default on Arm64);
#: without it, onnxruntime on x86-64 runs 24 of SqueezeNet's 26 convs in float.
INT8_ALLOWED = {"session.qdqisint8allowed": "1"}


def _ort_reference(cfg: QuantConfig) -> dict[str, str]:
    """The onnxruntime configuration sqzc's default reproduces for ``cfg``: default
    session options, plus ``INT8_ALLOWED`` for QDQ with int8 activations."""
    return INT8_ALLOWED if cfg.fmt == "qdq" and cfg.activation == "s8" else {}


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def exposed_models(tmp_path_factory: pytest.TempPathFactory) -> ExposedModels:
    return ExposedModels(tmp_path_factory.mktemp("int8-models"))


@pytest.fixture(scope="module", autouse=True)
def _precompile(request: pytest.FixtureRequest, exposed_models: ExposedModels) -> None:
    """Compile every library the selected tests of this module need, in parallel."""
    shared = find_shared_dir()
    jobs: dict[Path, None] = {}
    for item in request.session.items:
        if getattr(item, "module", None) is not request.module:
            continue
        names = getattr(item, "fixturenames", ())
        for kind in SHARED:
            if f"shared_{kind}" in names and shared and (shared / SHARED[kind]).is_file():
                jobs[exposed_models.file(shared / SHARED[kind]).path] = None
        callspec = getattr(item, "callspec", None)
        cfg = callspec.params.get("cfg") if callspec else None
        if isinstance(cfg, QuantConfig) and getattr(item, "originalname", "") in _ZOO_LIB_TESTS:
            jobs[exposed_models.zoo(cfg).path] = None
            if "layer_by_layer" in item.originalname:  # type: ignore[attr-defined]
                jobs[exposed_models.zoo_layerwise(cfg).path] = None
    precompile([(path, OPT_LEVEL) for path in jobs])


class Compiled:
    """An exposed model, its sqzc library and onnxruntime sessions (built on demand), those
    with the session config entries ``ort_config``."""

    def __init__(self, exposed: Exposed, ort_config: dict[str, str] | None = None,
                 **options: object) -> None:
        self.exposed = exposed
        self.lib = compile_and_load(exposed.path, opt_level=OPT_LEVEL, **options)
        self.ort_config = ort_config or {}
        self._ort: dict[str, OrtRunner] = {}

    @property
    def names(self) -> list[str]:
        return self.exposed.names

    def sqzc(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return self.lib.run({INPUT: x})

    def ort(self, x: np.ndarray, mode: str = "default") -> dict[str, np.ndarray]:
        """``default`` session or ``noopt`` (ORT_DISABLE_ALL)."""
        if mode not in self._ort:
            self._ort[mode] = OrtRunner(self.exposed.model, optimized=mode != "noopt",
                                        config=self.ort_config)
        return self._ort[mode](x)


def _shared(shared_dir: Path, exposed_models: ExposedModels, kind: str) -> Compiled:
    path = shared_dir / SHARED[kind]
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    return Compiled(exposed_models.file(path))


@pytest.fixture(scope="module")
def shared_qoperator(shared_dir: Path, exposed_models: ExposedModels) -> Compiled:
    return _shared(shared_dir, exposed_models, "qoperator")


@pytest.fixture(scope="module")
def shared_qdq(shared_dir: Path, exposed_models: ExposedModels) -> Compiled:
    return _shared(shared_dir, exposed_models, "qdq")


@pytest.fixture(scope="module")
def images(shared_dir: Path) -> dict[str, np.ndarray]:
    """The six photos (224x224, BGR 0..255) and three uniform-noise images."""
    return {**photo_inputs(shared_dir), **noise_inputs(NOISE_SEEDS)}


def _image(images: dict[str, np.ndarray], name: str) -> np.ndarray:
    if name not in images:
        pytest.skip(f"{name} is not present")
    return images[name]


def _top1(p: np.ndarray) -> int:
    return int(np.argmax(p.ravel()))


def _explain(diffs: list[StepDiff]) -> str:
    count, steps = summarize(diffs)
    head = "\n  ".join(str(d) for d in diffs[:8])
    return (f"{count} elements differ (max {steps} steps) in {len(diffs)} tensor results:"
            f"\n  {head}")


# ----------------------------------------------------- shared QOperator model (224x224)


@pytest.mark.parametrize("name", INPUT_IDS, ids=lambda n: Path(n).name)
def test_shared_qoperator_bit_exact(shared_qoperator: Compiled,
                                    images: dict[str, np.ndarray], name: str) -> None:
    """All 37 ``*_quantized`` tensors (QuantizeLinear, 26 QLinearConv with ReLU folded,
    uint8 MaxPool, QLinearGlobalAveragePool) and the float softmax output are bit-exact;
    top-1 agrees and, on photos, is the MANIFEST's label. Measured: 0 mismatches on all
    9 inputs."""
    m, x = shared_qoperator, _image(images, name)
    assert len(m.names) == 37
    got, want = m.sqzc(x), m.ort(x)
    diffs = step_diffs(got, want, m.names)
    assert not diffs, _explain(diffs)
    assert got[OUTPUT].tobytes() == want[OUTPUT].tobytes(), "softmax output not bit-exact"
    assert _top1(got[OUTPUT]) == _top1(want[OUTPUT])
    if name in TOP1:
        assert _top1(got[OUTPUT]) == TOP1[name]


# generic (SSE2, int16 pairs on 8-lane vectors) in the default tier; the AVX-512 and AVX2
# pair kernels are the same code at other widths (exhaustive tier)
@pytest.mark.parametrize("target_cpu", [
    pytest.param("skylake-avx512", marks=pytest.mark.exhaustive),
    pytest.param("haswell", marks=pytest.mark.exhaustive), "generic"])
def test_shared_qoperator_bit_exact_without_vnni(shared_dir: Path,
                                                 exposed_models: ExposedModels,
                                                 images: dict[str, np.ndarray],
                                                 target_cpu: str) -> None:
    """The same model compiled for targets without AVX512-VNNI (AVX-512BW, AVX2, baseline
    x86-64), whose convs run the int16-pair ``pmaddwd`` kernel: still bit-exact with onnxruntime
    on every exposed tensor and the softmax output (two inputs)."""
    path = shared_dir / SHARED["qoperator"]
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    exposed = exposed_models.file(path)
    lib = compile_and_load(exposed.path, opt_level=OPT_LEVEL, target_cpu=target_cpu)
    ort = OrtRunner(exposed.model)
    for name in ("images/kitten_224.png", "noise0"):
        x = _image(images, name)
        got, want = lib.run({INPUT: x}), ort(x)
        diffs = step_diffs(got, want, exposed.names)
        assert not diffs, _explain(diffs)
        assert got[OUTPUT].tobytes() == want[OUTPUT].tobytes(), "softmax output not bit-exact"


# ----------------------------------------------------------- shared QDQ model (224x224)


@pytest.mark.parametrize("name", INPUT_IDS, ids=lambda n: Path(n).name)
def test_shared_qdq_bit_exact(shared_qdq: Compiled, images: dict[str, np.ndarray],
                              name: str) -> None:
    """The 37 QuantizeLinear outputs and the float softmax output are bit-exact with
    onnxruntime's default session (which fuses every DQ -> Conv -> Q of this uint8 model
    into QLinearConv); top-1 agrees (and is the MANIFEST's label on photos). Held to 0
    differing elements, not "within one step": 0 is what was measured on all 9 inputs and
    what the README claims, and a one-step bound would let an off-by-one in fold-qdq's
    requantization pass unnoticed."""
    m, x = shared_qdq, _image(images, name)
    assert len(m.names) == 37
    got, want = m.sqzc(x), m.ort(x)
    diffs = step_diffs(got, want, m.names)
    assert not diffs, _explain(diffs)
    assert got[OUTPUT].tobytes() == want[OUTPUT].tobytes(), "softmax output not bit-exact"
    assert _top1(got[OUTPUT]) == _top1(want[OUTPUT])
    if name in TOP1:
        assert _top1(got[OUTPUT]) == TOP1[name]


def test_shared_qdq_ort_unoptimized_vs_optimized(shared_qdq: Compiled,
                                                 images: dict[str, np.ndarray]) -> None:
    """Documents why the QDQ model is compared with onnxruntime's default (fused) session:
    its own unfused float path (ORT_DISABLE_ALL) first differs from the fused one by exactly
    one step, and that compounds downstream (``ORT_NOOPT_VS_OPT``); top-1 is unchanged."""
    m = shared_qdq
    measured = {}
    for name in INPUT_IDS:
        x = _image(images, name)
        opt, noopt = m.ort(x), m.ort(x, "noopt")
        diffs = step_diffs(noopt, opt, m.names)
        measured[name] = summarize(diffs)
        if diffs:
            assert diffs[0].max_steps == 1, f"{name}: first difference {diffs[0]}"
        assert _top1(noopt[OUTPUT]) == _top1(opt[OUTPUT]), name
    print("\nonnxruntime ORT_DISABLE_ALL vs default, shared QDQ model:", measured)
    assert max(steps for _, steps in measured.values()) > 1  # it compounds


def test_shared_fp32_quantized_s8s8_on_photos(shared_dir: Path, images: dict[str, np.ndarray],
                                             tmp_path: Path,
                                             record_property: pytest.RecordProperty) -> None:
    """The pretrained float SqueezeNet quantized as onnxruntime's quantizer does by
    default (QDQ, int8 activations and weights, every op type it quantizes; calibrated on
    the photos, as ``bench/run_matrix.py`` does): sqzc's IR holds 26 integer convs and no
    float one; on the six photos the softmax output is bit-exact with onnxruntime with
    ``session.qdqisint8allowed=1``, and top-1 is the MANIFEST's label and onnxruntime's
    default x86-64 session's (which runs 24 of the convs in float; measured: its
    probabilities differ by at most 0.012, on chelsea)."""
    fp32 = shared_dir / FP32
    if not fp32.is_file():
        pytest.skip(f"{fp32} is not present")
    photos = {name: images[name] for name in TOP1 if name in images}
    cfg = QuantConfig("squeezenet1.0-7-fp32", "qdq", False, False, "s8", all_ops=True)
    path = quantize(cfg, tmp_path, source=fp32, calibration=photos.values())
    graph = sqzc.compile(path, None, CompileOptions(opt_level=OPT_LEVEL)).graph
    kinds = [graph.op(n).kind.value for n in graph.nodes()]
    assert kinds.count("qconv") == 26 and "conv" not in kinds
    model = onnx.load(path)
    lib = compile_and_load(path, opt_level=OPT_LEVEL)
    fused, x86 = OrtRunner(model, config=INT8_ALLOWED), OrtRunner(model)
    worst = 0.0
    for name, x in photos.items():
        got, want, x86_want = lib.run({INPUT: x})[OUTPUT], fused(x)[OUTPUT], x86(x)[OUTPUT]
        assert got.tobytes() == want.tobytes(), name
        assert _top1(got) == TOP1[name] == _top1(x86_want), name
        worst = max(worst, float(np.abs(got - x86_want).max()))
    print(f"\ns8s8 QDQ on photos: max |sqzc - onnxruntime x86-64 default| = {worst:.4f}")
    record_property("max_abs_vs_x86_default", worst)


# ------------------------------------------------------ zoo models quantized in the test


@pytest.mark.parametrize("cfg", [c for c in ZOO_CONFIGS if c.fmt == "qop"],
                         ids=lambda c: c.id)
def test_zoo_qoperator_bit_exact(cfg: QuantConfig, exposed_models: ExposedModels) -> None:
    """QOperator (QLinearConv, QLinearConcat, uint8/int8 MaxPool,
    QLinearGlobalAveragePool): every 8-bit tensor and the float softmax output
    bit-exact on 3 noise inputs, same top-1."""
    m = Compiled(exposed_models.zoo(cfg))
    assert any(n.op_type == "QLinearConv" for n in m.exposed.model.graph.node)
    for x in noise_inputs(NOISE_SEEDS, int(ZOO_ARGS["image_size"])).values():
        got, want = m.sqzc(x), m.ort(x)
        diffs = step_diffs(got, want, m.names)
        assert not diffs, _explain(diffs)
        assert got[OUTPUT].tobytes() == want[OUTPUT].tobytes(), "softmax not bit-exact"
        assert _top1(got[OUTPUT]) == _top1(want[OUTPUT])


@pytest.mark.parametrize("cfg", [c for c in ZOO_CONFIGS if c.fmt == "qdq"], ids=lambda c: c.id)
def test_zoo_qdq_bit_exact(cfg: QuantConfig, exposed_models: ExposedModels) -> None:
    """QDQ: every QuantizeLinear output and the float softmax output bit-exact with
    onnxruntime, same top-1: its default session for uint8 activations, with
    ``session.qdqisint8allowed=1`` for int8 ones (all 26 convs integer in both engines)."""
    m = Compiled(exposed_models.zoo(cfg), _ort_reference(cfg))
    for x in noise_inputs(NOISE_SEEDS, int(ZOO_ARGS["image_size"])).values():
        got, want = m.sqzc(x), m.ort(x)
        diffs = step_diffs(got, want, m.names)
        assert not diffs, _explain(diffs)
        assert got[OUTPUT].tobytes() == want[OUTPUT].tobytes(), "softmax not bit-exact"
        assert _top1(got[OUTPUT]) == _top1(want[OUTPUT])


S8_QDQ = [c for c in ZOO_CONFIGS if c.fmt == "qdq" and c.activation == "s8"]


@pytest.mark.parametrize("cfg", S8_QDQ, ids=lambda c: c.id)
def test_zoo_qdq_s8_layer_by_layer_within_one_step_of_ort_x86_default(
        cfg: QuantConfig, exposed_models: ExposedModels,
        record_property: pytest.RecordProperty) -> None:
    """int8 activations against onnxruntime's default x86-64 session, which runs the
    exposed model's 26 convs as DQ -> float Conv -> Q. Layer by layer (every group fed
    onnxruntime's own input tensors, ``int8_helpers.layerwise``) sqzc's integer groups
    are within one step of it: an exact int32 sum and a rounded float sum land on
    different sides of a .5 in a few elements (measured with onnxruntime 1.32: 5, 1, 3
    and 3 elements of 1,538,904 / 923,256 per setting over the 3 inputs, in the order of
    ``S8_QDQ``). End to end those flips compound, as between onnxruntime's own fused and
    float runs (``test_shared_qdq_ort_unoptimized_vs_optimized``): measured 36,104
    elements up to 6 steps apart (SqueezeNet 1.0 per-tensor), 5,247 up to 4 (1.1
    per-channel), 189 and 2 one step apart (the reduce_range ones); top-1 agrees on every
    input."""
    size = int(ZOO_ARGS["image_size"])
    e, cut = exposed_models.zoo(cfg), exposed_models.zoo_layerwise(cfg)
    lib, cut_lib = (compile_and_load(x.path, opt_level=OPT_LEVEL) for x in (e, cut))
    ort = OrtRunner(e.model)
    layer_diffs, end_to_end = [], []
    for x in noise_inputs(NOISE_SEEDS, size).values():
        want = ort(x)
        feeds = {INPUT: x, **{n.name: want[n.name[:-len(LAYER_INPUT)]]
                              for n in cut.model.graph.input if n.name.endswith(LAYER_INPUT)}}
        layer_diffs += step_diffs(cut_lib.run(feeds), want, e.names)
        got = lib.run({INPUT: x})
        end_to_end += step_diffs(got, want, e.names)
        assert _top1(got[OUTPUT]) == _top1(want[OUTPUT])
    print(f"\n{cfg.id}: layer by layer {summarize(layer_diffs)}, end to end "
          f"{summarize(end_to_end)} (differing elements, max steps)")
    record_property("layer_by_layer", summarize(layer_diffs))
    record_property("end_to_end", summarize(end_to_end))
    assert summarize(layer_diffs)[1] <= 1, _explain(layer_diffs)


#: every QInt8 model in both modes; the float path's library build and bit-exact check for
#: every other model is a sweep over the same code (exhaustive tier, which .ci/run runs)
_FUSE_CASES = [pytest.param(cfg, mode.values[0], id=f"{cfg.id}-{mode.id}",
                            marks=[pytest.mark.exhaustive] if i % 2 and not mode.values[0]
                            else [])
               for i, cfg in enumerate(S8_QDQ) for mode in QDQ_MODES]


@pytest.mark.parametrize("cfg, fused", _FUSE_CASES)
def test_zoo_qdq_s8_fuses_what_onnxruntime_fuses(cfg: QuantConfig, fused: bool,
                                                 exposed_models: ExposedModels,
                                                 tmp_path: Path) -> None:
    """The QInt8 QDQ models as quantized (not exposed): sqzc folds as many convs into
    integer convs as onnxruntime turns into QLinearConv, all 26 by default (as with
    ``session.qdqisint8allowed=1``), 2 with ``--no-fuse-int8-qdq`` (conv1 and conv10, as
    its default x86-64 session; the other 24 marked for the MLAS-order float path), and
    with ``--no-fuse-int8-qdq`` its softmax output is bit-exact with that onnxruntime on 3
    noise inputs (the default's bytes: ``test_zoo_qdq_bit_exact``)."""
    exposed_models.zoo(cfg)  # quantizes on first use
    path = exposed_models.workdir / "quantized" / f"{cfg.id}.onnx"
    model = onnx.load(path)
    graph = sqzc.compile(path, None, CompileOptions(opt_level=OPT_LEVEL,
                                                    fuse_int8_qdq=fused)).graph
    kinds = [graph.op(n).kind.value for n in graph.nodes()]
    mlas = [n for n in graph.nodes() if graph.op(n).kind.value == "conv"
            and graph.op(n).attrs.ort_order]  # type: ignore[attr-defined]
    ort_fused = ort_optimized_op_types(model, tmp_path, fused).count("QLinearConv")
    assert kinds.count("qconv") == ort_fused == (26 if fused else 2)
    assert len(mlas) == kinds.count("conv") == 26 - ort_fused
    if fused:
        return
    lib = compile_and_load(path, opt_level=OPT_LEVEL, fuse_int8_qdq=False)
    ort = OrtRunner(model)
    for x in noise_inputs(NOISE_SEEDS, int(ZOO_ARGS["image_size"])).values():
        got, want = lib.run({INPUT: x}), ort(x)
        assert got[OUTPUT].tobytes() == want[OUTPUT].tobytes(), "softmax not bit-exact"


# one per model; SqueezeNet 1.0's (the same kernels on other shapes) is the exhaustive tier's
@pytest.mark.parametrize("cfg", [
    pytest.param(c, marks=[pytest.mark.exhaustive] if c.id.startswith("squeezenet1.0") else [])
    for c in S8_QDQ[::2]], ids=lambda c: c.id)
def test_zoo_qdq_s8_ort_x86_float_path_bit_exact(cfg: QuantConfig,
                                                 exposed_models: ExposedModels) -> None:
    """``--no-fuse-int8-qdq``: the exposed QInt8 models (where onnxruntime's x86-64
    default runs all 26 convs in float: every Q output is a graph output, which blocks its
    S8->U8 rewrite) are bit-exact with that default session on every 8-bit tensor and the
    softmax output: sqzc sums those convs in MLAS's float order (``sqzc.ort.rules``)."""
    m = Compiled(exposed_models.zoo(cfg), fuse_int8_qdq=False)
    for x in noise_inputs(NOISE_SEEDS, int(ZOO_ARGS["image_size"])).values():
        got, want = m.sqzc(x), m.ort(x)
        diffs = step_diffs(got, want, m.names)
        assert not diffs, _explain(diffs)
        assert_close(got[OUTPUT], want[OUTPUT], OUTPUT)
        assert got[OUTPUT].tobytes() == want[OUTPUT].tobytes(), "softmax not bit-exact"


#: onnxruntime's quantizer with its default op types: Softmax becomes com.microsoft
#: QLinearSoftmax (QOperator) or DQ -> Softmax -> Q (QDQ), the form most users get.
ALL_OPS = [QuantConfig("squeezenet1.1", fmt, False, False, act, all_ops=True)
           for fmt in ("qop", "qdq") for act in ("u8", "s8")]


@pytest.mark.parametrize("cfg", ALL_OPS, ids=lambda c: c.id)
def test_zoo_default_op_types_bit_exact(cfg: QuantConfig, exposed_models: ExposedModels) -> None:
    """The quantized model as a user gets it (not exposed): its quantized softmax output
    bit-exact with onnxruntime (``_ort_reference``) on 3 noise inputs, same top-1."""
    exposed_models.zoo(cfg)  # quantizes on first use
    path = exposed_models.workdir / "quantized" / f"{cfg.id}.onnx"
    model = onnx.load(path)
    kinds = {n.op_type for n in model.graph.node}
    assert ("QLinearSoftmax" if cfg.fmt == "qop" else "Softmax") in kinds
    lib = compile_and_load(path, opt_level=OPT_LEVEL)
    ort = OrtRunner(model, config=_ort_reference(cfg))
    for x in noise_inputs(NOISE_SEEDS, int(ZOO_ARGS["image_size"])).values():
        got, want = lib.run({INPUT: x}), ort(x)
        assert got[OUTPUT].tobytes() == want[OUTPUT].tobytes()
        assert _top1(got[OUTPUT]) == _top1(want[OUTPUT])


def _ir_after_fold_qdq(model: Path, *flags: str) -> str:
    """``sqzc dump MODEL --print-after=fold-qdq`` (the IR a user inspects)."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "sqzc", "dump", str(model),
                        "--print-after=fold-qdq", *flags],
                       capture_output=True, text=True, check=True)
    return r.stderr


@pytest.mark.parametrize("cfg", [c for c in ZOO_CONFIGS if c.fmt == "qdq"], ids=lambda c: c.id)
def test_ir_after_fold_qdq_has_no_float_conv(cfg: QuantConfig, shared_dir: Path,
                                             exposed_models: ExposedModels) -> None:
    """The IR dump after fold-qdq: all 26 convs are ``qconv`` (QUInt8 and QInt8 QDQ
    models, and the shared QDQ model); with ``--no-fuse-int8-qdq`` a QInt8 one keeps
    exactly the 24 convs onnxruntime's x86-64 default runs in float, marked
    ``ort_order=sgemm/...``."""
    exposed_models.zoo(cfg)
    models = [exposed_models.workdir / "quantized" / f"{cfg.id}.onnx"]
    if cfg == ZOO_CONFIGS[0] and (shared_dir / SHARED["qdq"]).is_file():
        models.append(shared_dir / SHARED["qdq"])
    for model in models:
        ir = _ir_after_fold_qdq(model)
        assert ir.count(" = qconv(") == 26 and " = conv(" not in ir, model.name
        if cfg.activation == "s8":
            ir = _ir_after_fold_qdq(model, "--no-fuse-int8-qdq")
            assert ir.count(" = qconv(") == 2 and ir.count(" = conv(") == 24
            assert ir.count("ort_order=sgemm/") == 24


# ------------------------------------------------------------------------------ weights


def _weights_bytes(model: Path) -> int:
    """``weights_bytes`` of an -O3 compilation (passes only; no code is generated)."""
    return int(sqzc.compile(model, None, CompileOptions(opt_level=OPT_LEVEL))
               .metadata["weights_bytes"])


@pytest.mark.parametrize("kind", sorted(SHARED))
def test_shared_int8_weights_below_30_percent(kind: str, shared_dir: Path,
                                              record_property: pytest.RecordProperty) -> None:
    """The compression story: int8 SqueezeNet 1.0 (224, 1000 classes) vs the fp32 one.
    Measured: 1,267,840 vs 11,593,920 bytes (10.9%) for both formats. The float library
    stores its Winograd-transformed 3x3 filters (6x6 instead of 3x3 per filter): with
    ``--no-winograd`` it holds 4,958,400 bytes (int8: 25.6%). The int8 bytes include the
    packed bias tables (int32 bias + float32 multiplier per output channel)."""
    paths = [shared_dir / SHARED[kind], shared_dir / FP32]
    for p in paths:
        if not p.is_file():
            pytest.skip(f"{p} is not present")
    int8, fp32 = (_weights_bytes(p) for p in paths)
    ratio = int8 / fp32
    print(f"\n{kind}: int8 weights {int8:,} B, float {fp32:,} B, ratio {ratio:.1%}")
    record_property("weights_bytes", {"int8": int8, "float32": fp32, "ratio": ratio})
    assert ratio < WEIGHT_RATIO_LIMIT


@pytest.mark.parametrize("cfg", ZOO_CONFIGS, ids=lambda c: c.id)
def test_zoo_int8_weights_below_30_percent(cfg: QuantConfig, exposed_models: ExposedModels,
                                           tmp_path: Path,
                                           record_property: pytest.RecordProperty) -> None:
    """Same for every quantized zoo model vs its float original (64x64, 100 classes).
    Measured: 819,200 vs 9,807,040 B (1.0) and 801,920 vs 9,755,328 B (1.1), 8.4%/8.2%
    (float with Winograd filters, see above)."""
    exposed_models.zoo(cfg)  # quantizes on first use
    int8 = _weights_bytes(exposed_models.workdir / "quantized" / f"{cfg.id}.onnx")
    float_model = tmp_path / "float.onnx"
    onnx.save(build(cfg.model, **ZOO_ARGS), float_model)  # type: ignore[arg-type]
    fp32 = _weights_bytes(float_model)
    ratio = int8 / fp32
    print(f"\n{cfg.id}: int8 weights {int8:,} B, float {fp32:,} B, ratio {ratio:.1%}")
    record_property("weights_bytes", {"int8": int8, "float32": fp32, "ratio": ratio})
    assert ratio < WEIGHT_RATIO_LIMIT
