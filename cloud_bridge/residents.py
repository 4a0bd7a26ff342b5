"""Residents as the family doctor sees them (issue 21): a site's residents by pseudonym, those
whose home averages are dangerous or rising first, and one resident's readings with what each
means. Everything is read from the readings table; the bridge keeps no list of residents, and
knows them by pseudonym only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from pydantic import BaseModel, ValidationError
from sqlmodel import Session, col, func, select

from cloud_bridge.averages import HomeAverage, HomeReading, home_average, previous_period, rising
from cloud_bridge.store import BloodPressureMeaning, Reading
from contract.clinical import (
    BloodPressureCategory, BloodPressureGuideline, Threshold, category_of, is_dangerous, to_mmhg,
)
from contract.payloads import BloodPressurePayload
from contract.topics import ReadingKind

# The home page lists residents who measured within this long: the doctor's current patients.
RECENT = timedelta(days=90)


def blood_pressure_meaning(row: Reading, guideline: BloodPressureGuideline, line: Threshold) -> BloodPressureMeaning | None:
    """What a blood-pressure reading means by the one rule (contract/clinical.py); None for any
    other kind, or one stored by an older contract that no longer reads as one."""
    if row.kind != ReadingKind.BLOOD_PRESSURE:
        return None
    try:
        payload = BloodPressurePayload.model_validate(row.payload)
    except ValidationError:
        return None  # shown without a meaning
    unit, suspect = payload.unit, payload.suspect
    category = category_of(payload.systolic, payload.diastolic, unit, guideline, suspect=suspect)
    return BloodPressureMeaning(
        systolic_mmhg=None if payload.systolic is None else to_mmhg(payload.systolic, unit),
        diastolic_mmhg=None if payload.diastolic is None else to_mmhg(payload.diastolic, unit),
        category=None if category is None else category.value,
        dangerous=is_dangerous(payload.systolic, payload.diastolic, unit, line, suspect=suspect),
    )


@dataclass(frozen=True, slots=True)
class ResidentReading:
    """One stored blood-pressure reading with its meaning, in the site's local time."""

    row: Reading
    at: datetime  # local
    meaning: BloodPressureMeaning
    suspect: list[str]

    def for_averages(self) -> HomeReading:
        return HomeReading(self.at, self.meaning.systolic_mmhg, self.meaning.diastolic_mmhg, bool(self.suspect))


def _aware(value: datetime) -> datetime:
    # SQLite gives back naive UTC times; PostgreSQL aware ones.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def resident_readings(
    session: Session, site: str, pseudonym: str, guideline: BloodPressureGuideline, line: Threshold, zone: tzinfo,
    *, since: datetime | None = None,
) -> list[ResidentReading]:
    """A resident's blood-pressure readings at `site` (since `since`, kiosk time), oldest first."""
    conditions = [col(Reading.site) == site, col(Reading.subject) == pseudonym,
                  col(Reading.kind) == ReadingKind.BLOOD_PRESSURE.value]
    if since is not None:
        conditions.append(col(Reading.kiosk_time) >= since)
    rows = session.exec(select(Reading).where(*conditions).order_by(col(Reading.kiosk_time), col(Reading.seq))).all()
    found = []
    for row in rows:
        meaning = blood_pressure_meaning(row, guideline, line)
        if meaning is None:
            continue
        found.append(ResidentReading(row, _aware(row.kiosk_time).astimezone(zone).replace(tzinfo=None), meaning,
                                     list(row.payload.get("suspect") or [])))
    return found


class ResidentSummary(BaseModel, frozen=True):
    """A resident on the doctor's home page (and the API's answer about one)."""

    site: str
    pseudonym: str
    readings: int  # blood-pressure readings: within RECENT in a site's list, every one for one resident
    last_reading_at: datetime
    average: HomeAverage | None  # the latest period's (cloud_bridge/averages.py)
    before: HomeAverage | None  # the period before it
    rising: bool  # the average's category is above the period before's
    dangerous: bool  # a dangerous reading in the latest period, or its average very high


def summarise(site: str, pseudonym: str, readings: Sequence[ResidentReading], guideline: BloodPressureGuideline,
              count: int) -> ResidentSummary | None:
    if not readings:
        return None
    home = [r.for_averages() for r in readings]
    average = home_average(home, guideline)
    before = None if average is None else home_average(home, guideline, last_day=previous_period(average))
    in_period = [] if average is None else [r for r in readings if average.first_day <= r.at.date() <= average.last_day]
    dangerous = any(r.meaning.dangerous for r in in_period) or (
        average is not None and average.category is BloodPressureCategory.VERY_HIGH)
    return ResidentSummary(
        site=site, pseudonym=pseudonym, readings=count, last_reading_at=_aware(readings[-1].row.kiosk_time),
        average=average, before=before, rising=rising(average, before), dangerous=dangerous,
    )


def site_residents(
    session: Session, site: str | None, guideline: BloodPressureGuideline, line: Threshold, zone: tzinfo, now: datetime,
) -> list[ResidentSummary]:
    """The residents who measured blood pressure within RECENT at `site` (None: every site):
    dangerous first, then rising, then the most recently measured."""
    conditions = [col(Reading.kind) == ReadingKind.BLOOD_PRESSURE.value, col(Reading.subject).is_not(None),
                  col(Reading.kiosk_time) >= now - RECENT]
    if site is not None:
        conditions.append(col(Reading.site) == site)
    who = session.exec(
        select(Reading.site, Reading.subject, func.count(), func.max(Reading.kiosk_time))
        .where(*conditions).group_by(col(Reading.site), col(Reading.subject))
    ).all()
    found = []
    for resident_site, pseudonym, count, latest in who:
        assert pseudonym is not None  # the query asked for readings with a subject
        # Two periods back from the latest reading: this week's average and the one before it.
        since = _aware(latest) - timedelta(days=15)
        summary = summarise(resident_site, pseudonym,
                            resident_readings(session, resident_site, pseudonym, guideline, line, zone, since=since),
                            guideline, int(count))
        if summary is not None:
            found.append(summary)
    found.sort(key=lambda s: s.last_reading_at, reverse=True)
    found.sort(key=lambda s: (not s.dangerous, not s.rising))  # stable: recent first within each
    return found
