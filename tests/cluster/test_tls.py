"""TLS on the cluster link: attach to a TLS scheduler, refusals, flag checks, embedded TLS."""

from __future__ import annotations

import datetime
import ipaddress
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli

pytestmark = pytest.mark.integration

x509 = pytest.importorskip("cryptography.x509")


def _write_pki(folder: Path, prefix: str) -> dict[str, Path]:
    """A self-signed CA and a cert/key it signs for 127.0.0.1/localhost (client and server)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    valid = {"not_valid_before": now - datetime.timedelta(hours=1)}
    valid["not_valid_after"] = now + datetime.timedelta(days=1)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name(f"{prefix} test CA"))
        .issuer_name(name(f"{prefix} test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid["not_valid_before"])
        .not_valid_after(valid["not_valid_after"])
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid["not_valid_before"])
        .not_valid_after(valid["not_valid_after"])
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {
        "ca": folder / f"{prefix}-ca.pem",
        "cert": folder / f"{prefix}-cert.pem",
        "key": folder / f"{prefix}-key.pem",
    }
    paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, dict[str, Path]]:
    folder = tmp_path_factory.mktemp("pki")
    return {"good": _write_pki(folder, "good"), "other": _write_pki(folder, "other")}


def _flags(files: dict[str, Path]) -> list[str]:
    return [
        "--tls-ca-file",
        str(files["ca"]),
        "--tls-cert",
        str(files["cert"]),
        "--tls-key",
        str(files["key"]),
    ]


@pytest.fixture(scope="module")
def tls_address(pki) -> Iterator[str]:
    """A TLS-only LocalCluster (one worker process) on loopback that requires client certs."""
    from distributed import LocalCluster
    from distributed.security import Security

    good = pki["good"]
    security = Security(
        tls_ca_file=str(good["ca"]),
        tls_scheduler_cert=str(good["cert"]),
        tls_scheduler_key=str(good["key"]),
        tls_worker_cert=str(good["cert"]),
        tls_worker_key=str(good["key"]),
        tls_client_cert=str(good["cert"]),
        tls_client_key=str(good["key"]),
        require_encryption=True,
    )
    with LocalCluster(
        protocol="tls://",
        security=security,
        processes=True,
        n_workers=1,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=":0",
    ) as cluster:
        assert cluster.scheduler_address.startswith("tls://")
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    from tests.helpers.images import write_collection

    folder = tmp_path_factory.mktemp("tls-images")
    write_collection(folder, n=6)
    return folder


def _assert_complete(out: Path, n: int) -> None:
    status = run_cli("status", str(out), "--json")
    assert status.exit_code == 0, status.output
    report = json.loads(status.stdout)
    assert (report["done"], report["failed"], report["pending"]) == (n, 0, 0)


def _one_line_error(result, code: int, needle: str) -> None:
    assert result.exit_code == code, result.output
    assert needle in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_run_attaches_to_tls_scheduler(tls_address, pki, images, tmp_path):
    out = tmp_path / "out.zarr"
    result = run_cli(
        "run",
        str(images),
        "-m",
        "skimage.otsu",
        "-o",
        str(out),
        "--scheduler",
        tls_address,
        *_flags(pki["good"]),
    )
    assert result.exit_code == 0, result.output
    assert "PRIVATE KEY" not in result.output
    _assert_complete(out, 6)


def test_job_spec_tls_paths_are_relative_to_spec(tls_address, pki, images, tmp_path):
    folder = pki["good"]["ca"].parent
    spec = folder / "job.toml"
    spec.write_text(
        f'input = "{images}"\nmethod = "skimage.otsu"\noutput = "{tmp_path / "spec.zarr"}"\n'
        f'scheduler = "{tls_address}"\n'
        'tls_ca_file = "good-ca.pem"\ntls_cert = "good-cert.pem"\ntls_key = "good-key.pem"\n'
    )
    from batchseg.job.spec import load_spec

    loaded = load_spec(spec)
    assert loaded.tls_ca_file == str(pki["good"]["ca"])
    assert loaded.tls_key == str(pki["good"]["key"])
    result = run_cli("run", str(spec))
    assert result.exit_code == 0, result.output
    _assert_complete(tmp_path / "spec.zarr", 6)


def test_client_without_certificate_is_refused(tls_address, images, tmp_path):
    result = run_cli(
        "run", str(images), "-m", "skimage.otsu", "-o", str(tmp_path / "o.zarr"),
        "--scheduler", tls_address,
    )  # fmt: skip
    _one_line_error(result, 1, "uses TLS")
    assert not (tmp_path / "o.zarr").exists()
    # Plain distributed clients, each in its own process: a failed Client's __del__ can deadlock
    # when garbage-collected at an unlucky moment, which must not hang this test run.
    for address in (tls_address, tls_address.replace("tls://", "tcp://")):
        probe = subprocess.run(
            [sys.executable, "-c", _RAW_CLIENT, address],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert probe.returncode == 3, probe.stdout + probe.stderr


_RAW_CLIENT = """
import os, sys
from distributed import Client
try:
    Client(sys.argv[1], timeout="3s")
