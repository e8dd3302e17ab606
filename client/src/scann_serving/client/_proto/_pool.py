"""The client's own descriptor pool (see the package docstring for why it is not the default).

The generated modules add their files here. The well-known types they import (`Any`,
`Int64Value`) are copied in first, because a pool resolves a file's imports only among
the files it already holds.
"""

from __future__ import annotations

from google.protobuf import any_pb2, descriptor_pool, wrappers_pb2

POOL = descriptor_pool.DescriptorPool()
for _well_known in (any_pb2, wrappers_pb2):
    POOL.AddSerializedFile(_well_known.DESCRIPTOR.serialized_pb)
