"""HTTP API (aiohttp): mentions in, case state out, health. Every request is untrusted."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field, TypeAdapter, ValidationError

from bot.cases.service import CaseService
from bot.clock import Clock
from bot.intake.bulk import BulkIntake
from bot.intake.intake import MentionIntake
from bot.intake.mapping import MappingError, RecordMapper
from bot.model import Identity
from bot.settings.config import Config
from bot.settings.connections import ApiSource
from bot.settings.errors import error_path
from handlers.ingest.schema import MentionIn
from handlers.metrics import Metrics
from store.db import Database

MAX_BATCH = 1_000
MAX_BODY = 32 * 1024 * 1024  # 1,000 long mentions fit; anything bigger is refused by aiohttp

_ONE = TypeAdapter(MentionIn)
_BATCH: TypeAdapter[list[MentionIn]] = TypeAdapter(
    Annotated[list[MentionIn], Field(min_length=1, max_length=MAX_BATCH)]
)


def _problem(status: int, title: str, **extra: Any) -> web.Response:
    return web.json_response({"error": title, **extra}, status=status)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Api:
    def __init__(
        self,
        config: Config,
        database: Database,
        cases: CaseService,
        intake: MentionIntake,
        clock: Clock,
        transports: list[str],
        metrics: Metrics | None = None,
        bulk: BulkIntake | None = None,
        health: Callable[[], str | None] | None = None,
    ) -> None:
        self._health = health  # None: healthy; else why not (the outbox worker's state)
        self._metrics = metrics or Metrics()
        self._bulk = bulk  # batches: one transaction for the mentions that open no case
        self._sources = [s for s in config.api.sources if s.enabled]
        # Sources that send their own JSON: their records are mapped onto ours first.
        self._mappers = {
            s.name: RecordMapper(config.mappings[s.mapping], config.tz)
            for s in self._sources
            if s.mapping is not None
        }
        self._database = database
        self._cases = cases
        self._intake = intake
        self._clock = clock
        self._transports = sorted(transports)

    def app(self) -> web.Application:
        api = web.Application(client_max_size=MAX_BODY)
        api.router.add_get("/healthz", self.healthz)
        api.router.add_post("/api/v1/mentions", self.post_mentions)
        api.router.add_get("/api/v1/cases/{case_id}", self.get_case)
        api.router.add_get("/api/v1/openapi.json", self.openapi)
        api.router.add_get("/metrics", self.metrics)
        return api

    async def metrics(self, request: web.Request) -> web.Response:
        async with self._database.uow() as uow:
            depth = await uow.outbox.depth()
        body = self._metrics.render(depth)
        return web.Response(body=body, content_type="text/plain", charset="utf-8")

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(OPENAPI)

    def _source(self, request: web.Request, scope: str) -> ApiSource | web.Response:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return _problem(401, "missing bearer token")
        found = None
        for source in self._sources:  # compare with every token: timing says nothing
            if hmac.compare_digest(source.token.encode(), token.strip().encode()):
                found = source
        if found is None:
            return _problem(401, "unknown token")
        if scope not in found.scopes:
            return _problem(403, f"token of source {found.name!r} lacks scope {scope!r}")
        return found

    async def healthz(self, request: web.Request) -> web.Response:
        """200 while the bot works; 503 with the reason when its database or its outbox
        worker fails, so that a supervisor restarts it or a person looks."""
        reason = self._health() if self._health is not None else None
        depth: int | None = None
        try:
            async with self._database.uow() as uow:
                depth = await uow.outbox.depth()
        except Exception as error:  # the probe must answer even when the database cannot
            reason = reason or f"database: {type(error).__name__}: {error}"[:500]
        body = {"status": "ok", "transports": self._transports, "outbox_depth": depth}
        if reason is None:
            return web.json_response(body)
        return web.json_response({**body, "status": "unhealthy", "reason": reason}, status=503)

    async def post_mentions(self, request: web.Request) -> web.Response:
        source = self._source(request, "ingest")
        if isinstance(source, web.Response):
            return source
        try:
            body = await request.json(loads=json.loads)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _problem(400, "body is not valid JSON")
        records = body if isinstance(body, list) else [body]
        linked: list[tuple[Identity, ...]] = [() for _ in records]
        mapper = self._mappers.get(source.name)
        if mapper is not None:
            mapped, problems = [], []
            for i, record in enumerate(records[: MAX_BATCH + 1]):
                try:
                    item = mapper(record if isinstance(record, dict) else {})
                except MappingError as error:
                    problems += [{"path": f"[{i}].{f}", "message": m} for f, m in error.problems]
                    continue
                linked[i] = tuple(
                    Identity(x["channel"], x["id"], "") for x in item.pop("identities", [])
                )
                mapped.append(item)
            if problems:
                return _problem(422, "validation failed", problems=problems[:100])
            body = mapped if isinstance(body, list) else mapped[0]
        try:
            if isinstance(body, list):
                batch = _BATCH.validate_python(body)
            else:
                batch = [_ONE.validate_python(body)]
        except ValidationError as error:
            problems = [
                {"path": error_path(e["loc"]) or "body", "message": e["msg"]}
                for e in error.errors()
            ]
            return _problem(422, "validation failed", problems=problems[:100])
        now = self._clock.now()
        mentions = [
            replace(item.to_domain(source.name, now), linked=extra)
            for item, extra in zip(batch, linked, strict=False)
        ]
        if self._bulk is not None and len(mentions) > 1:
            many = await self._bulk.receive_many(mentions)
            results = many.results
        else:
            results = [await self._intake.receive(m) for m in mentions]
        duplicates = sum(1 for r in results if r.duplicate)
        return web.json_response(
            {
                "accepted": len(results) - duplicates,
                "duplicates": duplicates,
                "cases": [r.case.id if r.case else None for r in results],
            },
            status=202,
        )

    async def get_case(self, request: web.Request) -> web.Response:
        source = self._source(request, "read")
        if isinstance(source, web.Response):
            return source
        try:
            case_id = int(request.match_info["case_id"])
        except ValueError:
            return _problem(404, "no such case")
        case = await self._cases.get(case_id)
        if case is None:
            return _problem(404, "no such case")
        return web.json_response(
            {
                "id": case.id,
                "department": case.department,
                "state": case.state.value,
                "priority": case.priority.value,
                "assignee": case.assignee,
                "escalation_level": case.escalation_level,
                "created_at": case.created_at.isoformat(),
                "first_touch_due_at": _iso(case.first_touch_due_at),
                "answer_due_at": _iso(case.answer_due_at),
                "published_url": case.published_url,
                "outcome": case.outcome.value if case.outcome else None,
                "mention_count": case.mention_count,
                "codes": list(case.codes),
            }
        )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _openapi() -> dict[str, Any]:
    """The API as it behaves: schemas come from the same pydantic models that validate."""
    mention = MentionIn.model_json_schema(ref_template="#/components/schemas/{model}")
    components = {
        "MentionIn": {k: v for k, v in mention.items() if k != "$defs"},
        **mention.get("$defs", {}),
    }
    problem = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string"},
            "problems": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    }
    components["Problem"] = problem
    components["Accepted"] = {
        "type": "object",
        "required": ["accepted", "duplicates", "cases"],
        "properties": {
            "accepted": {"type": "integer"},
            "duplicates": {"type": "integer"},
            "cases": {
                "type": "array",
                "items": {"type": ["integer", "null"]},
                "description": "The case each mention opened or joined, in order",
            },
        },
    }
    ref = {"$ref": "#/components/schemas/Problem"}
    errors = {
        "400": {
            "description": "Body is not JSON",
            "content": {"application/json": {"schema": ref}},
        },
        "401": {
            "description": "Missing or unknown token",
            "content": {"application/json": {"schema": ref}},
        },
        "403": {
            "description": "Token lacks the scope",
            "content": {"application/json": {"schema": ref}},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Otklik API", "version": "1"},
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/mentions": {
                "post": {
                    "summary": "Send one mention or up to 1,000 (scope: ingest)",
                    "description": "Idempotent on (source, external_id): a repeat is counted "
                    "as a duplicate and changes nothing.",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/MentionIn"},
                                        {
                                            "type": "array",
                                            "minItems": 1,
                                            "maxItems": MAX_BATCH,
                                            "items": {"$ref": "#/components/schemas/MentionIn"},
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "Stored",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Accepted"}
                                }
                            },
                        },
                        "422": {
                            "description": "Invalid fields, with their paths",
                            "content": {"application/json": {"schema": ref}},
                        },
                        **errors,
                    },
                }
            },
            "/api/v1/cases/{case_id}": {
                "get": {
                    "summary": "A case's state (scope: read)",
                    "parameters": [
                        {
                            "name": "case_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer"},
                        }
                    ],
                    "responses": {
                        "200": {"description": "The case"},
                        "404": {"description": "No such case"},
                        "401": errors["401"],
                        "403": errors["403"],
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness",
                    "security": [],
                    "responses": {
                        "200": {"description": "OK"},
                        "503": {"description": "Database or outbox worker failing: `reason`"},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "security": [],
                    "responses": {"200": {"description": "Text exposition"}},
                }
            },
        },
    }


OPENAPI = _openapi()