except Exception as exc:
    print("refused:", type(exc).__name__, flush=True)
    os._exit(3)
os._exit(0)
"""


@pytest.mark.parametrize("ca", ["good", "other"])
def test_certificate_from_another_ca_is_refused(
    tls_address, pki, images, tmp_path, monkeypatch, ca
):
    """other: the scheduler refuses the client's cert (the client trusts the scheduler, with
    ca=good) or the client refuses the scheduler's (ca=other)."""
    from batchseg.cluster import connect as cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", "3s")
    files = {**pki["other"], "ca": pki[ca]["ca"]}
    result = run_cli(
        "run", str(images), "-m", "skimage.otsu", "-o", str(tmp_path / "o.zarr"),
        "--scheduler", tls_address, *_flags(files),
    )  # fmt: skip
    _one_line_error(result, 1, f"cannot reach scheduler {tls_address}")
    assert "must trust the CA" in result.stderr
    assert not (tmp_path / "o.zarr").exists()


@pytest.mark.parametrize(
    ("drop", "extra", "code", "needle"),
    [
        (("--tls-key",), [], 2, "missing tls_key"),
        (("--tls-ca-file", "--tls-cert"), [], 2, "missing tls_ca_file, tls_cert"),
        ((), ["--scheduler", "tcp://127.0.0.1:1"], 2, "not a tls:// address"),
    ],
)
def test_tls_flag_errors(pki, images, tmp_path, drop, extra, code, needle):
    args = _flags(pki["good"])
    for flag in drop:
        i = args.index(flag)
        del args[i : i + 2]
    result = run_cli(
        "run", str(images), "-m", "skimage.otsu", "-o", str(tmp_path / "o.zarr"), *args, *extra
    )
    _one_line_error(result, code, needle)


def test_tls_missing_file(pki, images, tmp_path):
    args = _flags(pki["good"])
    args[args.index("--tls-cert") + 1] = str(tmp_path / "nope.pem")
    result = run_cli(
        "run", str(images), "-m", "skimage.otsu", "-o", str(tmp_path / "o.zarr"), *args
    )
    _one_line_error(result, 2, "nope.pem: no such file")


def test_tls_keys_in_spec_must_come_together(tmp_path):
    spec = tmp_path / "job.toml"
    spec.write_text('input = "i"\nmethod = "skimage.otsu"\noutput = "o.zarr"\ntls_cert = "c.pem"\n')
    result = run_cli("run", str(spec))
    _one_line_error(result, 2, "missing tls_ca_file, tls_key")


def test_embedded_cluster_with_tls(pki, images, tmp_path, monkeypatch):
    from batchseg.cluster import local as cluster

    addresses: list[str] = []

    class Recording(cluster.LocalCluster):  # type: ignore[misc]
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            addresses.append(self.scheduler_address)

    monkeypatch.setattr(cluster, "LocalCluster", Recording)
    out = tmp_path / "out.zarr"
    result = run_cli(
        "run", str(images), "-m", "skimage.otsu", "-o", str(out), "--workers", "1",
        *_flags(pki["good"]),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert addresses and addresses[0].startswith("tls://")
    _assert_complete(out, 6)


def test_evaluate_and_panoptic_attach_to_tls_scheduler(tls_address, pki, images, tmp_path):
    """The job runner's connect is every command's: evaluate and panoptic over TLS, refused
    without the certificate like run."""
    import numpy as np
    from PIL import Image

    import batchseg
    from tests.helpers.panoptic import write_instances, write_semantic

    sem, inst = write_semantic(tmp_path / "sem.zarr"), write_instances(tmp_path / "inst.zarr")
    truth = tmp_path / "truth"
    for image_id in batchseg.open(str(sem)).table()["image_id"]:
        path = truth / f"{image_id.rsplit('.', 1)[0]}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(batchseg.open(str(sem)).mask(image_id).astype(np.uint8)).save(path)
    evaluate = ["evaluate", str(sem), "--truth", str(truth), "--scheduler", tls_address]
    _one_line_error(run_cli(*evaluate), 1, "uses TLS")
    result = run_cli(*evaluate, *_flags(pki["good"]), "--json")
    assert result.exit_code in (0, 3), result.output
    assert json.loads(result.stdout)["eval"]["images_scored"] >= 3
    out = tmp_path / "pan.zarr"
    panoptic = ["panoptic", "--semantic", str(sem), "--instances", str(inst), "-o", str(out)]
    panoptic += ["--min-stuff-area", "100", "--scheduler", tls_address]
    _one_line_error(run_cli("--quiet", *panoptic), 1, "uses TLS")
    result = run_cli(*panoptic, *_flags(pki["good"]))  # resumes the store created above
    assert result.exit_code == 3, result.output  # one image fails by design
    assert "3 images done, 1 failed" in result.output
