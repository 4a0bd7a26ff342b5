"""What a resident's QR code for their doctor holds (issue 21): their pseudonym and the site it
was derived at, never their card number. The kiosk shows it on the result screen and prints it on
a receipt; a doctor scans it into the bridge's lookup, which finds the resident only within the
doctor's own sites.

    DOORSTEP-R1:{site}:{pseudonym}

"R1" versions the format; the site is the one the pseudonym's key belongs to (keys are per site,
so the same card gives different pseudonyms at different sites)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from contract.errors import ContractError
from contract.topics import SLUG_PATTERN

PREFIX: Final = "DOORSTEP-R1"
_SITE: Final = SLUG_PATTERN.strip("^$")
_PATTERN: Final = re.compile(rf"^{PREFIX}:(?P<site>{_SITE}):(?P<pseudonym>[0-9a-f]{{64}})$")


@dataclass(frozen=True, slots=True)
class ResidentCode:
    site: str
    pseudonym: str

    def text(self) -> str:
        return f"{PREFIX}:{self.site}:{self.pseudonym}"


def parse_resident_code(text: str) -> ResidentCode:
    """The code a scanner typed (surrounding whitespace dropped); ContractError if it is not one."""
    match = _PATTERN.match(text.strip())
    if match is None:
        raise ContractError(f"not a Doorstep resident code (expected {PREFIX}:<site>:<64 hex>)")
    return ResidentCode(match["site"], match["pseudonym"])


def is_resident_code(text: str) -> bool:
    return text.strip().startswith(PREFIX + ":")
