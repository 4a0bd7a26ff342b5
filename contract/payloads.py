"""What a device measured and what happened at a kiosk: the identity of a device, one payload
model per reading kind (READING_PAYLOADS) and one per event type (EVENT_PAYLOADS)."""

from __future__ import annotations

import uuid
from typing import Annotated, Final, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from contract.storable import INT32_MAX, INT64_MAX, U16_MAX, U32_MAX, StrictModel
from contract.topics import EventType, ReadingKind


# HMAC-SHA256 of a resident's card or phone number with the per-site secret, hex encoded.
Pseudonym = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class DeviceIdentity(StrictModel):
    model: str = Field(min_length=1, max_length=64)
    address: str = Field(min_length=1, max_length=64, description="BLE MAC or Modbus unit")
    firmware: str | None = Field(default=None, max_length=64)


# --- Reading payloads, one model per ReadingKind -------------------------------------------


class ReadingPayload(StrictModel):
    """What every reading payload carries besides its values."""

    # A field sent as an IEEE-11073 special value is null and named here ("nan", "nres", ...).
    special_values: dict[str, str] = Field(default_factory=dict)
    # Why the kiosk judged the reading implausible (drivers/plausibility.py); [] = plausible.
    # A suspect reading is still delivered and stored, marked, never silently taken as good.
    suspect: list[str] = Field(default_factory=list)
    subject: Pseudonym | None = Field(default=None, description="resident pseudonym; null = anonymous")

    def _require(self, *names: str) -> None:
        for name in names:
            if getattr(self, name) is None and name not in self.special_values:
                raise ValueError(f"{name} is null but not named in special_values")


class BloodPressurePayload(ReadingPayload):
    """Bluetooth SIG Blood Pressure Measurement (0x2A35), decoded; absent fields are null."""

    unit: Literal["mmHg", "kPa"]
    systolic: float | None
    diastolic: float | None
    mean_arterial_pressure: float | None
    pulse_rate: float | None = None
    user_id: int | None = Field(default=None, ge=0, le=255)
    status: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _pressures_present(self) -> BloodPressurePayload:
        self._require("systolic", "diastolic")
        return self


class GlucosePayload(ReadingPayload):
    """Glucose Measurement (0x2A18), in mmol/L as Chinese clinics read it, or mg/dL."""

    glucose_concentration: float | None
    unit: Literal["mg/dL", "mmol/L"]
    sequence_number: int | None = Field(default=None, ge=0, le=0xFFFF, description="the meter's record number")
    sample_location: str | None = None

    @model_validator(mode="after")
    def _value_present(self) -> GlucosePayload:
        self._require("glucose_concentration")
        return self


class TemperaturePayload(ReadingPayload):
    temperature: float | None
    unit: Literal["Cel", "degF"]
    temperature_type: str | None = None

    @model_validator(mode="after")
    def _value_present(self) -> TemperaturePayload:
        self._require("temperature")
        return self


class WeightPayload(ReadingPayload):
    weight: float | None
    unit: Literal["kg", "lb"]
    bmi: float | None = None

    @model_validator(mode="after")
    def _value_present(self) -> WeightPayload:
        self._require("weight")
        return self


class Spo2Payload(ReadingPayload):
    spo2: float | None
    pulse_rate: float | None

    @model_validator(mode="after")
    def _value_present(self) -> Spo2Payload:
        self._require("spo2")
        return self


READING_PAYLOADS: Final[dict[ReadingKind, type[BaseModel]]] = {
    ReadingKind.BLOOD_PRESSURE: BloodPressurePayload,
    ReadingKind.GLUCOSE: GlucosePayload,
    ReadingKind.TEMPERATURE: TemperaturePayload,
    ReadingKind.WEIGHT: WeightPayload,
    ReadingKind.SPO2: Spo2Payload,
}


ModbusUnit = Annotated[int, Field(ge=1, le=247)]  # Modbus over Serial Line v1.02, 2.2


