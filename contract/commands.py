"""Remote commands: their names, the arguments each takes (COMMAND_ARGS: the bridge refuses a
command whose arguments do not fit, and the kiosk checks them again with the same models), the
command a kiosk receives, and the result it sends back."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, Field, ValidationError

from contract.codec import MAX_MESSAGE_BYTES, describe
from contract.errors import ContractError
from contract.payloads import ModbusUnit, Pseudonym
from contract.software import UpdateSoftwareArgs
from contract.storable import StorableJson, StrictModel
from contract.topics import SCHEMA_VERSION, RequestId


class CommandName(StrEnum):
    PING = "ping"
    STATUS = "status"  # the kiosk's telemetry, now
    RELOAD_CONFIG = "reload_config"  # re-read the configuration file; a bad one is refused, the old one kept
    RECONNECT_DEVICE = "reconnect_device"  # args: address
    LAUNDRY_START = "laundry_start"  # args: unit, program, subject
    LAUNDRY_STOP = "laundry_stop"  # args: unit
    LAUNDRY_CLEAR_FAULT = "laundry_clear_fault"  # args: unit
    FLUSH_OUTBOX = "flush_outbox"  # send everything unconfirmed again, now
    EXPORT_DIAGNOSTICS = "export_diagnostics"
    # Its logs, doctor's checks and its configuration without secrets, as one archive on
    # …/support_bundles/{request_id} (contract/support_bundle.py); the result says how it went.
    UPLOAD_SUPPORT_BUNDLE = "upload_support_bundle"
    # Download, verify and install a release beside the running one, switch when no resident is
    # in the middle of something, and roll back unless it proves healthy (contract/software.py).
    UPDATE_SOFTWARE = "update_software"


class NoArgs(StrictModel):
    pass


class DeviceArgs(StrictModel):
    address: str = Field(min_length=1, max_length=64, description="the device's address at the kiosk")


class LaundryStartArgs(StrictModel):
    unit: ModbusUnit
    program: int = Field(ge=0, le=0xFFFF)
    subject: Pseudonym = Field(description="the resident charged (or started free), as a pseudonym")


class LaundryUnitArgs(StrictModel):
    unit: ModbusUnit


# The arguments each command takes: the bridge refuses a command whose arguments do not fit
# before it goes anywhere (the kiosk checks them again).
COMMAND_ARGS: Final[dict[CommandName, type[BaseModel]]] = {
    CommandName.PING: NoArgs,
    CommandName.STATUS: NoArgs,
    CommandName.RELOAD_CONFIG: NoArgs,
    CommandName.RECONNECT_DEVICE: DeviceArgs,
    CommandName.LAUNDRY_START: LaundryStartArgs,
    CommandName.LAUNDRY_STOP: LaundryUnitArgs,
    CommandName.LAUNDRY_CLEAR_FAULT: LaundryUnitArgs,
    CommandName.FLUSH_OUTBOX: NoArgs,
    CommandName.EXPORT_DIAGNOSTICS: NoArgs,
    CommandName.UPLOAD_SUPPORT_BUNDLE: NoArgs,
    CommandName.UPDATE_SOFTWARE: UpdateSoftwareArgs,
}


def validate_args(command: CommandName, args: dict[str, Any], *, strict: bool = False) -> BaseModel:
    """A command's arguments as its model (COMMAND_ARGS); ContractError names each one that does
    not fit ("args.unit: Input should be …"). The bridge validates what a person sent, leniently
    (a "3" typed in a form is 3), and sends the model's dump; the kiosk validates what arrives,
    strictly (only the JSON types the bridge sends: an integer is an integer, never a string or
    true)."""
    try:
        return COMMAND_ARGS[command].model_validate(args, strict=strict)
    except ValidationError as error:
        raise ContractError(describe(error, "args")) from None


class KioskCommand(StrictModel):
    """Downstream on …/commands/{request_id}, QoS 1. The request id makes it idempotent: a kiosk
    acts on a request id once, however often it is delivered."""

    schema_version: Literal[1] = SCHEMA_VERSION
    command: CommandName
    args: dict[str, Any] = Field(default_factory=dict, description="per command; checked by the kiosk")
    issued_by: str = Field(min_length=1, max_length=64, description="who asked: for the kiosk's audit log")
    issued_at: AwareDatetime
    expires_at: AwareDatetime | None = Field(
        default=None, description="not acted on after this: a machine must not start a day late"
    )


class CommandOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # tried, and it did not work (or the kiosk restarted mid-way)
    REFUSED = "refused"  # not tried: malformed, expired, unknown device, a bad configuration, ...
    TIMED_OUT = "timed_out"  # no answer within the kiosk's command timeout; it may still finish


class CommandResultPayload(StrictModel):
    """Upstream on …/command_results/{request_id}, in an Envelope, through the outbox."""

    request_id: RequestId
    command: str = Field(max_length=64, description="as received (it may have been unknown)")
    outcome: CommandOutcome
    detail: str | None = Field(default=None, max_length=2000)
    data: StorableJson = Field(default_factory=dict)


def decode_command(body: bytes) -> KioskCommand:
    if len(body) > MAX_MESSAGE_BYTES:
        raise ContractError(f"command of {len(body)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        return KioskCommand.model_validate_json(body)
    except ValidationError as error:
        raise ContractError(describe(error)) from None
