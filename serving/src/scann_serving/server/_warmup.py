"""Reading a version's warmup file (`assets.extra/tf_serving_warmup_requests`) without TensorFlow.

Both servables replay it before a version becomes AVAILABLE; it is a TFRecord file of
`PredictionLog`s, which needs no TensorFlow to read (CRCs are not verified: TF Serving's
reader would refuse a corrupt file, and a corrupt record fails to parse here too).
"""

from __future__ import annotations

import struct
from pathlib import Path

from scann_serving.server._servable import LoadError

#: TF Serving reads at most this many warmup records.
MAX_WARMUP_RECORDS = 1000


def read_tfrecords(path: Path) -> list[bytes]:
    """The records of a TFRecord file (a short file is a `LoadError`)."""
    data = path.read_bytes()
    records: list[bytes] = []
    offset = 0
    while offset < len(data):
        if offset + 12 > len(data):
            raise LoadError(f"{path} is truncated at byte {offset}")
        (length,) = struct.unpack_from("<Q", data, offset)
        start, end = offset + 12, offset + 12 + length
        if end + 4 > len(data):
            raise LoadError(f"{path} is truncated in record {len(records)}")
        records.append(data[start:end])
        offset = end + 4
    return records
