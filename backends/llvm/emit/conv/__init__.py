"""Convolution emitters, one module per kernel variant: ``direct`` (plain NCHW),
``blocked`` (register-tiled NCHW[b]c, grouped convs too), ``depthwise`` (one vector
per channel block on NCHW[b]c), ``winograd`` (F(m x m, 3x3) on NCHW[b]c), ``mlas``
(onnxruntime's float summation order for QDQ convs it runs in float), ``qconv`` /
``qconv_blocked`` (QLinearConv plain, and VNNI / pair-dot on NCHW[b]c), ``integer``
(ConvInteger) and ``compact`` (one NCHW[b]c kernel for every layer, geometry at run
time: ``--optimize size``). ``sqzc.ops.variant_of`` picks among the float ones;
``tiling`` is the loop nest the blocked direct kernels share.

Importing this package registers its emitters."""

from sqzc.backends.llvm.emit.conv import (  # noqa: F401  (imported for registration)
    blocked,
    compact,
    depthwise,
    direct,
    integer,
    mlas,
    qconv,
    qconv_blocked,
    winograd,
)
