"""The resident's QR code for the doctor holds the site and the pseudonym, nothing else."""

from __future__ import annotations

import pytest

from contract.errors import ContractError
from contract.resident_code import ResidentCode, is_resident_code, parse_resident_code

PSEUDONYM = "ab" * 32


def test_a_code_round_trips() -> None:
    code = ResidentCode("xuhui-01", PSEUDONYM)
    assert code.text() == f"DOORSTEP-R1:xuhui-01:{PSEUDONYM}"
    assert parse_resident_code(f"  {code.text()}\n") == code
    assert is_resident_code(code.text())


@pytest.mark.parametrize("text", [
    "", "110101199003071234", f"DOORSTEP-R1:xuhui-01:{PSEUDONYM[:-1]}", f"DOORSTEP-R1:Xuhui:{PSEUDONYM}",
    f"DOORSTEP-R2:xuhui-01:{PSEUDONYM}", f"DOORSTEP-R1:xuhui-01:{PSEUDONYM.upper()}", f"DOORSTEP-R1::{PSEUDONYM}",
])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ContractError, match="not a Doorstep resident code"):
        parse_resident_code(text)
