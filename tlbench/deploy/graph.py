"""Small, torch-free edits and questions about an ONNX graph: debug records, input axes."""

from __future__ import annotations

import onnx


def strip_debug_info(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Drop what only a debugger reads: node metadata and doc strings, value_info annotations.

    The value_info annotations matter beyond size: the dynamo exporter writes one for every
    initializer, and onnxruntime's dynamic quantizer transposes the Gemm weight in place without
    updating it; its next shape inference then fails ("Inferred shape and existing shape differ
    in dimension 0: (64) vs (6)" for a 64-unit recurrent net with 6 classes). Shapes are
    re-inferred by every runtime anyway.
    """
    graphs = [proto.graph]
    while graphs:
        graph = graphs.pop()
        graph.doc_string = ""
        del graph.value_info[:]
        for value in list(graph.input) + list(graph.output):
            del value.metadata_props[:]
            value.doc_string = ""
        for node in graph.node:
            del node.metadata_props[:]
            node.doc_string = ""
            for attr in node.attribute:
                if attr.HasField("g"):
                    graphs.append(attr.g)
                graphs.extend(attr.graphs)
    return proto


def input_axes(path) -> tuple[str, list]:
    """(input name, its axes: a name for a symbolic axis, an int for a fixed one)."""
    model = onnx.load(str(path), load_external_data=False)
    value = model.graph.input[0]
    return value.name, [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def output_axes(path) -> tuple[str, list]:
    """(output name, its axes), as :func:`input_axes`."""
    model = onnx.load(str(path), load_external_data=False)
    value = model.graph.output[0]
    return value.name, [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
