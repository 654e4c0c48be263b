"""A CRD whose rule's estimated cost exceeds upstream's budget is refused by a real
`pinnace server`, with upstream's causes as kubectl shows them."""

from __future__ import annotations

import json
import shutil
import uuid
from typing import Any

import pytest

from tests.integration.kubectl_helpers import Kubectl

pytestmark = pytest.mark.kubectl


@pytest.fixture
def kubectl(kube_env: dict[str, str]) -> Kubectl:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("no kubectl dispatcher on PATH")
    return Kubectl(binary, kube_env)


def crd(group: str, tags: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gpus.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "gpus", "singular": "gpu", "kind": "Gpu"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": {"type": "object", "properties": {"tags": tags}}},
                        }
                    },
                }
            ],
        },
    }


def test_an_unbounded_rule_is_refused_and_a_bounded_one_accepted(kubectl: Kubectl) -> None:
    group = f"k{uuid.uuid4().hex[:8]}.example.com"
    tags: dict[str, Any] = {
        "type": "array",
        "items": {"type": "string"},
        "x-kubernetes-validations": [{"rule": "self.all(x, x.contains('gpu'))"}],
    }
    refused = kubectl.run("apply", "-f", "-", stdin=json.dumps(crd(group, tags)), check=False)
    assert refused.returncode != 0
    rule = (
        "spec.validation.openAPIV3Schema.properties[spec].properties[tags].x-kubernetes-validations[0].rule"
    )
    assert f'The CustomResourceDefinition "gpus.{group}" is invalid' in refused.stderr, refused.stderr
    assert (
        f"{rule}: Forbidden: estimated rule cost exceeds budget by factor of more than 100x" in refused.stderr
    )
    assert (
        f"{rule}: Forbidden: contributed to estimated rule cost total exceeding cost limit for entire "
        "OpenAPIv3 schema" in refused.stderr
    )
    assert (
        "spec.validation.openAPIV3Schema: Forbidden: x-kubernetes-validations estimated rule cost "
        "total for entire OpenAPIv3 schema exceeds budget by factor of more than 100x" in refused.stderr
    )
    assert kubectl.run("get", "crd", f"gpus.{group}", check=False).returncode != 0

    tags["maxItems"] = 16
    tags["items"]["maxLength"] = 63
    kubectl.run("apply", "-f", "-", stdin=json.dumps(crd(group, tags)))
    kubectl.run("delete", "crd", f"gpus.{group}", "--wait=false")
