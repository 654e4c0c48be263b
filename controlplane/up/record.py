"""What `pinnace up` remembers about the cluster of a data directory: which cloud it lives in, under
which cluster id, and the cloud config it runs with (data_dir/cloud/config.yaml), so a second
`pinnace up` resumes it and `pinnace down` finds everything it made without being told again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["ClusterRecord", "cloud_config_path", "load_record", "save_record"]

DEFAULT_CLUSTER_NAME = "pinnace"


@dataclass(frozen=True)
class ClusterRecord:
    provider: str
    cluster_name: str = DEFAULT_CLUSTER_NAME
    region: str = ""
    aws_endpoint_url: str = ""

    @property
    def simulated(self) -> bool:
        """Whether the instances are simulated (no real machine boots them): the local cloud, or
        an AWS-compatible endpoint such as moto's server; `up` then runs the Fleet for them."""
        return self.provider == "local" or bool(self.aws_endpoint_url)


def _record_path(data_dir: Path) -> Path:
    return data_dir / "cloud" / "up.json"


def cloud_config_path(data_dir: Path) -> Path:
    return data_dir / "cloud" / "config.yaml"


def load_record(data_dir: Path) -> ClusterRecord | None:
    path = _record_path(data_dir)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return ClusterRecord(
        provider=str(doc["provider"]),
        cluster_name=str(doc.get("clusterName", DEFAULT_CLUSTER_NAME)),
        region=str(doc.get("region", "")),
        aws_endpoint_url=str(doc.get("awsEndpointURL", "")),
    )


def save_record(data_dir: Path, record: ClusterRecord) -> None:
    path = _record_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fields = asdict(record)
    doc = {
        "provider": fields["provider"],
        "clusterName": fields["cluster_name"],
        "region": fields["region"],
        "awsEndpointURL": fields["aws_endpoint_url"],
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
