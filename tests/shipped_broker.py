"""deploy/mosquitto/doorstep.conf started for real, with only what a test must change: its ports
(free ones), its data directory, its log, and the paths of its password file, ACL and
certificates (a throwaway CA). The accounts are written by the product's own tool
(doorstep/broker_access.py), so the ACL under test is the one `doorstep broker` ships."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from doorstep import broker_access
from doorstep.mosquitto import MosquittoConfig, MosquittoProcess, free_port
from doorstep.pki import CertificateAuthority

SHIPPED = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto" / "doorstep.conf"


@dataclass(frozen=True)
class ShippedConfig(MosquittoConfig):
    original: str = ""
    tls_port: int = 0  # the shipped 8883: TLS and a password
    certificate_port: int = 0  # the shipped 8884: TLS and a client certificate
    pki: Path = field(default=Path())

    def render(self) -> str:
        text = self.original
        replacements = {
            r"^listener 1883 127\.0\.0\.1$": (f"listener {self.port} {self.host}", 1),
            r"^listener 8883$": (f"listener {self.tls_port} {self.host}", 1),
            r"^listener 8884$": (f"listener {self.certificate_port} {self.host}", 1),
            r"^cafile .*$": (f"cafile {self.pki / 'ca.crt'}", 2),
            r"^certfile .*$": (f"certfile {self.pki / 'broker.crt'}", 2),
            r"^keyfile .*$": (f"keyfile {self.pki / 'broker.key'}", 2),
            r"^persistence_location .*$": (f"persistence_location {self.data_dir}/", 1),
            r"^password_file .*$": (f"password_file {self.password_file}", 1),
            r"^acl_file .*$": (f"acl_file {self.acl_file}", 1),
            r"^log_dest syslog$": ("log_dest stderr", 1),
        }
        for pattern, (replacement, expected) in replacements.items():
            text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
            assert count == expected, f"the shipped configuration has {count} lines {pattern}, not {expected}"
        # Run as root (a CI container), Mosquitto drops to the 'mosquitto' user, which cannot
        # read files root made 0640 here.
        return text + ("user root\n" if "\nuser " not in text else "")


def setting(name: str) -> str:
    [value] = re.findall(rf"^{name} (.+)$", SHIPPED.read_text(), re.MULTILINE)
    return value


@dataclass
class ShippedBroker:
    """The broker, its CA and its account files, for one test."""

    process: MosquittoProcess
    ca: CertificateAuthority
    passwd: Path
    acl: Path

    @property
    def config(self) -> ShippedConfig:
        assert isinstance(self.process.config, ShippedConfig)
        return self.process.config

    def add_kiosk(self, site: str, kiosk: str, password: str | None) -> str:
        """Allow a kiosk (with a password, or only a certificate); its username."""
        username = broker_access.kiosk_username(site, kiosk)
        broker_access.allow(self.acl, username)
        if password is not None:
            broker_access.set_password(self.passwd, username, password)
        return username

    def add_bridge(self, name: str, password: str) -> None:
        broker_access.allow(self.acl, broker_access.check_bridge_name(name))
        broker_access.set_password(self.passwd, name, password)


def shipped_broker(
    tmp_path: Path, *, original: str | None = None, pki: Path | None = None,
    passwd: Path | None = None, acl: Path | None = None,
) -> ShippedBroker:
    """With `pki`, `passwd` and `acl`: those files (made by `doorstep broker`); otherwise new ones."""
    data = tmp_path / "broker"
    data.mkdir(parents=True, exist_ok=True)
    if pki is None:
        ca = CertificateAuthority.create(tmp_path / "pki", "Doorstep test CA")
        ca.issue_server(["localhost", "127.0.0.1"])
    else:
        ca = CertificateAuthority.load(pki)
    if passwd is None:
        passwd = data / "passwd"
        passwd.touch()
    if acl is None:
        acl = data / "acl"
        acl.write_text(broker_access.render_acl(set()))
    config = ShippedConfig(
        port=free_port(), data_dir=data, password_file=passwd, acl_file=acl,
        original=original if original is not None else SHIPPED.read_text(),
        tls_port=free_port(), certificate_port=free_port(), pki=ca.directory,
    )
    return ShippedBroker(MosquittoProcess(config, log_path=data / "mosquitto.log"), ca, passwd, acl)