class LaundryMachineEvent(StrictModel):
    """Sent when a machine's state, error code or link state changes (not on every poll)."""

    unit: ModbusUnit
    state: Literal["idle", "ready", "running", "paused", "done", "fault", "service", "unknown"] = Field(
        description="'unknown' until the machine has answered once"
    )
    link: Literal["online", "degraded", "offline"]
    # Each from a register of the machine's map: 16 or 32 bits.
    program: int | None = Field(default=None, ge=0, le=U16_MAX)
    remaining_seconds: int | None = Field(default=None, ge=0, le=U32_MAX)
    error_code: int | None = Field(default=None, ge=1, le=U16_MAX)
    error_text: dict[Literal["zh", "en"], str] | None = Field(default=None, description="the map's text for the code")
    link_error: str | None = Field(default=None, max_length=200, description="why the link is not online")
    cycle_count: int | None = Field(default=None, ge=0, le=U32_MAX)


class LaundryVendEvent(StrictModel):
    """One step of a start transaction. Points are charged in exactly one event per transaction:
    outcome 'started', on the machine's own confirmation; and given back in at most one: outcome
    'faulted' with points_refunded, when the paid wash faulted before it had really run."""

    transaction_id: uuid.UUID
    unit: ModbusUnit
    program: int = Field(ge=0, le=0xFFFF)
    outcome: Literal["started", "refused", "not_started", "cycle_done", "faulted", "collected"]
    points_charged: int = Field(default=0, ge=0, le=INT32_MAX)
    free_reason: Literal["over_80"] | None = None
    reason: str | None = Field(default=None, max_length=200, description="why it was refused or did not start")
    subject: Pseudonym | None = Field(default=None, description="the resident's pseudonym")
    # Optional, added within schema version 1 (docs/protocol.md, laundry_vend): sent only when
    # points are given back, so a bridge from before it still takes every other step.
    points_refunded: int = Field(
        default=0, ge=0, le=INT32_MAX, description="outcome 'faulted': points given back, the wash had not really run"
    )


RelayMethod = Literal["phone_last4", "qr"]


class RelayCheckinEvent(StrictModel):
    """A courier, rider or sanitation worker checked in at a love relay station. Who is a
    pseudonym of their phone's last four digits or their QR code, never the digits."""

    visit_id: uuid.UUID
    subject: Pseudonym
    method: RelayMethod
    inside: int = Field(ge=0, le=INT64_MAX, description="people inside after this check-in")


class RelayCheckoutEvent(StrictModel):
    """A visit ended: checked out by the worker, or `expired` (never checked out within the
    station's maximum stay; it no longer counts as inside)."""

    visit_id: uuid.UUID = Field(description="the visit_id of its relay_checkin")
    subject: Pseudonym
    method: RelayMethod
    reason: Literal["checked_out", "expired"]
    stay_s: float = Field(ge=0, description="how long the visit lasted, by the kiosk's clock")
    inside: int = Field(ge=0, le=INT64_MAX, description="people inside after this check-out")


class StaffCalledEvent(StrictModel):
    """Someone at the kiosk pressed "call staff" (呼叫工作人员). Nothing about who: only which
    screen they were on, so staff know what they are walking to (a cuff, the laundry room)."""

    call_id: uuid.UUID
    screen: str = Field(pattern=r"^[a-z][a-z0-9-]{0,31}$", description="the kiosk screen shown, e.g. bp-cuff")


EVENT_PAYLOADS: Final[dict[EventType, type[BaseModel]]] = {
    EventType.LAUNDRY_MACHINE: LaundryMachineEvent,
    EventType.LAUNDRY_VEND: LaundryVendEvent,
    EventType.RELAY_CHECKIN: RelayCheckinEvent,
    EventType.RELAY_CHECKOUT: RelayCheckoutEvent,
    EventType.STAFF_CALLED: StaffCalledEvent,
}
