"""TensorFlow Serving's protocol, generated from the minimal `.proto` files in this folder.

The messages keep TensorFlow's fully-qualified names (`tensorflow.serving.PredictRequest`, ...)
so the gRPC method paths and wire bytes are TensorFlow Serving's, but they live in the
private descriptor pool of `_pool`, never protobuf's default pool: a process that also
imports `tensorflow` or `tensorflow-serving-api` registers the same names there, and
protobuf refuses a second, different definition of a name in one pool.

Regenerate with `python client/scripts/generate_protos.py` (never edit `*_pb2.py*`);
`tests/client/test_proto_codegen.py` fails when the checked-in code drifts.
"""

import warnings

# The generated code is stamped with protobuf 5.27.2 so it imports on the client's floor
# (5.28). protobuf 6.x warns once per file that such code is "one major version older";
# it is supported there and in 7.x (which dropped the warning), so the warning says
# nothing the user can act on. Silence exactly that message, only while importing.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Protobuf gencode version", category=UserWarning)
    from scann_serving.client._proto import tf_error_pb2, tf_framework_pb2, tf_serving_pb2

__all__ = ["tf_error_pb2", "tf_framework_pb2", "tf_serving_pb2"]
