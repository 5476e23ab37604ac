"""Schemathesis against the OpenAPI document the API serves (issue 15, deliver 6).

Valid and invalid requests are generated from the document (seeded, derandomised, a few dozen
per operation) and sent to a running App: no answer may be a 5xx, every answer must match the
document, and no request the document calls invalid may be accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import BaseSchema
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from bot.clock import FrozenClock
from bot.settings.config import Config
from bot.settings.playbook import load_playbook
from handlers.app import App
from handlers.ingest.api import OPENAPI
from tests.conftest import POSTGRES_UP
from tests.doubles.fakes import RecordingTransport
from tests.doubles.support import API_TOKENS, make_config
from tests.handlers.ingest.test_api_hostile import own_postgres_database
from tests.handlers.test_cli import free_port

# Per operation and test: about 20 s in all on 2 cores. More for a deeper search, e.g.
# OTKLIK_SCHEMATHESIS_EXAMPLES=500 (several minutes).
EXAMPLES_PER_OPERATION = int(os.environ.get("OTKLIK_SCHEMATHESIS_EXAMPLES", "40"))
AUTH = {"Authorization": f"Bearer {API_TOKENS['MON_TOKEN']}"}  # scopes: ingest and read
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _schema(document: dict[str, Any], modes: list[str]) -> BaseSchema:
    loaded = schemathesis.openapi.from_dict(document)
    loaded.config.generation.update(
        modes=modes,
        max_examples=EXAMPLES_PER_OPERATION,
        deterministic=True,  # the same requests on every run: a failure can be replayed
        database="none",  # no .hypothesis directory: nothing carried between runs
    )
    return loaded


def _strict_batches(document: dict[str, Any]) -> dict[str, Any]:
    """The document with every batch item a valid mention (the real one lets any item in, to
    be rejected on its own): what it generates must all be accepted."""
    strict = copy.deepcopy(document)
    body = strict["paths"]["/api/v1/mentions"]["post"]["requestBody"]
    batch = body["content"]["application/json"]["schema"]["oneOf"][1]
    batch["items"] = {"$ref": "#/components/schemas/MentionIn"}
    return strict


# Valid and invalid requests: no 5xx, answers as documented, nothing invalid accepted.
hostile = _schema(OPENAPI, ["positive", "negative"])
# Valid requests only: each must be accepted (the document promises nothing it refuses).
valid = _schema(_strict_batches(OPENAPI), ["positive"])
HYPOTHESIS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize=True,
    database=None,
)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The whole App on a loop of its own: schemathesis calls it over HTTP, synchronously."""
    tmp_path: Path = tmp_path_factory.mktemp("schemathesis")
    port = free_port()
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    async def serve() -> None:
        # PostgreSQL when it is there: it refuses what SQLite lets through (NUL, long values).
        async with contextlib.AsyncExitStack() as stack:
            url = f"sqlite+aiosqlite:///{tmp_path / 'otklik.db'}"
            if POSTGRES_UP:
                url = await stack.enter_async_context(own_postgres_database())
            await run_app(make_config(tmp_path, url, port))

    async def run_app(config: Config) -> None:
        clock = FrozenClock(datetime(2026, 11, 20, 13, 30, tzinfo=UTC))
        app = App(
            config, load_playbook(config.playbooks.path), clock, {"telegram": RecordingTransport()}
        )
        await app.start()
        ready.set()
        try:
            await stop.wait()
        finally:
            await app.stop()

    def run() -> None:
        try:
            loop.run_until_complete(serve())
        except BaseException as error:  # reported by the fixture, not lost in the thread
            failure.append(error)
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="otklik-api", daemon=True)
    thread.start()
    assert ready.wait(120), "the App did not start"
    assert not failure, failure
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)


@hostile.parametrize()
@HYPOTHESIS
def test_no_request_breaks_the_api_or_is_accepted_when_invalid(
    case: schemathesis.Case, base_url: str
) -> None:
    checks = [*CONFORMANCE, negative_data_rejection]
    case.call_and_validate(base_url=base_url, headers=AUTH, checks=checks, timeout=30)


@valid.parametrize()
@HYPOTHESIS
def test_every_request_the_document_calls_valid_is_accepted(
    case: schemathesis.Case, base_url: str
) -> None:
    checks = [*CONFORMANCE, positive_data_acceptance]
    case.call_and_validate(base_url=base_url, headers=AUTH, checks=checks, timeout=30)
