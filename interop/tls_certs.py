"""Certificates for the TLS tests, made at run time with the `openssl` command:
a test CA, a server certificate for 127.0.0.1 / localhost (RSA), a second one
for the reload test, client certificates for alice (EC) and bob (RSA), an
expired client certificate, and one from a CA the broker does not trust."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@dataclass
class Pair:
    cert: Path
    key: Path


@dataclass
class TestPKI:
    ca: Path
    server: Pair
    server2: Pair
    alice: Pair
    bob: Pair
    expired: Pair
    untrusted: Pair


def _ca(directory: Path, name: str) -> Pair:
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
             "-subj", f"/CN={name}", "-keyout", key.name, "-out", cert.name, cwd=directory)
    return Pair(cert, key)


def _key(directory: Path, name: str, kind: str) -> Path:
    key = directory / f"{name}.key"
    if kind == "ec":
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key.name, cwd=directory)
    else:
        _openssl("genrsa", "-out", key.name, "2048", cwd=directory)
    return key


def _signed(directory: Path, ca: Pair, name: str, subject: str, kind: str = "rsa",
            extensions: str | None = None) -> Pair:
    key = _key(directory, name, kind)
    csr, cert = directory / f"{name}.csr", directory / f"{name}.pem"
    _openssl("req", "-new", "-key", key.name, "-subj", subject, "-out", csr.name, cwd=directory)
    args = ["x509", "-req", "-in", csr.name, "-CA", str(ca.cert), "-CAkey", str(ca.key),
            "-CAcreateserial", "-days", "30", "-out", cert.name]
    if extensions:
        ext = directory / f"{name}.ext"
        ext.write_text(extensions + "\n")
        args += ["-extfile", ext.name]
    _openssl(*args, cwd=directory)
    return Pair(cert, key)


def _expired(directory: Path, ca: Pair, name: str, subject: str) -> Pair:
    """`openssl ca` is the one command of OpenSSL 3.0 that takes a start and end date in the past."""
    key = _key(directory, name, "rsa")
    csr, cert = directory / f"{name}.csr", directory / f"{name}.pem"
    _openssl("req", "-new", "-key", key.name, "-subj", subject, "-out", csr.name, cwd=directory)
    db = directory / "ca-db"
    db.mkdir(exist_ok=True)
    (db / "index.txt").write_text("")
    (db / "serial").write_text("1000\n")
    config = directory / "ca.cnf"
    config.write_text(
        "[ca]\ndefault_ca = test\n"
        f"[test]\ndatabase = {db / 'index.txt'}\nserial = {db / 'serial'}\nnew_certs_dir = {db}\n"
        "default_md = sha256\npolicy = anything\nunique_subject = no\n"
        "[anything]\ncommonName = supplied\n")
    _openssl("ca", "-batch", "-config", config.name, "-cert", str(ca.cert), "-keyfile", str(ca.key),
             "-startdate", "20200101000000Z", "-enddate", "20200102000000Z",
             "-in", csr.name, "-out", cert.name, cwd=directory)
    return Pair(cert, key)


def make_pki(directory: Path) -> TestPKI:
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca(directory, "test-ca")
    other_ca = _ca(directory, "other-ca")
    san = "subjectAltName=IP:127.0.0.1,DNS:localhost"
    pki = TestPKI(
        ca=ca.cert,
        server=_signed(directory, ca, "server", "/CN=localhost", extensions=san),
        server2=_signed(directory, ca, "server2", "/CN=localhost-renewed", kind="ec", extensions=san),
        alice=_signed(directory, ca, "alice", "/CN=alice", kind="ec"),
        bob=_signed(directory, ca, "bob", "/O=Petrel tests/CN=bob"),
        expired=_expired(directory, ca, "expired", "/CN=carol"),
        untrusted=_signed(directory, other_ca, "untrusted", "/CN=mallory"),
    )
    check = subprocess.run(["openssl", "x509", "-checkend", "0", "-noout", "-in", str(pki.expired.cert)],
                           capture_output=True, timeout=30)
    assert check.returncode != 0, "the expired certificate is not expired"
    return pki
