"""deploy/mosquitto/doorstep.conf started for real, with only what a test must change: its ports
(free ones), its data directory, its log, the paths of its certificates (a throwaway CA), of the
dynamic-security plugin and of the plugin's file. The accounts are made by the
product's own code (broker_admin/access.py), so the rules under test are the ones
`doorstep broker` gives."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from broker_admin import access
from broker_admin import dynsec
from broker_admin.dynsec import DynsecAdmin
from broker_admin.mosquitto import MosquittoConfig, MosquittoProcess, free_port
from broker_admin.pki import CertificateAuthority
from runtime.mqtt import BrokerSettings

SHIPPED = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto" / "doorstep.conf"
ADMIN_PASSWORD = "admin " + "q" * 30


@dataclass(frozen=True)
class ShippedConfig(MosquittoConfig):
    original: str = ""
    tls_port: int = 0  # the shipped 8883: TLS and a password
    certificate_port: int = 0  # the shipped 8884: TLS and a client certificate
    pki: Path = field(default=Path())
    dynsec_file: Path = field(default=Path())

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
            r"^plugin_opt_config_file .*$": (f"plugin_opt_config_file {self.dynsec_file}", 1),
            r"^log_dest syslog$": ("log_dest stderr", 1),
        }
        for pattern, (replacement, expected) in replacements.items():
            text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
            assert count == expected, f"the shipped configuration has {count} lines {pattern}, not {expected}"
        # Run as root (a CI container), Mosquitto drops to the 'mosquitto' user, which cannot
        # read files root made 0600 here.
        return text + ("user root\n" if "\nuser " not in text else "")


def setting(name: str) -> str:
    [value] = re.findall(rf"^{name} (.+)$", SHIPPED.read_text(), re.MULTILINE)
    return value


def settings(name: str) -> list[str]:
    """Every value of a setting the shipped file repeats (one per listener)."""
    return re.findall(rf"^{name} (.+)$", SHIPPED.read_text(), re.MULTILINE)


@dataclass
class ShippedBroker:
    """The broker, its CA and the plugin's file, for one test."""

    process: MosquittoProcess
    ca: CertificateAuthority
    dynsec_file: Path

    @property
    def config(self) -> ShippedConfig:
        assert isinstance(self.process.config, ShippedConfig)
        return self.process.config

    @property
    def admin_settings(self) -> BrokerSettings:
        return BrokerSettings(host=self.config.host, port=self.config.port, username=access.ADMIN_USERNAME,
                              password=ADMIN_PASSWORD)  # type: ignore[arg-type]

    @contextmanager
    def admin(self) -> Iterator[DynsecAdmin]:
        """The plugin's admin, on the running broker (what `doorstep broker` does)."""
        with DynsecAdmin(self.admin_settings) as admin:
            yield admin

    def add_kiosk(self, site: str, kiosk: str, password: str | None) -> str:
        """Allow a kiosk (with a password, or only a certificate) in the plugin's file, before
        the broker starts; its username."""
        username = access.kiosk_username(site, kiosk)
        access.offline_grant(self.dynsec_file, username, password)
        return username

    def add_bridge(self, name: str, password: str) -> None:
        access.offline_grant(self.dynsec_file, access.check_bridge_name(name), password)


def shipped_broker(
    tmp_path: Path, *, original: str | None = None, pki: Path | None = None, dynsec_file: Path | None = None,
) -> ShippedBroker:
    """With `pki` and `dynsec_file`: those (made by `doorstep broker`); otherwise new ones, the
    plugin's file holding only the admin account (ADMIN_PASSWORD)."""
    data = tmp_path / "broker"
    data.mkdir(parents=True, exist_ok=True)
    if pki is None:
        ca = CertificateAuthority.create(tmp_path / "pki", "Doorstep test CA")
        ca.issue_server(["localhost", "127.0.0.1"])
    else:
        ca = CertificateAuthority.load(pki)
    if dynsec_file is None:
        dynsec_file = data / "dynamic-security.json"
        dynsec.write_config(dynsec_file, dynsec.new_config(access.ADMIN_USERNAME, ADMIN_PASSWORD), overwrite=False)
    config = ShippedConfig(
        port=free_port(), data_dir=data,
        original=original if original is not None else SHIPPED.read_text(),
        tls_port=free_port(), certificate_port=free_port(), pki=ca.directory, dynsec_file=dynsec_file,
    )
    return ShippedBroker(MosquittoProcess(config, log_path=data / "mosquitto.log"), ca, dynsec_file)
