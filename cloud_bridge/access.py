"""Who may do what through the bridge's API: roles, capabilities, and the sites they reach.

The whole policy is ROLE_CAPABILITIES below: a role holds capabilities, each either over every
site or over the person's own site only. Health data (readings, and alerts about a resident's
reading) is a capability of its own that only a doctor holds, for the residents of their site:
a technician fixes devices and never needs to see anyone's blood pressure.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Role(StrEnum):
    TECHNICIAN = "technician"  # watches and fixes every kiosk; sends commands anywhere
    STATION_STAFF = "station_staff"  # runs one site: its kiosks, alerts and commands
    DOCTOR = "doctor"  # the family doctor of one site: its residents' readings and health alerts
    READ_ONLY = "read_only"  # dashboards on a wall, auditors: the fleet, nothing health, nothing changed


class Capability(StrEnum):
    FLEET_READ = "fleet:read"  # kiosks, devices, telemetry, events, commands, non-health alerts
    FLEET_MANAGE = "fleet:manage"  # retire a kiosk from the fleet
    HEALTH_READ = "health:read"  # readings, and alerts about readings
    ALERTS_MANAGE = "alerts:manage"  # acknowledge and resolve the alerts one can see
    COMMANDS_SEND = "commands:send"
    DEAD_LETTERS_READ = "dead_letters:read"  # refused messages; the bytes of health ones only with HEALTH_READ too
    METRICS_READ = "metrics:read"
    AUDIT_READ = "audit:read"
    # Turn a card number or a resident's QR code into the pseudonym (issue 21): a doctor to open
    # the resident's readings, station staff to tell a resident whether the station has their
    # record; neither learns more than the pseudonym and that it has readings.
    RESIDENTS_FIND = "residents:find"
    # Kiosks' support bundles: their logs and configuration (secrets removed), to fix them.
    SUPPORT_BUNDLES_READ = "support_bundles:read"


class Scope(StrEnum):
    ALL_SITES = "all"
    OWN_SITE = "own"


ROLE_CAPABILITIES: Final[dict[Role, dict[Capability, Scope]]] = {
    Role.TECHNICIAN: {
        Capability.FLEET_READ: Scope.ALL_SITES,
        Capability.FLEET_MANAGE: Scope.ALL_SITES,
        Capability.ALERTS_MANAGE: Scope.ALL_SITES,
        Capability.COMMANDS_SEND: Scope.ALL_SITES,
        Capability.DEAD_LETTERS_READ: Scope.ALL_SITES,
        Capability.METRICS_READ: Scope.ALL_SITES,
        Capability.AUDIT_READ: Scope.ALL_SITES,
        Capability.SUPPORT_BUNDLES_READ: Scope.ALL_SITES,
    },
    Role.STATION_STAFF: {
        Capability.FLEET_READ: Scope.OWN_SITE,
        Capability.ALERTS_MANAGE: Scope.OWN_SITE,
        Capability.COMMANDS_SEND: Scope.OWN_SITE,
        Capability.RESIDENTS_FIND: Scope.OWN_SITE,
    },
    Role.DOCTOR: {
        Capability.FLEET_READ: Scope.OWN_SITE,
        Capability.HEALTH_READ: Scope.OWN_SITE,
        Capability.RESIDENTS_FIND: Scope.OWN_SITE,
        Capability.ALERTS_MANAGE: Scope.OWN_SITE,
    },
    Role.READ_ONLY: {
        Capability.FLEET_READ: Scope.ALL_SITES,
        Capability.METRICS_READ: Scope.ALL_SITES,
    },
}

ROLES_WITH_A_SITE: Final = frozenset({Role.STATION_STAFF, Role.DOCTOR})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a person (or a script) with a role, and a site for the site-bound roles."""

    username: str
    role: Role
    site: str | None

    def scope(self, capability: Capability) -> Scope | None:
        return ROLE_CAPABILITIES[self.role].get(capability)

    def may(self, capability: Capability, site: str | None = None) -> bool:
        """Whether this principal holds `capability` over `site` (None: over some site at least)."""
        scope = self.scope(capability)
        if scope is None:
            return False
        return scope is Scope.ALL_SITES or site is None or site == self.site

    def sites(self, capability: Capability) -> str | None:
        """The one site a query must be limited to, or None for every site. Call after may()."""
        return None if self.scope(capability) is Scope.ALL_SITES else self.site
