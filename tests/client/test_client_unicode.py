"""Non-ASCII keys and identifiers in the client: UTF-8 on the wire, strict decoding of
answers, and scann-query's table and JSON (no TensorFlow, no server)."""

from __future__ import annotations

import io
import json
import re
import sys

import numpy as np
import pytest
from scann_serving.client import InvalidRequest, ProtocolError, RetrievalResult
from scann_serving.client._cli import _json, _write
from scann_serving.client._format import display_width, result_text
from scann_serving.client._proto import tf_framework_pb2 as fw
from scann_serving.client._proto import tf_serving_pb2 as pb
from scann_serving.client._protocol import parse_predict
from scann_serving.client._tensors import string_matrix, string_tensor, to_numpy

TITLES = ["Amélie (2001)", "千と千尋の神隠し", "Ça tourne 🎬", "Cafe\u0301", "plain"]


def _strings(values: list[bytes], shape: list[int]) -> fw.TensorProto:
    proto = fw.TensorProto(dtype=fw.DT_STRING, string_val=values)
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    return proto


def test_keys_and_exclusions_go_out_as_utf_8() -> None:
    assert list(string_tensor(TITLES).string_val) == [t.encode("utf-8") for t in TITLES]
    assert list(string_tensor([b"\xff raw"]).string_val) == [b"\xff raw"]  # bytes as given
    matrix = string_matrix([["千尋"], ["zoë", "🦊"]])
    assert list(matrix.string_val) == ["千尋".encode(), b"", "zoë".encode(), "🦊".encode()]


def test_a_key_that_is_not_unicode_text_is_an_invalid_request() -> None:
    undecodable_argv = b"caf\xe9".decode("utf-8", "surrogateescape")
    with pytest.raises(InvalidRequest, match=r"'caf\\udce9' is not valid Unicode text"):
        string_tensor([undecodable_argv])


def test_identifiers_come_back_identical() -> None:
    proto = _strings([t.encode("utf-8") for t in TITLES], [1, len(TITLES)])
    decoded = to_numpy(fw.TensorProto.FromString(proto.SerializeToString()))
    assert decoded.tolist() == [TITLES]
    assert [t.encode("utf-8") for t in decoded[0]] == [t.encode("utf-8") for t in TITLES]


def test_identifiers_that_are_not_utf_8_are_a_protocol_error() -> None:
    with pytest.raises(ValueError, match=r"string element 1 \(b'caf\\xe9'\) is not valid UTF-8"):
        to_numpy(_strings([b"ok", b"caf\xe9"], [2]))
    response = pb.PredictResponse()
    response.outputs["identifiers"].CopyFrom(_strings([b"ok", b"caf\xe9"], [1, 2]))
    scores = fw.TensorProto(dtype=fw.DT_FLOAT, float_val=[1.0, 0.5])
    scores.tensor_shape.dim.add(size=1)
    scores.tensor_shape.dim.add(size=2)
    response.outputs["scores"].CopyFrom(scores)
    with pytest.raises(ProtocolError, match="not valid UTF-8"):
        parse_predict(response, model="m", signature="serving_default")


def _result() -> RetrievalResult:
    return RetrievalResult(
        identifiers=np.asarray([TITLES], dtype=str),
        scores=np.linspace(1.0, 0.2, len(TITLES), dtype=np.float32)[None],
        model_name="retrieval",
        model_version=1,
        signature_name="retrieve",
    )


def test_display_width_counts_terminal_columns() -> None:
    assert display_width("plain") == 5
    assert display_width("千と千尋の神隠し") == 16  # wide
    assert display_width("Cafe\u0301") == 4  # a combining accent takes no column
    assert display_width("Ça tourne 🎬") == 12  # the emoji is wide


def test_table_aligns_wide_and_combining_identifiers() -> None:
    lines = result_text(_result(), ["zoë"]).splitlines()
    assert lines[2] == "query zoë"
    rows = lines[4:]
    assert [re.split(r"\s{2,}", row.strip())[1] for row in rows] == TITLES
    # The score column ends at the same terminal column on every line.
    assert len({display_width(row) for row in [lines[3], *rows]}) == 1


def test_json_is_utf_8_text_and_parses_back_identically() -> None:
    text = _json({"queries": ["zoë"], **_result().to_dict()})
    assert "千と千尋の神隠し" in text and "\\u" not in text
    assert json.loads(text)["identifiers"] == [TITLES]


def test_output_falls_back_to_utf_8_where_the_locale_cannot_show_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    monkeypatch.setattr(sys, "stdout", stream)
    _write("plain")
    _write("千と千尋の神隠し")
    stream.flush()
    assert raw.getvalue() == "plain\n千と千尋の神隠し\n".encode()
