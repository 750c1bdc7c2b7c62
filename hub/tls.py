"""Self-signed TLS certificates for a LAN trial: browsers give camera access
only to https:// pages (or localhost)."""

from __future__ import annotations

import datetime
import ipaddress
import logging
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hub.config import Config

logger = logging.getLogger(__name__)


def make_self_signed(config: Config, names: list[str]) -> tuple[Path, Path]:
    """Write a certificate for `names` (host names or IP addresses), valid for
    one year, and its key into the data folder. Returns both paths."""
    if not names:
        raise ValueError(
            "give at least one host name or IP address for the certificate"
        )
    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder = config.data_path / "tls"
    folder.mkdir(parents=True, exist_ok=True)
    cert_path = folder / "hub-cert.pem"
    key_path = folder / "hub-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    logger.info("self-signed certificate for %s written to %s", names, cert_path)
    return cert_path, key_path
