"""Residents' identifiers become keyed pseudonyms here, and only here: a card number or a
phone number never leaves the kiosk (issue 8). What travels is

    hex(HMAC-SHA256(resident_secret, kind + ":" + identifier))

with the per-site secret from the agent's settings. The bridge derives the same pseudonym from
a card number a doctor types (issue 21, cloud_bridge/resident_lookup.py) with the same site's
secret, so the rule and its normalisation live in the contract, which both sides import: a
card the kiosk and the bridge spelled differently would be two residents.

The kind ("card", "phone4", "qr") keeps the name spaces apart: the phone digits 1234 and a card
numbered 1234 are different people. Without the secret, a pseudonym cannot be turned back into a number, not even the 10,000 possible last
four digits of a phone.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Final, Literal

from contract.errors import ContractError
from contract.resident_code import is_resident_code, parse_resident_code

IdentifierKind = Literal["card", "phone4", "qr"]

# Resident cards in use at Chinese community stations: the 18-character resident identity card
# (GB 11643: 17 digits and a check digit 0-9 or X), social security and medical insurance cards
# (9-10 letters and digits), health cards (居民健康卡, up to 20). Spaces and dashes a scanner or a
# person puts in are dropped; letters are upper-cased.
CARD_PATTERN: Final = re.compile(r"^[0-9A-Z]{6,20}$")
PHONE_LAST4_PATTERN: Final = re.compile(r"^[0-9]{4}$")
# What a worker's QR code holds is the platform's business (a rider id, a URL): any printable
# text, bounded so that a runaway scanner cannot flood the screen.
QR_MAX_CHARS: Final = 200


class IdentifierError(ValueError):
    """An identifier the screen cannot use; `reason` is the code the screen turns into words."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def normalise_card(raw: str) -> str:
    card = re.sub(r"[\s-]", "", raw).upper()
    if not CARD_PATTERN.match(card):
        raise IdentifierError("bad_card_number", "a card number is 6 to 20 letters and digits")
    return card


def normalise_phone_last4(raw: str) -> str:
    digits = raw.strip()
    if not PHONE_LAST4_PATTERN.match(digits):
        raise IdentifierError("bad_phone_digits", "the last four digits of a phone number, 0-9")
    return digits


def normalise_qr(raw: str) -> str:
    text = raw.strip()
    if not text or len(text) > QR_MAX_CHARS or not text.isprintable():
        raise IdentifierError("bad_qr_code", f"a QR code's text is 1 to {QR_MAX_CHARS} printable characters")
    return text


@dataclass(frozen=True, slots=True, repr=False)
class Pseudonyms:
    """Turns identifiers into pseudonyms with one site's secret. repr=False: never log the key."""

    secret: bytes
    # The site the secret belongs to: a resident code of this site (contract/resident_code.py,
    # the QR the kiosk shows and prints for the doctor) scanned back in is its resident again.
    site: str | None = None

    def of(self, kind: IdentifierKind, normalised: str) -> str:
        return hmac.new(self.secret, f"{kind}:{normalised}".encode(), hashlib.sha256).hexdigest()

    def of_card(self, raw: str) -> str:
        """Raises IdentifierError for a card number that cannot be one."""
        return self.of("card", normalise_card(raw))

    def of_phone_last4(self, raw: str) -> str:
        return self.of("phone4", normalise_phone_last4(raw))

    def of_qr(self, raw: str) -> str:
        text = normalise_qr(raw)
        if is_resident_code(text):
            try:
                code = parse_resident_code(text)
            except ContractError:
                raise IdentifierError("bad_qr_code", "a Doorstep resident code that is not whole") from None
            if code.site != self.site:
                # Keys are per site: another site's pseudonym means nobody here.
                raise IdentifierError("other_site_code", "a resident code from another station")
            return code.pseudonym
        return self.of("qr", text)
