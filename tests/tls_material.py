"""Certificates for the TLS tests, made by the product's own PKI (broker_admin/pki.py): a site CA,
the broker's certificate (for 127.0.0.1 and localhost), a kiosk's, and a rogue CA."""

from __future__ import annotations

from pathlib import Path

from broker_admin import pki
from broker_admin.pki import Issued

__all__ = ["CertificateAuthority", "Issued"]


class CertificateAuthority:
    def __init__(self, directory: Path, name: str) -> None:
        self.authority = pki.CertificateAuthority.create(directory, name)
        self.directory = directory
        self.issued = Issued(self.authority.cert_file, directory / pki.CA_KEY)

    def issue(self, stem: str, common_name: str, *, server: bool) -> Issued:
        if server:
            hosts = list(dict.fromkeys([common_name, "localhost", "127.0.0.1"]))
            return self.authority.issue_server(hosts, stem=stem)
        return self.authority.issue_client(common_name, stem=stem)
