"""TensorFlow Serving's protocol, generated from the minimal `.proto` files in this folder.

The messages keep TensorFlow's fully-qualified names (`tensorflow.serving.PredictRequest`, ...)
so the gRPC method paths and wire bytes are TensorFlow Serving's, but they live in the
private descriptor pool of `_pool`, never protobuf's default pool: a process that also
imports `tensorflow` or `tensorflow-serving-api` registers the same names there, and
protobuf refuses a second, different definition of a name in one pool.

Regenerate with `python client/scripts/generate_protos.py` (never edit `*_pb2.py*`);
`tests/client/test_proto_codegen.py` fails when the checked-in code drifts.
"""
