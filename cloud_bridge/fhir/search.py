"""Which stored readings a FHIR search or export asks for, and the resources they make.

The search parameters are FHIR R4's (http://hl7.org/fhir/R4/search.html): `date` with the
prefixes eq, ge, gt, le, lt (section 3.1.1.4.1.1) and the value's precision taken as a range
(3.1.1.4.5: 2026-12-01 is that whole day); `code` as a token, system|code or code (3.1.1.4.9),
several separated by commas meaning any of them (3.1.1.5.1).

A resident's home blood-pressure average (CardX average-smbp) is found beside the readings, after
them: its effectivePeriod is a range, so `date` matches it as R4 matches a range (3.1.1.4.1.1):
eq when the search's range contains the period, ge/gt/le/lt when the range above or below the
value overlaps it.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Final

from fhir.resources.R4B.device import Device
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.resource import Resource
from sqlalchemy import ColumnElement
from sqlalchemy import select as core_select
from sqlmodel import Session, col, func, select

from cloud_bridge.averages import home_average, rests_on
from cloud_bridge.fhir.mapping import (
    AVERAGE_BLOOD_PRESSURE, CODES_BY_KIND, Code, MeasuringDevice, average_observation, average_period, device,
    device_id, gateway, gateway_id, has_code, observations, patient, site_of_device_id,
)
from cloud_bridge.fleet import Kiosk
from cloud_bridge.residents import resident_readings
from cloud_bridge.store import Reading
from contract.clinical import BloodPressureGuideline, Threshold
from contract.storable import EARLIEST_TIME, LATEST_TIME
from contract.topics import ReadingKind


class SearchError(ValueError):
    """A search parameter that cannot be read: the caller's to fix (400)."""


_PREFIXES: Final = ("eq", "ge", "gt", "le", "lt")
# FHIR dateTime (R4 datatypes): YYYY, YYYY-MM, YYYY-MM-DD, or with a time and a zone.
_DATE: Final = re.compile(r"^(?P<year>\d{4})(-(?P<month>\d{2})(-(?P<day>\d{2}))?)?$")
# How far into a search a page may start: a search pages by skipping what comes before, so a
# page deep in a large site is refused (narrow it with date) rather than left to read the table.
MAX_OFFSET: Final = 100_000


def _range(text: str) -> tuple[datetime, datetime]:
    """The instants [start, end) a date value stands for at its precision, within the years the
    databases compare safely (contract/storable.py)."""
    start, end = _precise_range(text)
    if not EARLIEST_TIME <= start <= end <= LATEST_TIME:
        raise SearchError(f"date: {text!r} is not between {EARLIEST_TIME.year} and {LATEST_TIME.year}")
    return start, end


def _precise_range(text: str) -> tuple[datetime, datetime]:
    matched = _DATE.match(text)
    try:
        if matched is None:
            instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if instant.tzinfo is None:
                instant = instant.replace(tzinfo=UTC)  # no zone: the bridge's, which is UTC
            instant = instant.astimezone(UTC)
            return instant, instant + timedelta(seconds=1)
        year, month, day = int(matched["year"]), matched["month"], matched["day"]
        if month is None:
            return datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
        if day is None:
            start = datetime(year, int(month), 1, tzinfo=UTC)
            return start, (start + timedelta(days=32)).replace(day=1)
        start = datetime.combine(date(year, int(month), int(day)), datetime.min.time(), tzinfo=UTC)
        return start, start + timedelta(days=1)
    except (ValueError, OverflowError):
        raise SearchError(f"date: {text!r} is not a FHIR date or dateTime (e.g. 2026-12-01 or 2026-12-01T08:00:00Z)") from None


