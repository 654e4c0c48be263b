"""Structural schemas for CustomResourceDefinitions, as `k8s.io/apiextensions-apiserver`.

- `structural.validate_crd_schema(schema, fld)`: the causes a CRD's `openAPIV3Schema` gets.
- `CustomResourceSchema(schema)`: per served version; `prune`, `default`, `validate`.

Pure: no IO. CEL rules run on cel-python, regular expressions on RE2 (google-re2).
"""

from controlplane.api.crd import structural
from controlplane.api.crd.custom_resource_schema import CustomResourceSchema

__all__ = ["CustomResourceSchema", "structural"]
