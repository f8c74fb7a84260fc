"""sqzc's deployment runtime: loads compiled libraries with ctypes; needs only numpy.

Importing this package (and calling models) never imports onnx, llvmlite or networkx, so
a machine that only runs compiled models needs nothing but numpy::

    from sqzc.runtime import load
    model = load("squeezenet.so")
    probs = model(batch_of_images)
"""

from sqzc.runtime.library import ABI_VERSION, TensorSpec
from sqzc.runtime.loader import CompiledModel, load

__all__ = ["ABI_VERSION", "CompiledModel", "TensorSpec", "load"]