@dataclass(frozen=True, slots=True)
class DateParameter:
    """One `date` parameter: its prefix and the instants [start, end) its value stands for."""

    prefix: str
    start: datetime
    end: datetime

    def admits_period(self, start: datetime, end: datetime) -> bool:
        """Whether a target range [start, end) matches (R4 search 3.1.1.4.1.1: eq, the search's range
        contains it; ge/gt, the range above the value overlaps it; le/lt, the range below does)."""
        return {"eq": self.start <= start and end <= self.end, "ge": end > self.start, "gt": end > self.end,
                "le": start < self.end, "lt": start < self.start}[self.prefix]


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Kiosk time from `since` (inclusive) to `until` (exclusive); None: open. `parameters`: the
    `date` parameters it was narrowed by, for a target that is a range (a home average)."""

    since: datetime | None = None
    until: datetime | None = None
    parameters: tuple[DateParameter, ...] = ()

    def narrowed(self, parameter: str) -> TimeWindow:
        """This window narrowed by one `date` parameter, e.g. "ge2026-12-01"."""
        prefix, value = (parameter[:2], parameter[2:]) if parameter[:2] in _PREFIXES else ("eq", parameter)
        start, end = _range(value)
        lower = {"eq": start, "ge": start, "gt": end}.get(prefix)
        upper = {"eq": end, "le": end, "lt": start}.get(prefix)
        return TimeWindow(
            since=lower if self.since is None or (lower is not None and lower > self.since) else self.since,
            until=upper if self.until is None or (upper is not None and upper < self.until) else self.until,
            parameters=(*self.parameters, DateParameter(prefix, start, end)),
        )

    def admits_period(self, start: datetime, end: datetime) -> bool:
        """Whether a range [start, end) matches every parameter it was narrowed by, or overlaps
        the window given as instants (an export's since)."""
        if self.parameters:
            return all(p.admits_period(start, end) for p in self.parameters)
        return (self.since is None or end > self.since) and (self.until is None or start < self.until)


def window_of(parameters: list[str]) -> TimeWindow:
    window = TimeWindow()
    for parameter in parameters:
        window = window.narrowed(parameter)
    return window


def start_of(text: str) -> datetime:
    """The first instant of a date or dateTime (the export's since)."""
    return _range(text)[0]


@dataclass(frozen=True, slots=True)
class Token:
    system: str | None
    code: str


def tokens_of(parameter: str) -> list[Token]:
    """code=http://loinc.org|8867-4,8310-5: any of them."""
    tokens = []
    for one in parameter.split(","):
        system, bar, code = one.rpartition("|")
        if not code:
            raise SearchError(f"code: {one!r} names no code (system|code or code)")
        tokens.append(Token(system if bar and system else None, code))
    return tokens


def _named(tokens: list[Token], codes: tuple[Code, ...]) -> bool:
    return any(c.code == t.code and (t.system is None or c.system == t.system) for c in codes for t in tokens)


def _kinds(tokens: list[Token]) -> list[ReadingKind]:
    return [kind for kind, codes in CODES_BY_KIND.items() if _named(tokens, codes)]


@dataclass(frozen=True, slots=True)
class ObservationQuery:
    """One search: `site` None for every site (the caller's scope decides), `patient` a
    pseudonym or None, `tokens` empty for every code."""

    site: str | None
    patient: str | None = None
    window: TimeWindow = field(default_factory=TimeWindow)
    tokens: list[Token] = field(default_factory=list)

    def residents(self) -> list[ColumnElement[bool]]:
        """Readings of the residents the query is about: the site and patient, any time and code."""
        # Anonymous readings have no patient.
        conditions: list[ColumnElement[bool]] = [col(Reading.subject).is_not(None)]
        if self.site is not None:
            conditions.append(col(Reading.site) == self.site)
        if self.patient is not None:
            conditions.append(col(Reading.subject) == self.patient)
        return conditions

    def conditions(self) -> list[ColumnElement[bool]]:
        conditions = self.residents()
        if self.window.since is not None:
            conditions.append(col(Reading.kiosk_time) >= self.window.since)
        if self.window.until is not None:
            conditions.append(col(Reading.kiosk_time) < self.window.until)
        if self.tokens:
            conditions.append(col(Reading.kind).in_([k.value for k in _kinds(self.tokens)]))
        return conditions

    def matches(self, observation: Observation) -> bool:
        return not self.tokens or any(has_code(observation, t.system, t.code) for t in self.tokens)


def _readings(session: Session, query: ObservationQuery) -> Generator[Reading, None, None]:
    statement = (select(Reading).where(*query.conditions())
                 .order_by(col(Reading.kiosk_time), col(Reading.seq), col(Reading.message_id))
                 .execution_options(yield_per=500))
    # yield_per streams (a server-side cursor on PostgreSQL): closed here when a page stops early.
    result = session.exec(statement)
    try:
        yield from result
    finally:
        result.close()


@dataclass(frozen=True, slots=True)
class Averaging:
    """What a resident's home average is computed with, as the doctor's page computes it: the
    guideline's categories, the dangerous line (which resident_readings marks), the sites' zone."""

    guideline: BloodPressureGuideline
    line: Threshold
    zone: tzinfo


# An average's period ends with the local day of the resident's latest reading: a resident whose
# readings all stop more than a day before an export's `since` (in any zone) has none after it.
_ZONE_SLACK: Final = timedelta(days=1)


def _averages(session: Session, query: ObservationQuery, averaging: Averaging) -> Iterator[Observation]:
    """The home blood-pressure average of each resident the query is about (the latest period's,
    as the doctor's page and the report show it: cloud_bridge/averages.py), when it matches."""
    if query.tokens and not _named(query.tokens, AVERAGE_BLOOD_PRESSURE):
        return  # a search for other codes: no resident's readings need reading again
    conditions = [*query.residents(), col(Reading.kind) == ReadingKind.BLOOD_PRESSURE.value]
    if query.window.since is not None:
        conditions.append(col(Reading.kiosk_time) >= query.window.since - _ZONE_SLACK)
    residents = session.exec(select(Reading.site, Reading.subject).where(*conditions).distinct()).all()
    for site, pseudonym in sorted((s, p) for s, p in residents if p is not None):
        readings = resident_readings(session, site, pseudonym, averaging.guideline, averaging.line, averaging.zone)
        average = home_average([r.for_averages() for r in readings], averaging.guideline)
        if average is None or not query.window.admits_period(*average_period(average, averaging.zone)):
            continue
        found = average_observation(site, pseudonym, average,
                                    [r.row for r in readings if rests_on(average, r.for_averages())],
                                    averaging.guideline.name, averaging.zone)
        if found is not None:
            yield found


def matching_observations(session: Session, query: ObservationQuery,
                          averaging: Averaging) -> Generator[Observation, None, None]:
    """Every observation the query finds, oldest first, then the residents' home averages (each
    after the readings it is derived from)."""
    for reading in _readings(session, query):
        yield from (o for o in observations(reading) if query.matches(o))
    yield from _averages(session, query, averaging)


def observation_page(session: Session, query: ObservationQuery, averaging: Averaging, offset: int,
                     count: int) -> tuple[list[Observation], bool]:
    """One page of a search and whether there is another. A reading can make two observations
    (a pressure and its pulse) and `code` is matched on the observations, so a page is counted
    in observations, not rows."""
    page: list[Observation] = []
    skipped = 0
    with closing(matching_observations(session, query, averaging)) as found:
        for observation in found:
            if skipped < offset:
                skipped += 1
                continue
            if len(page) == count:
                return page, True
            page.append(observation)
    return page, False


def find_patient(session: Session, pseudonym: str, site: str | None) -> Patient | None:
    """The resident with this pseudonym, if they have a reading at `site` (None: any site)."""
    conditions: list[ColumnElement[bool]] = [col(Reading.subject) == pseudonym]
    if site is not None:
        conditions.append(col(Reading.site) == site)
    found = session.exec(select(Reading.site).where(*conditions).limit(1)).first()
    return None if found is None else patient(found, pseudonym)


def _measuring_devices(session: Session, site: str | None, since: datetime | None) -> list[MeasuringDevice]:
    """Every device that took a reading (with a resident) at `site` since then, with the firmware
    of its latest reading."""
    conditions: list[ColumnElement[bool]] = [col(Reading.device_model).is_not(None), col(Reading.device_address).is_not(None),
                  col(Reading.subject).is_not(None)]
    if site is not None:
        conditions.append(col(Reading.site) == site)
    if since is not None:
        conditions.append(col(Reading.kiosk_time) >= since)
    columns = (col(Reading.site), col(Reading.kiosk), col(Reading.kind), col(Reading.device_model),
               col(Reading.device_address), col(Reading.device_firmware))
    rows = session.execute(core_select(*columns, func.max(Reading.kiosk_time)).where(*conditions).group_by(*columns)).all()
    latest: dict[tuple[str, str, str, str], tuple[datetime, MeasuringDevice]] = {}
    for row_site, kiosk, kind, model, address, firmware, last in sorted(rows, key=lambda r: r[6]):
        assert model is not None and address is not None
        latest[(row_site, kiosk, model, address)] = (
            last, MeasuringDevice(row_site, kiosk, ReadingKind(kind), model, address, firmware))
    return [found for _last, found in latest.values()]


def _kiosks(session: Session, site: str | None, since: datetime | None) -> list[tuple[str, str]]:
    conditions: list[ColumnElement[bool]] = [col(Reading.subject).is_not(None)]
    if site is not None:
        conditions.append(col(Reading.site) == site)
    if since is not None:
        conditions.append(col(Reading.kiosk_time) >= since)
    rows = session.exec(select(Reading.site, Reading.kiosk).where(*conditions).distinct()).all()
    return sorted((s, k) for s, k in rows)


def find_device(session: Session, resource_id: str, site: str | None) -> Device | None:
    """The device or kiosk with this id, if it is at `site` (None: any site)."""
    own_site = site_of_device_id(resource_id)
    if own_site is None or (site is not None and own_site != site):
        return None
    for found in _measuring_devices(session, own_site, None):
        if device_id(found.site, found.kiosk, found.model, found.address) == resource_id:
            return device(found)
    for kiosk_site, kiosk in _kiosks(session, own_site, None):
        if gateway_id(kiosk_site, kiosk) == resource_id:
            return gateway(kiosk_site, kiosk)
    return None


def known_sites(session: Session) -> set[str]:
    """Every site a kiosk of has spoken to this bridge."""
    return set(session.exec(select(Kiosk.site).distinct()).all()) | set(session.exec(select(Reading.site).distinct()).all())


def export(session: Session, site: str | None, since: datetime | None, averaging: Averaging) -> Iterator[Resource]:
    """A site's residents, devices and kiosks, then its observations oldest first, then the
    residents' home averages (each one after what it refers to, for importers that resolve
    references as they read)."""
    subjects = session.exec(
        select(Reading.site, Reading.subject)
        .where(*ObservationQuery(site, window=TimeWindow(since=since)).conditions())
        .distinct()
    ).all()
    for subject_site, pseudonym in sorted((s, p) for s, p in subjects if p is not None):
        yield patient(subject_site, pseudonym)
    for kiosk_site, kiosk in _kiosks(session, site, since):
        yield gateway(kiosk_site, kiosk)
    for found in _measuring_devices(session, site, since):
        yield device(found)
    yield from matching_observations(session, ObservationQuery(site, window=TimeWindow(since=since)), averaging)
