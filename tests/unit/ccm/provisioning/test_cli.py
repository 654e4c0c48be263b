"""`pinnace provisioner`'s flags: what it refuses (exit 1, one line, no traceback) and the
settings it builds from the kubeconfig and the cloud config."""

from __future__ import annotations

import argparse
import base64
import datetime
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ccm.provisioning import cli
from controlplane.__main__ import main
from providers import registry
from providers.capabilities import CloudProvider
from providers.config import CloudConfig


def _self_signed() -> bytes:
    # load_kubeconfig builds a TLS context from the CA, so it must be a real certificate.
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


CA = _self_signed()


def kubeconfig(tmp_path: Path, *, ca_data: bytes | None = None, ca_file: Path | None = None) -> Path:
    cluster: dict[str, str] = {"server": "https://10.1.2.3:6443/"}
    if ca_data is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_data).decode()
    if ca_file is not None:
        cluster["certificate-authority"] = str(ca_file)
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "ctx",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": {"token": "abc"}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
    }
    path = tmp_path / "provisioner.kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


def cloud_config(tmp_path: Path, text: str | None = None) -> Path:
    path = tmp_path / "cloud.yaml"
    path.write_text(text if text is not None else f"local:\n  stateFile: {tmp_path / 'cloud.db'}\n")
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["--log-format", "text", "provisioner", *argv])
    return code, capsys.readouterr().err


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    return parser.parse_args(["provisioner", *argv])


def test_missing_required_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["provisioner", "--cloud-provider", "local"])
    assert exc.value.code == 2
    assert "the following arguments are required: --kubeconfig" in capsys.readouterr().err


def test_unknown_provider(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(
        ["--kubeconfig", str(kubeconfig(tmp_path, ca_data=CA)), "--cloud-provider", "gce"], capsys
    )
    assert code == 1
    assert err.strip().splitlines() == [
        f"pinnace provisioner: error: unknown cloud provider 'gce'; known: {', '.join(registry.names())}"
    ]


def test_unreadable_kubeconfig(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.kubeconfig"
    code, err = run(["--kubeconfig", str(missing), "--cloud-provider", "local"], capsys)
    assert code == 1
    assert err.startswith(f"pinnace provisioner: error: cannot read kubeconfig {missing}: ")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_kubeconfig_without_a_context(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.kubeconfig"
    bad.write_text("apiVersion: v1\nkind: Config\ncurrent-context: other\ncontexts: []\n")
    code, err = run(["--kubeconfig", str(bad), "--cloud-provider", "local"], capsys)
    assert code == 1
    assert (
        err.strip()
        == f"pinnace provisioner: error: kubeconfig {bad} has no usable current context, cluster and server"
    )


def test_provider_without_instances(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def factory(config: CloudConfig) -> CloudProvider:
        return CloudProvider(name="bare")

    monkeypatch.setitem(registry._REGISTERED, "bare", factory)
    code, err = run(
        ["--kubeconfig", str(kubeconfig(tmp_path, ca_data=CA)), "--cloud-provider", "bare"], capsys
    )
    assert code == 1
    assert err.strip() == "pinnace provisioner: error: cloud provider 'bare' cannot launch instances"


def test_local_cloud_needs_a_state_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(
        ["--kubeconfig", str(kubeconfig(tmp_path, ca_data=CA)), "--cloud-provider", "local"], capsys
    )
    assert code == 1
    assert (
        err.strip()
        == "pinnace provisioner: error: the local cloud needs a stateFile under `local:` in --cloud-config"
    )


def test_invalid_cloud_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = cloud_config(tmp_path, "bogus: 1\n")
    argv = ["--kubeconfig", str(kubeconfig(tmp_path, ca_data=CA)), "--cloud-provider", "local"]
    code, err = run([*argv, "--cloud-config", str(config)], capsys)
    assert code == 1
    assert err.strip() == "pinnace provisioner: error: cloud config: unknown field 'bogus'"


def test_no_ca_anywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = kubeconfig(tmp_path)
    argv = [
        "--kubeconfig",
        str(path),
        "--cloud-provider",
        "local",
        "--cloud-config",
        str(cloud_config(tmp_path)),
    ]
    code, err = run(argv, capsys)
    assert code == 1
    assert (
        err.strip()
        == f"pinnace provisioner: error: kubeconfig {path} names no certificate authority: pass --ca-file"
    )
    code, err = run([*argv, "--ca-file", str(tmp_path / "missing.crt")], capsys)
    assert code == 1
    assert err.startswith(f"pinnace provisioner: error: cannot read --ca-file {tmp_path / 'missing.crt'}: ")


def test_renew_deadline_must_be_shorter_than_the_lease(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--kubeconfig", str(kubeconfig(tmp_path, ca_data=CA)), "--cloud-provider", "local"]
    argv += ["--cloud-config", str(cloud_config(tmp_path)), "--leader-elect-lease-duration", "2"]
    code, err = run([*argv, "--leader-elect-renew-deadline", "2"], capsys)
    assert code == 1
    assert "--leader-elect-renew-deadline must be shorter than --leader-elect-lease-duration" in err


def test_settings_default_to_the_kubeconfig(tmp_path: Path) -> None:
    args = parse(
        [
            "--kubeconfig",
            str(kubeconfig(tmp_path, ca_data=CA)),
            "--cloud-provider",
            "local",
            "--cloud-config",
            str(cloud_config(tmp_path)),
            "--cluster-name",
            "blue",
            "--machine-poll-interval",
            "0.3",
        ]
    )
    settings = cli.build_settings(args)
    assert settings.server_url == "https://10.1.2.3:6443"
    assert settings.ca_pem == CA
    assert settings.cluster_id == "blue"
    assert settings.provider.name == "local" and settings.provider.instances is not None
    assert settings.machine_poll_interval == 0.3
    assert (settings.lease_namespace, settings.lease_name) == ("kube-system", "pinnace-provisioner")


def test_flags_override_the_kubeconfig(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(b"other CA")
    (tmp_path / "kube-ca.crt").write_bytes(CA)
    args = parse(
        [
            "--kubeconfig",
            str(kubeconfig(tmp_path, ca_file=tmp_path / "kube-ca.crt")),
            "--cloud-provider",
            "local",
            "--cloud-config",
            str(cloud_config(tmp_path)),
            "--server-url",
            "https://api.example:6443",
            "--ca-file",
            str(ca_file),
        ]
    )
    settings = cli.build_settings(args)
    assert (settings.server_url, settings.ca_pem) == ("https://api.example:6443", b"other CA")
