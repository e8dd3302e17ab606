"""The client's own descriptor pool (see the package docstring for why it is not the default).

The generated modules add their files here. The well-known types they import (`Any`,
`Int64Value`) are copied in first, because a pool resolves a file's imports only among
the files it already holds, and get message classes of their own (the pure-Python protobuf
runtime needs one for every message type a field refers to).
"""

from __future__ import annotations

from google.protobuf import any_pb2, descriptor_pool, message_factory, wrappers_pb2

POOL = descriptor_pool.DescriptorPool()
for _well_known in (any_pb2, wrappers_pb2):
    POOL.AddSerializedFile(_well_known.DESCRIPTOR.serialized_pb)
    for _message in POOL.FindFileByName(_well_known.DESCRIPTOR.name).message_types_by_name.values():
        message_factory.GetMessageClass(_message)
