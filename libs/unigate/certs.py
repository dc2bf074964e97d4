"""The private CA and the per-service certificates of unigate's internal mutual TLS.

One CA signs one certificate per service identity. A certificate names its identity three
ways: the subject CN, a URI SAN ``spiffe://unigate/<identity>`` (what servers read to decide
what the caller may call, ``unigate.rpc_acl``) and a DNS SAN ``<identity>`` (what clients check
the server against, whatever address they dialled: ``grpcutil.client_channel`` verifies an
auth server by the name ``auth``, so a relay's certificate cannot stand in for auth). Also
``localhost``, ``127.0.0.1``, ``::1`` and any extra hostnames, so ``grpcurl`` can reach a
server by the name it is deployed under.

Keys are ECDSA P-256: a handshake signs with the key, and P-256 signs ~30x faster than RSA
2048 on this machine's CPUs. Files are PEM: ``ca.pem``, ``ca-key.pem``, ``<identity>.pem``,
``<identity>-key.pem`` (keys mode 0600), written to a temporary name and renamed, so a
server reloading them (``grpcutil.server_credentials``) never reads half a file.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Every identity a unigate certificate can carry. ``admin`` is the operator's: the ``unigate``
#: CLI, ``grpcurl``, the benchmark acting on auth, tests.
IDENTITIES = ("gateway", "auth", "relay", "billing", "admin")
SPIFFE_PREFIX = "spiffe://unigate/"
CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"

Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class TlsFiles:
    """Where one process finds its trust root, certificate and key."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def in_dir(cls, directory: Path | str, identity: str) -> TlsFiles:
        d = Path(directory)
        return cls(d / CA_FILE, d / f"{identity}.pem", d / f"{identity}-key.pem")

    def read(self) -> tuple[bytes, bytes, bytes]:
        """(CA bundle, certificate chain, private key), as PEM."""
        return self.ca.read_bytes(), self.cert.read_bytes(), self.key.read_bytes()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "unigate"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _new_key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


def new_ca(
    days: int = 3650, common_name: str = "unigate internal CA"
) -> tuple[Key, x509.Certificate]:
    key = _new_key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def issue(
    ca_key: Key,
    ca_cert: x509.Certificate,
    identity: str,
    hostnames: Iterable[str] = (),
    days: int = 365,
    spiffe_id: str | None = None,
) -> tuple[Key, x509.Certificate]:
    """A certificate for ``identity``, usable both to serve and to call (a service is both).
    ``spiffe_id`` replaces its URI SAN (tests make foreign identities with it)."""
    key = _new_key()
    now = dt.datetime.now(dt.UTC)
    hosts = dict.fromkeys([identity, "localhost", "127.0.0.1", "::1", *hostnames])
    sans: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(spiffe_id or SPIFFE_PREFIX + identity),
        *(_general_name(h) for h in hosts if h),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(identity))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, secret: bool) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


def load_ca(directory: Path) -> tuple[Key, x509.Certificate] | None:
    cert_path, key_path = directory / CA_FILE, directory / CA_KEY_FILE
    if not (cert_path.exists() and key_path.exists()):
        return None
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path}: not an EC private key")
    # The bundle may hold an older CA after a rotation; the signing one is the first.
    return key, x509.load_pem_x509_certificates(cert_path.read_bytes())[0]


def write_certificates(
    directory: Path | str,
    identities: Iterable[str] = IDENTITIES,
    hostnames: Iterable[str] = (),
    days: int = 365,
    new_ca_too: bool = False,
) -> list[Path]:
    """Issue (or re-issue: rotation) a certificate per identity in ``directory``, from the CA
    there, creating the CA if there is none or ``new_ca_too``. Returns the files written."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    old = load_ca(d)
    ca = None if new_ca_too else old
    if ca is None:
        ca = new_ca()
        # A replaced CA stays trusted (second in the bundle) until the next CA change, so
        # processes still presenting its certificates are accepted while they are rolled.
        bundle = cert_pem(ca[1]) + (cert_pem(old[1]) if old is not None else b"")
        # The CA key is written first: files present but unusable never look like a CA.
        _write(d / CA_KEY_FILE, key_pem(ca[0]), secret=True)
        _write(d / CA_FILE, bundle, secret=False)
        written += [d / CA_KEY_FILE, d / CA_FILE]
    hosts = list(hostnames)
    for identity in identities:
        key, cert = issue(*ca, identity, hosts, days)
        files = TlsFiles.in_dir(d, identity)
        # Key before certificate: a reloading server checks that the two match and keeps
        # its current pair until they do.
        _write(files.key, key_pem(key), secret=True)
        _write(files.cert, cert_pem(cert), secret=False)
        written += [files.key, files.cert]
    return written


def drop_old_cas(directory: Path | str) -> Path:
    """Keep only the signing CA in the bundle: the end of a CA rotation."""
    path = Path(directory) / CA_FILE
    first = x509.load_pem_x509_certificates(path.read_bytes())[0]
    _write(path, cert_pem(first), secret=False)
    return path


def has_certificates(directory: Path | str, identities: Iterable[str] = IDENTITIES) -> bool:
    """Whether ``directory`` holds the CA and each identity's certificate and key."""
    d = Path(directory)
    files = [TlsFiles.in_dir(d, i) for i in identities]
    return (d / CA_FILE).exists() and all(f.cert.exists() and f.key.exists() for f in files)


def ensure_certificates(directory: Path | str, hostnames: Iterable[str] = ()) -> bool:
    """Create the CA and every identity's certificate in ``directory`` unless all are there
    (the dev stack's start-up). True if anything was written."""
    if has_certificates(directory):
        return False
    write_certificates(directory, hostnames=hostnames)
    return True


def key_matches(cert_pem_bytes: bytes, key_pem_bytes: bytes) -> bool:
    """Whether the first certificate of a chain belongs to the private key (a pair caught
    mid-rotation may not)."""
    try:
        cert = x509.load_pem_x509_certificates(cert_pem_bytes)[0]
        key = serialization.load_pem_private_key(key_pem_bytes, password=None)
    except ValueError:
        return False
    return bool(cert.public_key() == key.public_key())
