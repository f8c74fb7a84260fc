"""Compressed weights (issue 21): lossless codecs for constant tensors, the container that
holds them in a library, and a Python model of the native decoder.

Compile side only, numpy and the standard library: ``codecs`` (bit I/O, canonical Huffman,
run lengths, Rice-delta codebooks, the per-tensor codec choice and the zero-order bound),
``container`` (the byte layout and its encoder) and ``reference_decoder`` (what the native
decoder does, step for step). The design and its measurements are in
docs/plans/compression.md (sections 1.2-1.4 and 4.2-4.3).
"""
