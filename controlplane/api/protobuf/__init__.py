"""Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`).

kubectl 1.32+ sends typed-clientset request bodies in protobuf; the server answers in JSON but
must read these. `decode_object` turns such a body into the JSON-shaped dict kubectl would have
sent as JSON. The message schemas are package data (`descriptors.binpb.gz`), extracted from a
kubectl binary by `scripts/extract_proto_descriptors.py`.
"""

from controlplane.api.protobuf.decode import decode_object

__all__ = ["decode_object"]
