"""The checks `pinnace up` makes first and the messages for the usual failures."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from controlplane.up import preflight
from controlplane.up.preflight import PreflightError
from providers.errors import AuthFailure, CloudError, InvalidConfiguration, QuotaExceeded, Transient


def test_new_data_dir_passes_and_gets_a_version(tmp_path: Path) -> None:
    data = tmp_path / "data"
    preflight.check_data_dir(data)
    preflight.write_version(data)
    assert (data / "VERSION").read_text().strip() == str(preflight.FORMAT_VERSION)
    preflight.check_data_dir(data)  # its own format: fine


def test_data_dir_from_before_version_files_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "state.db").write_bytes(b"")
    preflight.check_data_dir(tmp_path)


@pytest.mark.parametrize(("text", "words"), [("2\n", "format 2"), ("banana", "unknown format")])
def test_data_dir_of_another_format_is_refused_with_what_to_do(tmp_path: Path, text: str, words: str) -> None:
    (tmp_path / "VERSION").write_text(text)
    with pytest.raises(PreflightError) as info:
        preflight.check_data_dir(tmp_path)
    message = str(info.value)
    assert words in message
    assert str(tmp_path) in message
    assert "--data-dir" in message
    assert f"reads format {preflight.FORMAT_VERSION}" in message


def test_port_in_use_names_the_holder_and_the_flag() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        holder = preflight.port_holder(port)
        with pytest.raises(PreflightError) as info:
            preflight.check_port("127.0.0.1", port)
    message = str(info.value)
    assert f"port {port}" in message
    assert "--port" in message
    assert holder is not None  # our own process holds it, and /proc shows it
    assert holder.pid > 0
    assert f"pid {holder.pid}" in message


def test_free_port_passes() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    preflight.check_port("127.0.0.1", port)


def test_port_holder_reads_proc_tables(tmp_path: Path) -> None:
    """A fake /proc: the LISTEN socket of port 6443 (0x192B) belongs to pid 42."""
    (tmp_path / "net").mkdir()
    header = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    )
    (tmp_path / "net" / "tcp").write_text(
        header
        + "   0: 0100007F:192B 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 777 1\n"
        + "   1: 0100007F:192B 0100007F:9999 01 00000000:00000000 00:00000000 00000000  1000        0 778 1\n"
    )
    proc = tmp_path / "42"
    (proc / "fd").mkdir(parents=True)
    (proc / "fd" / "3").symlink_to("socket:[777]")
    (proc / "cmdline").write_bytes(b"python\0-m\0controlplane\0server\0")
    holder = preflight.port_holder(6443, proc=tmp_path)
    assert holder == preflight.Holder(42, "python -m controlplane server")
    assert preflight.port_holder(6444, proc=tmp_path) is None


def test_unknown_region_suggests_known_ones() -> None:
    known = ["us-east-1", "us-west-2", "eu-west-1"]
    preflight.check_region("eu-west-1", known)
    with pytest.raises(PreflightError) as info:
        preflight.check_region("eu-westt-9", known)
    message = str(info.value)
    assert "'eu-westt-9'" in message
    assert "eu-west-1" in message
    assert "--region" in message


def test_no_credentials_says_how_to_set_them() -> None:
    message = preflight.explain_cloud_error(
        AuthFailure("no usable AWS credentials", code="NoCredentialsError")
    )
    assert "AWS_PROFILE" in message
    assert "AWS_ACCESS_KEY_ID" in message


def test_refused_credentials_say_who_to_check() -> None:
    message = preflight.explain_cloud_error(AuthFailure("bad key", code="AuthFailure"))
    assert "refused" in message
    assert "sts get-caller-identity" in message


@pytest.mark.parametrize(
    ("code", "quota"), [("VcpuLimitExceeded", "L-1216C47A"), ("InstanceLimitExceeded", "L-1216C47A")]
)
def test_quota_exceeded_names_the_quota_and_how_to_raise_it(code: str, quota: str) -> None:
    message = preflight.explain_cloud_error(QuotaExceeded("RunInstances: you asked for too much", code=code))
    assert code in message
    assert quota in message
    assert "request-service-quota-increase" in message
    assert "Running On-Demand" in message


def test_quota_hint_from_a_message_without_a_code() -> None:
    hint = preflight.quota_hint(
        "", "create instance: VcpuLimitExceeded: You have requested more vCPU capacity"
    )
    assert hint is not None
    assert "L-1216C47A" in hint
    assert preflight.quota_hint("", "something else") is None


def test_other_errors_keep_their_text() -> None:
    assert "NoRegion" not in preflight.explain_cloud_error(InvalidConfiguration("x", code="NoRegion"))
    assert "--region" in preflight.explain_cloud_error(InvalidConfiguration("x", code="NoRegion"))
    unreachable = Transient("Could not connect to the endpoint URL", code="EndpointConnectionError")
    assert "--region" in preflight.explain_cloud_error(unreachable, region="xx-1")
    assert "Boom" in preflight.explain_cloud_error(CloudError("Boom", code="X"))


async def test_missing_credentials_surface_as_auth_failure_and_the_profile_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """botocore's NoCredentialsError, raised before any network call, reaches `up` as AuthFailure."""
    from providers.aws.network import check_access
    from providers.config import parse_cloud_config

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    config = parse_cloud_config(
        {"clusterID": "c", "region": "us-east-1", "endpointURL": "http://127.0.0.1:9", "qps": 100}
    )
    with pytest.raises(AuthFailure) as info:
        await check_access(config)
    assert info.value.code == "NoCredentialsError"
    assert "AWS_PROFILE" in preflight.explain_cloud_error(info.value)


def test_known_regions_come_from_botocore() -> None:
    from providers.aws.network import known_regions

    regions = known_regions()
    assert "us-east-1" in regions
    assert "eu-west-1" in regions
