"""Reading a version's warmup file (`assets.extra/tf_serving_warmup_requests`) without TensorFlow.

Both servables replay it before a version becomes AVAILABLE; it is a TFRecord file of
`PredictionLog`s, which needs no TensorFlow to read (CRCs are not verified: TF Serving's
reader would refuse a corrupt file, and a corrupt record fails to parse here too).
"""

from __future__ import annotations

import struct
from pathlib import Path

from scann_serving.server._pb import PredictionLog
from scann_serving.server._preflight import WARMUP_RELPATH
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


def warmup_requests(version_dir: Path) -> tuple[Path, list]:
    """The warmup file's path and its PredictRequests (none when the version has no file).

    Both servables replay these; a file over TF Serving's record limit, or a record that is
    not a `predict_log`, is a `LoadError` naming the file.
    """
    path = version_dir / WARMUP_RELPATH
    if not path.exists():
        return path, []
    records = read_tfrecords(path)
    if len(records) > MAX_WARMUP_RECORDS:
        raise LoadError(f"{path} has {len(records)} records; at most {MAX_WARMUP_RECORDS}")
    requests = []
    for number, record in enumerate(records):
        log = PredictionLog.FromString(record)
        if log.WhichOneof("log_type") != "predict_log":
            raise LoadError(f"warmup record {number} in {path} is not a predict_log")
        requests.append(log.predict_log.request)
    return path, requests
