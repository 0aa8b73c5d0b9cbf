"""Certificates and keys for a loopback control plane (a CA, the API server's serving
certificate, the service-account signing key pair, static bearer tokens)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVICE_CLUSTER_IP = "10.96.0.1"
API_SERVER_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True)
class Pki:
    """Paths of the generated material inside a cluster directory."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def serving_cert(self) -> Path:
        return self.directory / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.directory / "apiserver.key"

    @property
    def sa_key(self) -> Path:
        return self.directory / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.directory / "sa.pub"

    @property
    def tokens_csv(self) -> Path:
        return self.directory / "tokens.csv"

    def exists(self) -> bool:
        paths = (self.ca_cert, self.ca_key, self.serving_cert, self.serving_key)
        return all(p.exists() for p in (*paths, self.sa_key, self.sa_pub, self.tokens_csv))


@dataclass(frozen=True)
class Identity:
    """A static-token identity (see kube-apiserver --token-auth-file)."""

    name: str
    user: str
    groups: tuple[str, ...]


IDENTITIES = (
    Identity("admin", "surge-admin", ("system:masters",)),
    Identity("controller-manager", "system:kube-controller-manager", ()),
    Identity("scheduler", "system:kube-scheduler", ()),
    Identity("kwok", "kwok-controller", ("system:masters",)),
)


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(now: dt.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("surge-local-ca"))
        .issuer_name(_name("surge-local-ca"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _serving(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, now: dt.datetime
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in API_SERVER_DNS_NAMES]
    sans += [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address(SERVICE_CLUSTER_IP)),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("kube-apiserver"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def tokens_csv(tokens: dict[str, str]) -> str:
    """Render the --token-auth-file: token,user,uid[,"group1,group2"]."""
    lines = []
    for ident in IDENTITIES:
        groups = ",".join(ident.groups)
        line = f"{tokens[ident.name]},{ident.user},{ident.user}"
        lines.append(f'{line},"{groups}"' if groups else line)
    return "\n".join(lines) + "\n"


def read_tokens(pki: Pki) -> dict[str, str]:
    """Map identity name -> bearer token, read back from tokens.csv."""
    by_user = {ident.user: ident.name for ident in IDENTITIES}
    tokens: dict[str, str] = {}
    for line in pki.tokens_csv.read_text().splitlines():
        token, user, *_ = line.split(",")
        if user in by_user:
            tokens[by_user[user]] = token
    return tokens


def ensure_pki(directory: Path) -> Pki:
    """Generate everything once; an existing, complete set is reused (etcd data stays valid)."""
    pki = Pki(directory)
    if pki.exists():
        return pki
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key, ca_cert = _ca(now)
    serving_key, serving_cert = _serving(ca_key, ca_cert, now)
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    pki.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(pki.ca_key, _pem_key(ca_key))
    pki.serving_cert.write_bytes(serving_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(pki.serving_key, _pem_key(serving_key))
    _write_private(pki.sa_key, _pem_key(sa_key))
    pki.sa_pub.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    tokens = {ident.name: secrets.token_hex(24) for ident in IDENTITIES}
    _write_private(pki.tokens_csv, tokens_csv(tokens).encode())
    return pki
