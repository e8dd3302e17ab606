"""TensorFlow Serving messages in, typed values out (and the requests for them).

No I/O here: these functions build requests and read responses for both clients.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from google.protobuf import any_pb2, json_format, struct_pb2, wrappers_pb2
from scann_serving.client._errors import ProtocolError
from scann_serving.client._proto import tf_error_pb2 as err
from scann_serving.client._proto import tf_framework_pb2 as fw
from scann_serving.client._proto import tf_serving_pb2 as pb
from scann_serving.client._tensors import to_numpy
from scann_serving.client._types import (
    ModelMetadata,
    ModelStatus,
    RetrievalResult,
    Signature,
    TensorSpec,
    VersionStatus,
)
from scann_serving.client.contract import (
    EMBEDDING,
    IDENTIFIERS,
    MANIFEST_METADATA_FIELD,
    SCORES,
    SEARCH_EMBEDDING,
    SERVING_DEFAULT,
    SIGNATURE_DEF_METADATA_FIELD,
)

#: GetModelMetadata field with the signatures (the only one TF Serving knows).
SIGNATURE_DEF_FIELD: Final = SIGNATURE_DEF_METADATA_FIELD
#: GetModelMetadata field with the export manifest (scann-serve only; TF Serving rejects it).
MANIFEST_FIELD: Final = MANIFEST_METADATA_FIELD
_TYPE_URL_PREFIX: Final = "type.googleapis.com/"


def model_spec(
    model: str, *, version: int | None = None, label: str | None = None, signature: str = ""
) -> pb.ModelSpec:
    """A ModelSpec for a model, optionally pinned to a version or a label."""
    spec = pb.ModelSpec(name=model, signature_name=signature)
    if version is not None:
        spec.version.value = version
    elif label is not None:
        spec.version_label = label
    return spec


def _unpack(value: any_pb2.Any, message: Any) -> Any:
    expected = _TYPE_URL_PREFIX + message.DESCRIPTOR.full_name
    if value.type_url != expected:
        raise ProtocolError(f"metadata holds {value.type_url!r}, expected {expected!r}")
    return message.FromString(value.value)


def _spec(name: str, info: fw.TensorInfo) -> TensorSpec:
    shape = None
    if not info.tensor_shape.unknown_rank:
        shape = tuple(d.size if d.size >= 0 else None for d in info.tensor_shape.dim)
    return TensorSpec(name=name, dtype=fw.DataType.Name(info.dtype), shape=shape)


def _signature(name: str, sig: fw.SignatureDef) -> Signature:
    return Signature(
        name=name,
        method_name=sig.method_name,
        inputs={key: _spec(key, info) for key, info in sorted(sig.inputs.items())},
        outputs={key: _spec(key, info) for key, info in sorted(sig.outputs.items())},
    )


def _dim(signatures: Mapping[str, Signature], name: str, key: str, side: str) -> int | None:
    sig = signatures.get(name)
    specs = None if sig is None else (sig.inputs if side == "inputs" else sig.outputs)
    spec = None if specs is None else specs.get(key)
    if spec is None or spec.shape is None or len(spec.shape) != 2:
        return None
    return spec.shape[1]


def parse_manifest(response: pb.GetModelMetadataResponse) -> dict[str, Any]:
    """The export manifest in a metadata response (`{}` if absent).

    scann-serve packs it as a `google.protobuf.Struct`; a JSON `StringValue` is read too.
    """
    if MANIFEST_FIELD not in response.metadata:
        return {}
    packed = response.metadata[MANIFEST_FIELD]
    if packed.type_url.endswith("/" + struct_pb2.Struct.DESCRIPTOR.full_name):
        manifest: Any = json_format.MessageToDict(_unpack(packed, struct_pb2.Struct))
    else:
        text = _unpack(packed, wrappers_pb2.StringValue).value
        try:
            manifest = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ProtocolError(f"the server's {MANIFEST_FIELD} is not JSON: {exc}") from exc
    return manifest if isinstance(manifest, dict) else {}


def parse_metadata(
    response: pb.GetModelMetadataResponse, manifest: Mapping[str, Any] | None = None
) -> ModelMetadata:
    """ModelMetadata from a `signature_def` metadata response (plus the manifest, if any)."""
    if SIGNATURE_DEF_FIELD not in response.metadata:
        raise ProtocolError("GetModelMetadata answered without 'signature_def' metadata")
    sig_map = _unpack(response.metadata[SIGNATURE_DEF_FIELD], pb.SignatureDefMap)
    signatures = {n: _signature(n, s) for n, s in sorted(sig_map.signature_def.items())}
    manifest = dict(manifest or {})
    version = response.model_spec.version.value if response.model_spec.HasField("version") else None
    return ModelMetadata(
        model_name=response.model_spec.name,
        model_version=version,
        signatures=signatures,
        embedding_dim=_dim(signatures, SEARCH_EMBEDDING, EMBEDDING, "inputs")
        or _int_or_none(manifest.get("embedding_dim")),
        default_k=_dim(signatures, SERVING_DEFAULT, IDENTIFIERS, "outputs")
        or _int_or_none(manifest.get("k")),
        max_k=_int_or_none(manifest.get("max_k")),
        manifest=manifest,
    )


def _int_or_none(value: Any) -> int | None:
    # A Struct holds every number as a double: 100.0 is the int 100.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_status(model: str, response: pb.GetModelStatusResponse) -> ModelStatus:
    """ModelStatus from a GetModelStatus response, versions in ascending order."""
    versions = tuple(
        VersionStatus(
            version=s.version,
            state=_enum_name(pb.ModelVersionStatus.State, s.state),
            error_code=_enum_name(err.Code, s.status.error_code),
            error_message=s.status.error_message,
        )
        for s in sorted(response.model_version_status, key=lambda s: s.version)
    )
    return ModelStatus(model_name=model, versions=versions)


def _enum_name(enum: Any, number: int) -> str:
    return str(enum.Name(number)) if number in enum.values() else str(number)


def parse_predict(
    response: pb.PredictResponse, *, model: str, signature: str, k: int | None = None
) -> RetrievalResult:
    """A RetrievalResult from a Predict response, cut to the first `k` columns if given."""
    try:
        identifiers = to_numpy(response.outputs[IDENTIFIERS])
        scores = to_numpy(response.outputs[SCORES]).astype("float32", copy=False)
    except (KeyError, ValueError) as exc:
        outputs = sorted(response.outputs)
        raise ProtocolError(
            f"signature {signature!r} answered outputs {outputs}, not string 'identifiers' "
            f"and float 'scores' of shape [batch, k] ({exc})"
        ) from exc
    if identifiers.ndim != 2 or identifiers.shape != scores.shape:
        raise ProtocolError(
            f"'identifiers' {identifiers.shape} and 'scores' {scores.shape} must share "
            "the shape [batch, k]"
        )
    if k is not None:
        identifiers, scores = identifiers[:, :k], scores[:, :k]
    spec = response.model_spec
    return RetrievalResult(
        identifiers=identifiers,
        scores=scores,
        model_name=spec.name or model,
        model_version=spec.version.value if spec.HasField("version") else None,
        signature_name=spec.signature_name or signature,
    )
