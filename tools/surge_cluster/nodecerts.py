"""Certificates signed by the cluster CA for real nodes: each kubelet's client and serving
certificate, the client certificates of kube-proxy, kube-router and the volume provisioner,
the API server's client certificate towards kubelets, and an API server serving certificate
valid for the bridge address that nodes and pods use. Nothing is anonymous: every identity
is a certificate."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from surge_cluster.pki import API_SERVER_DNS_NAMES, SERVICE_CLUSTER_IP, VALIDITY, Pki

APISERVER_KUBELET_CLIENT = "surge:kube-apiserver-kubelet-client"
KUBE_PROXY_USER = "system:kube-proxy"
KUBE_ROUTER_USER = "surge:kube-router"
PROVISIONER_USER = "surge:local-path-provisioner"


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


def _load_ca(pki: Pki) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{pki.ca_key}: expected an EC key")
    return key, x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())


def issue(
    pki: Pki,
    out: Path,
    common_name: str,
    *,
    organizations: Sequence[str] = (),
    server: bool = False,
    ips: Sequence[str] = (),
    dns_names: Sequence[str] = (),
) -> CertPair:
    """Write out.crt / out.key: a client (default) or serving certificate from the CA."""
    ca_key, ca_cert = _load_ca(pki)
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    out.parent.mkdir(parents=True, exist_ok=True)
    pair = CertPair(out.with_suffix(".crt"), out.with_suffix(".key"))
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pair.key.chmod(0o600)
    return pair


def apiserver_serving(pki: Pki, out: Path, gateway: str) -> CertPair:
    """The API server's serving certificate for loopback, the bridge and the Service IP."""
    return issue(
        pki,
        out,
        "kube-apiserver",
        server=True,
        ips=("127.0.0.1", gateway, SERVICE_CLUSTER_IP),
        dns_names=API_SERVER_DNS_NAMES,
    )


def kubelet_client(pki: Pki, out: Path, node: str) -> CertPair:
    """What the Node authorizer recognises: system:node:<name> in system:nodes."""
    return issue(pki, out, f"system:node:{node}", organizations=("system:nodes",))


def kubelet_serving(pki: Pki, out: Path, node: str, ip: str) -> CertPair:
    return issue(pki, out, node, server=True, ips=(ip,), dns_names=(node,))
