"""The one error of the contract: a message or topic that breaks it."""

from __future__ import annotations


class ContractError(ValueError):
    """A message or topic that breaks this contract. `reason` says how, for logs and dead letters."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
