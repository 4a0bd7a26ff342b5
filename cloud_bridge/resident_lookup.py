"""Finding a resident from what a doctor types or scans, without the cloud learning who they are
(issue 21).

A card number is turned into the pseudonym the kiosk made of it (contract/pseudonym.py, with the
site's key from `resident_keys`) and then forgotten: it is not stored, logged or audited, and the
API takes it only in a POST body (a query string would be in every access log). A resident's QR
code (contract/resident_code.py) already holds the site and the pseudonym. Either way the answer
is only a (site, pseudonym) the caller may read; a code or card of another site is "not found",
as an unknown one is, so a doctor cannot learn that a resident exists elsewhere.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from pydantic import SecretStr

from contract.errors import ContractError
from contract.pseudonym import IdentifierError, Pseudonyms, normalise_card
from contract.resident_code import is_resident_code, parse_resident_code


@dataclass(frozen=True, slots=True)
class ResidentKey:
    site: str
    pseudonym: str


class NotAResident(ValueError):
    """What was typed is neither a card number nor a resident code (the reason says which rule it
    broke, never the text itself)."""


def candidates(text: str, sites: Collection[str] | None, keys: Mapping[str, SecretStr]) -> list[ResidentKey]:
    """The (site, pseudonym) pairs `text` may stand for within `sites` (None: every site): a
    resident code names its one site (nothing when that is not among `sites`); a card number
    gives one pseudonym per site whose key the bridge holds. Raises NotAResident for text that
    can be neither."""
    if is_resident_code(text):
        try:
            code = parse_resident_code(text)
        except ContractError as error:
            raise NotAResident(str(error)) from None
        return [ResidentKey(code.site, code.pseudonym)] if sites is None or code.site in sites else []
    try:
        card = normalise_card(text)
    except IdentifierError as error:
        raise NotAResident(str(error)) from None
    return [ResidentKey(site, Pseudonyms(keys[site].get_secret_value().encode()).of("card", card))
            for site in sorted(keys) if sites is None or site in sites]
