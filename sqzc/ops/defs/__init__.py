"""The op definitions, one module per op family (mirroring ``backends/llvm/emit/``).

Importing this package runs every module's ``define`` calls, filling ``OPDEFS``;
``sqzc.ops`` does that on import.
"""

from __future__ import annotations

from sqzc.ops.defs import conv, data, elementwise, matmul, pool, quantize, softmax

__all__ = ["conv", "data", "elementwise", "matmul", "pool", "quantize", "softmax"]
