"""Reading an ONNX file safely: size limits, protobuf decoding, external data, checker.

Models come from the internet, so nothing here trusts the file: every failure becomes a
``ModelError`` naming the file, external data is only read from inside the model's
folder and within the bounds of the data file, and sizes are checked before allocating.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from onnx import external_data_helper

from sqzc.errors import ModelError
from sqzc.ir import MAX_TENSOR_ELEMENTS

__all__ = ["MAX_MODEL_BYTES", "MAX_TENSOR_ELEMENTS", "read_model"]

#: Largest model file or external-data total sqzc reads (bytes). SqueezeNets are ~5 MB.
MAX_MODEL_BYTES = 1 << 30
# (the per-tensor element limit lives in sqzc.ir: one limit for the whole compiler)


def read_model(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Load and validate ``path``: decode, resolve external data safely, run the checker."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as e:
        raise ModelError(f"{p}: cannot read model: {e.strerror}") from None
    if p.is_dir():
        raise ModelError(f"{p}: is a directory, not an ONNX file")
    if size == 0:
        raise ModelError(f"{p}: empty file is not an ONNX model")
    if size > MAX_MODEL_BYTES:
        raise ModelError(f"{p}: {size} bytes exceeds the {MAX_MODEL_BYTES}-byte model limit")
    data = p.read_bytes()
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise ModelError(f"{p}: not an ONNX model (protobuf decoding failed: {e})") from None
    if not model.HasField("graph") or (not model.graph.node and not model.graph.output):
        raise ModelError(f"{p}: not an ONNX model (no graph)")
    if not model.opset_import and model.ir_version >= 3:
        raise ModelError(f"{p}: model declares no opset_import")
    check_utf8_names(model, str(p))
    load_external_data_safely(model, p.parent, str(p))
    check_unique_outputs(model, str(p))
    check_model(model, str(p))
    return model


#: String fields that are only ever shown, never used to look anything up: bytes that are
#: not UTF-8 there are shown with replacement characters (context._text), as before.
_FREE_TEXT = frozenset({
    "onnx.NodeProto.name", "onnx.ModelProto.producer_name", "onnx.ModelProto.producer_version",
    "onnx.ModelProto.domain", "onnx.TensorShapeProto.Dimension.denotation",
    "onnx.TypeProto.denotation",
})


def check_utf8_names(model: onnx.ModelProto, label: str) -> None:
    """Refuse names (tensor, graph, op, attribute, dim_param, ...) that are not UTF-8.

    ONNX strings are UTF-8, but protobuf does not enforce it for onnx.proto's proto2
    fields: its Python API then hands out ``bytes`` instead of ``str``, which the IR cannot
    use as a name (a TypeError deep in the importer, in the library's metadata or in
    pathlib; the fuzzer found it for node names, and tensor, graph and external-data names
    had it too). Free text (doc strings, the producer, node names, metadata) is exempt: it
    is shown, never matched, and such models compiled before.
    """
    stack: list[tuple[Message, str]] = [(model, "model")]
    while stack:
        msg, path = stack.pop()
        for fd, value in msg.ListFields():
            if fd.name == "metadata_props":
                continue  # free text too (sqzc reads no metadata; external_data is checked)
            if fd.type == FieldDescriptor.TYPE_MESSAGE:
                items = [(None, value)] if isinstance(value, Message) else enumerate(value)
                stack.extend((v, _field_path(path, fd, i)) for i, v in items)
            elif fd.type == FieldDescriptor.TYPE_STRING and \
                    not fd.full_name.endswith(".doc_string") and fd.full_name not in _FREE_TEXT:
                items = [(None, value)] if isinstance(value, (str, bytes)) else enumerate(value)
                for i, v in items:
                    if isinstance(v, bytes):
                        raise ModelError(f"{label}: {_field_path(path, fd, i)} is not valid "
                                         f"UTF-8: {v!r}")


def _field_path(path: str, fd: FieldDescriptor, index: int | None) -> str:
    return f"{path}.{fd.name}" + ("" if index is None else f"[{index}]")


def _inside(base: Path, target: Path) -> bool:
    try:
        target.relative_to(base)
        return True
    except ValueError:
        return False


def load_external_data_safely(model: onnx.ModelProto, base_dir: Path, label: str) -> None:
    """Inline tensors stored as external data, refusing anything outside ``base_dir``.

    Absolute locations, ``..`` components, symlinks that resolve outside the model's
    folder, and offsets/lengths beyond the data file are refused before any byte is read.
    """
    base = base_dir.resolve()
    total = 0
    for tensor in external_data_helper._get_all_tensors(model):
        if not external_data_helper.uses_external_data(tensor):
            continue
        try:
            info = external_data_helper.ExternalDataInfo(tensor)
        except (ValueError, TypeError) as e:
            raise ModelError(f"{label}: tensor '{tensor.name}' has invalid external data "
                             f"fields: {e}") from None
        loc = info.location or ""
        where = f"{label}: tensor '{tensor.name}' external data '{loc}'"
        if not loc or os.path.isabs(loc) or ".." in Path(loc).parts or "\\" in loc:
            raise ModelError(f"{where}: refused (must be a relative path inside the model folder)")
        target = (base / loc).resolve()
        if not _inside(base, target):
            raise ModelError(f"{where}: refused (resolves outside the model folder)")
        if not target.is_file():
            raise ModelError(f"{where}: file not found")
        fsize = target.stat().st_size
        offset = int(info.offset or 0)
        length = int(info.length) if info.length is not None else fsize - offset
        if offset < 0 or length < 0 or offset + length > fsize:
            raise ModelError(f"{where}: offset {offset} + length {length} exceeds file size {fsize}")
        total += length
        if total > MAX_MODEL_BYTES:
            raise ModelError(f"{where}: external data exceeds {MAX_MODEL_BYTES} bytes")
        with open(target, "rb") as f:
            f.seek(offset)
            tensor.raw_data = f.read(length)
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]


def checker_message(text: str) -> str:
    """An onnx checker/inference message as one line, keeping the node and op it names
    (onnx splits them over several lines, e.g. ``of node: \\nname: X OpType: Y``)."""
    return " ".join(ln.strip() for ln in text.strip().splitlines() if ln.strip()) or \
        "invalid model"


def check_unique_outputs(model: onnx.ModelProto, label: str) -> None:
    """Every tensor has one producer; name the node that produces one again."""
    seen = {t.name for t in model.graph.initializer}
    seen |= {vi.name for vi in model.graph.input}
    for node in model.graph.node:
        for out in node.output:
            if out and out in seen:
                name = node.name or node.op_type
                raise ModelError(f"{label}: tensor '{out}' is produced twice (again by node "
                                 f"'{name}' ({node.op_type}))")
            seen.add(out)


def check_model(model: onnx.ModelProto, label: str) -> None:
    """Run ``onnx.checker`` and turn its verdict into a ModelError naming the file.

    One leniency, as onnxruntime has it: an IR version < 4 model (where every initializer
    must also be a graph input) whose initializers are not all inputs is checked as IR 4.
    onnxruntime's own quantizer writes such files when it quantizes an old model (its new
    scale/zero-point initializers are not added as inputs).
    """
    if model.ir_version < 4:
        inputs = {v.name for v in model.graph.input}
        if any(t.name not in inputs for t in model.graph.initializer):
            model = onnx.ModelProto.FromString(model.SerializeToString())
            model.ir_version = 4
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise ModelError(f"{label}: invalid ONNX model: {checker_message(str(e))}") from None
    except Exception as e:  # the checker's C++ side raises assorted types on garbage
        raise ModelError(f"{label}: invalid ONNX model: {e}") from None
