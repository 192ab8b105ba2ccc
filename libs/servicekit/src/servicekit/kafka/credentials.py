"""The local broker's TLS material and the principals' passwords (what `make up` generates).

    python -m servicekit.kafka.credentials .cache/secrets/kafka

writes, unless they exist:
- `ca.pem` / `ca.key`: a CA for this checkout only (10 years);
- `broker.p12` (+ `broker.p12.password`): the broker's key and certificate (CN=broker, for
  127.0.0.1, localhost and `--hosts`), signed by the CA; the broker serves TLS with it and presents it
  on its controller connections (mTLS: the controller listener accepts only this certificate);
- `users/<principal>`: a random password for every principal of `servicekit.kafka.acls`
  (and the broker's own), mode 0600.

Nothing here is committed or shipped: in a cluster the operator (e.g. Strimzi) issues the
certificates and the users' Secrets.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .access import password_path
from .acls import BROKER, principals

VALID = dt.timedelta(days=3650)


def _write_secret(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(data)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "My MobiFone local"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca(directory: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key_path, cert_path = directory / "ca.key", directory / "ca.pem"
    if key_path.exists() and cert_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key, x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("My MobiFone local Kafka CA"))
        .issuer_name(_name("My MobiFone local Kafka CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALID)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    _write_secret(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def _broker_keystore(
    directory: Path, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, hosts: tuple[str, ...]
) -> None:
    store, password_file = directory / "broker.p12", directory / "broker.p12.password"
    if store.exists() and password_file.exists():
        return
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(BROKER))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALID)
        .add_extension(
            x509.SubjectAlternativeName([_san(host) for host in ("localhost", "127.0.0.1", *hosts)]),
            critical=False,
        )
        # Server for clients, client on its own controller connections (mTLS).
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    password = secrets.token_urlsafe(24)
    data = pkcs12.serialize_key_and_certificates(
        BROKER.encode(), key, cert, [ca], serialization.BestAvailableEncryption(password.encode())
    )
    _write_secret(store, data)
    _write_secret(password_file, password.encode())


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def generate(directory: Path, hosts: tuple[str, ...] = ()) -> list[str]:
    """Create what is missing; returns the principals whose password was created now. The
    broker's certificate is valid for localhost, 127.0.0.1 and `hosts` (e.g. `kafka`)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = _ca(directory)
    _broker_keystore(directory, ca_key, ca, hosts)
    created = []
    for principal in [*principals(), BROKER]:
        path = password_path(directory, principal)
        if not path.exists():
            _write_secret(path, secrets.token_urlsafe(24).encode())
            created.append(principal)
    return created


def main() -> None:
    parser = argparse.ArgumentParser(description="Create the local broker's TLS material and passwords")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--hosts", default="", help="more names the broker is reached by, comma separated")
    args = parser.parse_args()
    created = generate(args.directory, tuple(h for h in args.hosts.split(",") if h))
    print(f"{args.directory}: new passwords for {', '.join(created) or 'nobody (all exist)'}")


if __name__ == "__main__":
    main()
