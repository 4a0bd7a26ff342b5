"""The certificates of one Doorstep broker: its CA, the broker's own certificate, each kiosk's.

One CA per broker (not per station): every kiosk that connects to a broker must trust the one
certificate that broker shows, so one CA signs it and every kiosk certificate the broker accepts.
Keys are ECDSA P-256 (RFC 5480), which Mosquitto's OpenSSL and Python's ssl both speak, and
which a Raspberry Pi signs with in well under a millisecond.

A kiosk's certificate names the kiosk in its Common Name as `{site}.{kiosk}`: the broker's
`use_identity_as_username` makes that its username (and `use_username_as_clientid` its client
id), which the broker's rules (broker_admin/access.py) give the kiosk's own topics and
nothing else.

Extended key usage keeps the roles apart (RFC 5280, 4.2.1.12): the broker's certificate is for
TLS servers only, a kiosk's for TLS clients only, so a key stolen from a kiosk cannot pose as
the broker even to a kiosk that trusts the same CA (OpenSSL checks the purpose of the peer's
certificate during the handshake).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from broker_admin.access import BROKER_DAYS, CA_DAYS, KIOSK_DAYS, kiosk_username

# Certificates are valid from a little before they are made: a kiosk whose clock is a few
# minutes behind must not refuse a broker certificate issued a moment ago.
BACKDATE: Final = datetime.timedelta(minutes=5)

CA_CERT: Final = "ca.crt"
CA_KEY: Final = "ca.key"
BROKER_CERT: Final = "broker.crt"
BROKER_KEY: Final = "broker.key"
KIOSKS_DIR: Final = "kiosks"


class PkiError(RuntimeError):
    """A PKI operation that would overwrite, or needs what is not there; the message says which."""


@dataclass(frozen=True, slots=True)
class Issued:
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, signing_certificates: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=signing_certificates, crl_sign=signing_certificates,
        encipher_only=False, decipher_only=False,
    )


def _write_private(path: Path, data: bytes) -> None:
    """A private key: created 0600 (never world-readable, not even for a moment), never overwritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise PkiError(f"{path} exists: refusing to overwrite a key") from None
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def _write(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    if cert_path.exists():
        raise PkiError(f"{cert_path} exists: refusing to overwrite a certificate")
    _write_private(
        key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Issued(cert_path, key_path)


def _subject_alternative_names(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


class CertificateAuthority:
    """A CA in a directory: `ca.crt`, `ca.key` (0600), what it issued beside them."""

    def __init__(self, directory: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.directory = directory
        self.cert = cert
        self.key = key

    @property
    def cert_file(self) -> Path:
        return self.directory / CA_CERT

    @classmethod
    def create(cls, directory: Path, name: str, *, days: int = CA_DAYS) -> CertificateAuthority:
        if (directory / CA_KEY).exists() or (directory / CA_CERT).exists():
            raise PkiError(f"{directory} already holds a CA: refusing to replace it (every kiosk trusts it)")
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + datetime.timedelta(days=days))
            # path_length 0: this CA signs end certificates only, never another CA.
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(signing_certificates=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write(directory, "ca", cert, key)
        return cls(directory, cert, key)

    @classmethod
    def load(cls, directory: Path) -> CertificateAuthority:
        try:
            cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
            key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), password=None)
        except FileNotFoundError as error:
            raise PkiError(f"no CA in {directory} ({error.filename} is missing): create one with "
                           "`doorstep broker new-ca`") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PkiError(f"{directory / CA_KEY} is not an EC key")
        return cls(directory, cert, key)

    def _builder(self, common_name: str, public_key: ec.EllipticCurvePublicKey, days: int) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(signing_certificates=False), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )

    def issue_server(self, hosts: list[str], *, stem: str = "broker", days: int = BROKER_DAYS) -> Issued:
        """The broker's certificate, for every name and address kiosks use to reach it: a kiosk
        checks that the host it dialled is one of them (RFC 6125), so a certificate for another
        host is refused even when this CA signed it."""
        if not hosts:
            raise PkiError("the broker's certificate needs at least one host name or address")
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            self._builder(hosts[0], key.public_key(), days)
            .add_extension(_subject_alternative_names(hosts), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return _write(self.directory, stem, cert, key)

    def issue_client(
        self, common_name: str, *, directory: Path | None = None, stem: str | None = None, days: int = KIOSK_DAYS
    ) -> Issued:
        """A client's certificate (`{stem or common_name}.crt`); the broker takes its Common Name
        as the username."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            self._builder(common_name, key.public_key(), days)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return _write(directory or self.directory, stem or common_name, cert, key)

    def issue_kiosk(self, site: str, kiosk: str, *, days: int = KIOSK_DAYS) -> Issued:
        """`kiosks/{site}.{kiosk}.crt` and `.key`: copy both, and `ca.crt`, to the kiosk."""
        return self.issue_client(kiosk_username(site, kiosk), directory=self.directory / KIOSKS_DIR, days=days)
