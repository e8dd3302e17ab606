"""Integer query ids on the server's side, without TensorFlow: REST decoding of ints and
decimal strings, and the manifest's id range checked before a model sees the request."""

from __future__ import annotations

import numpy as np
import pytest
from scann_serving.server._errors import InvalidArgument
from scann_serving.server._json import request_inputs, to_array
from scann_serving.server._servable import (
    Signature,
    TensorInfo,
    query_id_range,
    validate_inputs,
)

INT64_QUERY = TensorInfo("int64", (None,))
SIGNATURE = Signature(
    "serving_default",
    {"query": INT64_QUERY},
    {"identifiers": TensorInfo("string", (None, None))},
    "tensorflow/serving/predict",
    None,
)


def test_rest_integer_inputs_take_json_ints_and_decimal_strings() -> None:
    for value in ([3, 42], ["3", "42"], [3, "+42"]):
        array = to_array("query", value, INT64_QUERY)
        assert array.dtype == np.int64 and array.tolist() == [3, 42]
    big = to_array("query", [str(2**62 + 1)], INT64_QUERY)  # past a double's exact range
    assert big.tolist() == [2**62 + 1]
    assert to_array("k", "7", TensorInfo("int32", ())).shape == ()
    inputs, rows = request_inputs({"instances": [{"query": "5"}]}, {"query": INT64_QUERY})
    assert rows and inputs["query"].tolist() == [5]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (["abc"], "got str 'abc'"),
        (["4.5"], "'4.5'"),
        ([4.5], "got float 4.5"),
        ([True], "got bool True"),
        ([None], "got NoneType"),
        ([2**63], "out of range for int64"),
        ([[1], [2, 3]], "ragged"),
    ],
)
def test_rest_integer_inputs_name_what_is_not_an_id(value: list, words: str) -> None:
    with pytest.raises(InvalidArgument, match="input 'query'") as caught:
        to_array("query", value, INT64_QUERY)
    assert words in caught.value.message


def test_known_ids_from_the_manifest_are_checked_before_the_model() -> None:
    ids = query_id_range({"query_key": {"dtype": "int64", "min_id": 0, "max_id": 60}})
    assert ids == (0, 60)
    assert query_id_range({"query_key": {"dtype": "int64", "min_id": None, "max_id": None}}) is None
    assert query_id_range(None) is None and query_id_range({}) is None

    def check(values: list[int], query_ids: tuple[int, int] | None = ids) -> int:
        inputs = {"query": np.asarray(values, np.int64)}
        return validate_inputs(
            SIGNATURE, inputs, max_request_batch_size=100, max_k=None, query_ids=query_ids
        )

    assert check([0, 60]) == 2
    assert check([10**12], None) == 1  # a tower without known ids takes any id
    for values, words in [([61], "element 0 is id 61"), ([1, -1], "element 1 is id -1")]:
        with pytest.raises(InvalidArgument, match=words) as caught:
            check(values)
        assert "0..60" in caught.value.message
    with pytest.raises(InvalidArgument, match="expects int64 but int32 was provided"):
        validate_inputs(
            SIGNATURE,
            {"query": np.asarray([1], np.int32)},
            max_request_batch_size=100,
            max_k=None,
            query_ids=ids,
        )
