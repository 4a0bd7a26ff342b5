"""Schemathesis against any of Doorstep's FastAPI apps, bounded for CI: every operation of the
app's own OpenAPI document, with data that fits the schema (positive) and data that does not
(negative), called in process through the ASGI interface with a token. A 5xx fails; so does
an error that is not the API's JSON error ({"error": ..., "reason": ...}).

Reusable: the bridge's API here (tests/bridge/test_api_fuzz.py); the kiosk's local API takes
the same helper with its own app and credential header.

Bounded and repeatable: a fixed number of examples per operation and mode, Hypothesis
derandomised (the same examples every run, so a CI failure reproduces), no example database,
no deadline (a shared CI machine is slow at random moments; the bound is the count).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import schemathesis
# Loaded here, at collection, not lazily by from_asgi in the fuzzing thread: CPython 3.11 can
# fail a module compiled in one thread while another compiles ("AST constructor recursion depth
# mismatch"), as the kiosk's fuzz test did beside the agent's own imports.
import schemathesis.specs.openapi.schemas  # noqa: F401
from fhir.resources.R4B.operationoutcome import OperationOutcome
from pydantic import ValidationError
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

TokenSource = str | Callable[[], str]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class FuzzReport:
    examples: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    operations: Counter[str] = field(default_factory=Counter)
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        codes = ", ".join(f"{code}: {count}" for code, count in sorted(self.statuses.items()))
        return f"{self.examples} requests over {len(self.operations)} operations ({codes})"


def fuzz_api(
    app: Any,
    token: TokenSource,
    *,
    examples_per_operation: int = 40,
    modes: Iterable[GenerationMode] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
    credentials: Callable[[str], dict[str, str]] = bearer,
    skip: Callable[[str, str], bool] = lambda _method, _path: False,
    schema_path: str = "/openapi.json",
    headers: dict[str, str] | None = None,
) -> FuzzReport:
    """Fuzz every operation of `app` (its /openapi.json) as the holder of `token` (or a fresh
    token from the callable for each request: for an operation such as logout that spends it).
    `headers` go with every request, the schema's too: what a client of an app that checks
    them sends (the kiosk's page: its Host, Origin, Sec-Fetch-Site and page token).
    Returns what was sent and answered; raises AssertionError naming each failing request."""
    always = headers or {}
    # The document is fetched with the same credentials: the bridge's wants a token.
    schema = schemathesis.openapi.from_asgi(
        schema_path, app, headers={**always, **credentials(token() if callable(token) else token)})
    report = FuzzReport()
    for result in schema.get_all_operations():
        operation = result.ok()
        if skip(operation.method.upper(), operation.path):
            continue
        for mode in modes:
            _fuzz_operation(operation, mode, token, lambda t: {**always, **credentials(t)}, examples_per_operation,
                            report)
    assert not report.failures, f"{len(report.failures)} failing requests:\n" + "\n\n".join(report.failures[:10])
    return report


def _fuzz_operation(operation: Any, mode: GenerationMode, token: TokenSource, credentials: Callable[[str], dict[str, str]],
                    examples: int, report: FuzzReport) -> None:
    name = f"{operation.method.upper()} {operation.path}"

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(headers=credentials(token() if callable(token) else token))
        report.examples += 1
        report.statuses[response.status_code] += 1
        report.operations[name] += 1
        report.answers[(name, response.status_code)] += 1
        problem = _problem(response, operation.path)
        if problem is not None:
            report.failures.append(f"{name} ({mode.value}): {problem}\n  {case.as_curl_command()}")

    try:
        run()
    except Unsatisfiable:
        # Nothing in the request to make invalid (GET /healthz has no parameters): nothing to send.
        if mode is not GenerationMode.NEGATIVE:
            raise


def _problem(response: Any, path: str) -> str | None:
    status = response.status_code
    if status >= 500:
        return f"{status}: {response.text[:300]}"
    if status >= 400:
        try:
            body = json.loads(response.content)
        except ValueError:
            return f"{status} with a body that is not JSON: {response.content[:200]!r}"
        if path.startswith("/fhir/"):
            return _operation_outcome_problem(body)
        if not (isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("reason"), str)):
            return f"{status} without the API's error shape: {str(body)[:200]}"
    return None


def _operation_outcome_problem(body: dict[str, Any]) -> str | None:
    """The bridge's FHIR routes (/fhir/...) answer errors as FHIR does: a valid OperationOutcome
    whose issue says what was wrong."""
    try:
        outcome = OperationOutcome.model_validate(body)
    except ValidationError as error:
        return f"an invalid OperationOutcome: {error}"
    if not outcome.issue or not outcome.issue[0].diagnostics:
        return f"an OperationOutcome that says nothing: {str(body)[:200]}"
    return None
