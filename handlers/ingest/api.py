"""HTTP API (aiohttp): mentions in, case state out, health. Every request is untrusted.

A sender must be able to retry on 5xx without looping, so nothing a request carries makes
the server fail: the body is read and parsed defensively (_read_json), each item of a batch
is validated and stored on its own merits, and the answer lists every item's result. 5xx
means the server itself is in trouble (the database is down) and a retry will help.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from pydantic import TypeAdapter, ValidationError

from bot.cases.grouping import IntakeResult
from bot.cases.service import CaseService
from bot.clock import Clock
from bot.group_commit import GroupCommit, GroupFailed
from bot.intake.bulk import BulkIntake, single_mentions
from bot.intake.intake import MentionIntake
from bot.intake.mapping import MappingError, RecordMapper
from bot.model import CaseState, Identity, Mention, Outcome, Priority
from bot.ports import ConcurrentUpdate
from bot.settings.config import Config
from bot.settings.connections import ApiSource
from bot.settings.errors import error_path, join_path
from handlers.ingest.auth import FAILURES_PER_WINDOW, Gate, Refusal
from handlers.ingest.schema import MAX_REACH, MentionIn
from handlers.metrics import Metrics
from store.db import Database

log = logging.getLogger("otklik.api")

MAX_BATCH = 1_000
MAX_BODY = 32 * 1024 * 1024  # 1,000 long mentions fit; anything bigger is refused (413)
MAX_DIGITS = 40  # in a JSON integer; a longer one is a probe, not a reach
MAX_PROBLEMS = 100  # per item and in the summary of a refused request
RETRY_AFTER_S = 30  # when the database is down
RETRY_BUSY_S = 1  # when a mention lost every race to other writers (a last resort)

# JSON is UTF-8 (RFC 8259); the ASCII names are its subset.
_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
_ENCODINGS = frozenset({"", "identity", "gzip", "x-gzip", "deflate"})
_CASE_ID = re.compile(r"^[1-9][0-9]{0,18}$")

_ONE = TypeAdapter(MentionIn)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _problem(
    status: int, title: str, headers: dict[str, str] | None = None, **extra: Any
) -> web.Response:
    return web.json_response({"error": title, **extra}, status=status, headers=headers)


class _Refused(Exception):
    """The request as a whole cannot be read: answered with this status and reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _bearer_is(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Constant time: how much of a guess matched must not show in the answer's timing.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def _refuse_constant(name: str) -> Any:
    raise _Refused(400, f"{name} is not a JSON number")


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_DIGITS:
        raise _Refused(400, f"a number in the body has more than {MAX_DIGITS} digits")
    return int(digits)


async def _read_json(request: web.Request) -> Any:
    """The body as JSON, or _Refused with the reason (never an exception of another kind)."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in _ENCODINGS:
        raise _Refused(415, f"Content-Encoding {encoding!r} is not supported (gzip, deflate)")
    charset = request.charset
    if charset is not None and charset.lower() not in _CHARSETS:
        raise _Refused(415, f"charset {charset!r} is not supported: send UTF-8 JSON")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _Refused(413, f"the body is larger than {MAX_BODY} bytes") from None
    except RequestPayloadError:
        raise _Refused(400, f"the body cannot be decoded (Content-Encoding {encoding!r})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _Refused(400, "the body is not UTF-8") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_int=_bounded_int)
    except RecursionError:
        raise _Refused(400, "the body is nested too deeply") from None
    except ValueError as error:  # JSONDecodeError
        raise _Refused(400, f"the body is not valid JSON ({error})") from None


@dataclass(frozen=True, slots=True)
class _Item:
    """One item of a request, once decided: stored (with its result) or rejected."""

    result: IntakeResult | None = None
    problems: tuple[dict[str, str], ...] = ()

    def answer(self, index: int) -> dict[str, Any]:
        if self.result is None:
            return {"index": index, "status": "rejected", "problems": list(self.problems)}
        case = self.result.case.id if self.result.case else None
        status = "duplicate" if self.result.duplicate else "accepted"
        return {"index": index, "status": status, "case": case}


class _Busy(Exception):
    """Concurrent writers kept winning: the request is safe to resend (idempotent keys)."""


class _Unavailable(Exception):
    """The database does not answer: the request may be retried as a whole."""


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
        # Single mentions arriving together: one transaction for them too (group commit).
        self._singles = single_mentions(bulk) if bulk is not None else None
        self._sources = [s for s in config.api.sources if s.enabled]
        self._gate = Gate(self._sources, clock)
        # Sources that send their own JSON: their records are mapped onto ours first.
        self._mappers = {
            s.name: RecordMapper(config.mappings[s.mapping], config.tz)
            for s in self._sources
            if s.mapping is not None
        }
        self._metrics_token = config.metrics.token
        self._metrics_beside_api = config.metrics.on_api_port
        self._database = database
        self._cases = cases
        self._intake = intake
        self._clock = clock
        self._transports = sorted(transports)

    @property
    def singles(self) -> GroupCommit[Mention, IntakeResult] | None:
        """Where one-mention requests are stored together (None: each on its own)."""
        return self._singles

    def app(self) -> web.Application:
        api = web.Application(client_max_size=MAX_BODY)
        api.router.add_get("/healthz", self.healthz)
        api.router.add_post("/api/v1/mentions", self.post_mentions)
        api.router.add_get("/api/v1/cases/{case_id}", self.get_case)
        api.router.add_get("/api/v1/events", self.get_events)
        api.router.add_get("/api/v1/openapi.json", self.openapi)
        if self._metrics_beside_api:  # else it has an address of its own (metrics_app), or none
            api.router.add_get("/metrics", self.metrics)
        return api

    def metrics_app(self) -> web.Application:
        """/metrics alone, for the address of its own (config `metrics.listen`)."""
        served = web.Application()
        served.router.add_get("/metrics", self.metrics)
        return served

    async def metrics(self, request: web.Request) -> web.Response:
        if self._metrics_token and not _bearer_is(request, self._metrics_token):
            return _problem(401, "metrics need the metrics token", {"WWW-Authenticate": "Bearer"})
        async with self._database.uow() as uow:
            depth = await uow.outbox.depth()
        body = self._metrics.render(depth)
        return web.Response(body=body, content_type="text/plain", charset="utf-8")

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(OPENAPI)

    def _source(self, request: web.Request, scope: str) -> ApiSource | web.Response:
        address = request.remote or "unknown"
        admitted = self._gate.admit(address, request.headers.get("Authorization", ""), scope)
        if isinstance(admitted, Refusal):
            headers = None
            if admitted.retry_after_s is not None:
                headers = {"Retry-After": str(admitted.retry_after_s)}
            return _problem(admitted.status, admitted.reason, headers)
        return admitted

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
            body = await _read_json(request)
        except _Refused as refused:
            return _problem(refused.status, refused.reason)
        records = body if isinstance(body, list) else [body]
        if not records:
            return _problem(422, "validation failed", problems=[_at("", "an empty batch")])
        if len(records) > MAX_BATCH:
            too_many = f"at most {MAX_BATCH} mentions per request, got {len(records)}"
            return _problem(422, "validation failed", problems=[_at("", too_many)])

        now = self._clock.now()
        items: list[_Item | None] = []
        valid: list[tuple[int, Mention]] = []
        for index, record in enumerate(records):
            checked = self._check(source, index, record, now)
            if isinstance(checked, Mention):
                valid.append((index, checked))
                items.append(None)
            else:
                items.append(_Item(problems=tuple(checked[:MAX_PROBLEMS])))
        try:
            stored = await self._store([m for _, m in valid])
        except _Unavailable:
            return _problem(
                503,
                "the database is unavailable; retry later",
                {"Retry-After": str(RETRY_AFTER_S)},
            )
        except _Busy:
            return _problem(
                503,
                "other writers changed the same cases meanwhile; resend the request",
                {"Retry-After": str(RETRY_BUSY_S)},
            )
        for (index, _), outcome in zip(valid, stored, strict=True):
            items[index] = (
                _Item(result=outcome)
                if isinstance(outcome, IntakeResult)
                else _Item(problems=(_at(f"[{index}]", outcome),))
            )
        return _answer([item for item in items if item is not None])

    def _check(
        self, source: ApiSource, index: int, record: Any, now: datetime
    ) -> Mention | list[dict[str, str]]:
        """The item as a mention of `source`, or its problems with paths from the request."""
        at = f"[{index}]"
        linked: tuple[Identity, ...] = ()
        mapper = self._mappers.get(source.name)
        if not isinstance(record, dict):
            return [_at(at, "must be an object (a mention)")]
        if mapper is not None:
            try:
                record = mapper(record)
            except MappingError as error:
                return [_at(join_path(at, f), m) for f, m in error.problems]
            linked = tuple(
                Identity(x["channel"], x["id"], "") for x in record.pop("identities", [])
            )
        try:
            item = _ONE.validate_python(record)
        except ValidationError as error:
            return [_at(join_path(at, error_path(e["loc"])), e["msg"]) for e in error.errors()]
        mention = item.to_domain(source.name, now)
        # A copy only for a mapped record's identities: dataclasses.replace costs microseconds.
        return replace(mention, linked=linked) if linked else mention

    async def _store(self, mentions: Sequence[Mention]) -> list[IntakeResult | str]:
        """Each mention's result, in order; a string says why that one could not be stored.
        A batch that fails as a whole is stored one by one, so one mention the database will
        not take cannot fail the others (and a sender retrying the batch would never stop).
        A single mention joins the others arriving at the same moment (single_mentions); when
        their group fails, none of it was stored, and each is stored on its own here."""
        if not mentions:
            return []
        if self._singles is not None and len(mentions) == 1:
            try:
                return [await self._singles.receive(mentions[0])]
            except GroupFailed:
                pass  # logged once for the group; now each on its own, as below
        if self._bulk is not None and len(mentions) > 1:
            try:
                return list((await self._bulk.receive_many(mentions)).results)
            except Exception:
                log.exception("api: a batch of %d failed; storing one by one", len(mentions))
        results: list[IntakeResult | str] = []
        for mention in mentions:
            try:
                results.append(await self._intake.receive(mention))
            except ConcurrentUpdate as error:
                # Lost its races to other writers every time: a retry will do (the mentions
                # stored already come back as duplicates), so say when, not that it failed.
                log.warning(
                    "api: mention %s of %s lost its races", mention.external_id, mention.source
                )
                raise _Busy from error
            except Exception:
                log.exception(
                    "api: mention %s of %s not stored", mention.external_id, mention.source
                )
                results.append("could not be stored; it will not be on a retry either")
        if all(isinstance(r, str) for r in results) and not await self._database_answers():
            raise _Unavailable
        return results

    async def _database_answers(self) -> bool:
        try:
            async with self._database.uow() as uow:
                await uow.outbox.depth()
        except Exception:
            return False
        return True

    async def get_case(self, request: web.Request) -> web.Response:
        source = self._source(request, "read")
        if isinstance(source, web.Response):
            return source
        raw = request.match_info["case_id"]
        # Digits only (int() also takes "+5", " 5" and other scripts' digits), within BIGINT.
        if not _CASE_ID.match(raw) or int(raw) > MAX_REACH:
            return _problem(404, "no such case")
        case = await self._cases.get(int(raw))
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
                "reaction_due_at": _iso(case.reaction_due_at),
                "first_touch_due_at": _iso(case.first_touch_due_at),
                "first_touched_at": _iso(case.first_touched_at),
                "answer_due_at": _iso(case.answer_due_at),
                "published_url": case.published_url,
                "outcome": case.outcome.value if case.outcome else None,
                "mention_count": case.mention_count,
                "codes": list(case.codes),
            }
        )

    async def get_events(self, request: web.Request) -> web.Response:
        """The audit trail after event `since`, oldest first, `limit` at a time."""
        source = self._source(request, "read")
        if isinstance(source, web.Response):
            return source
        unknown = sorted(set(request.query) - {"since", "limit"})
        if unknown:  # a misspelt "sinse" must not silently page from the start
            problems = [
                {"path": name, "message": "not a parameter of this call"} for name in unknown
            ]
            return _problem(422, "invalid query", problems=problems)
        since = _bounded(request.query.get("since", "0"), 0, MAX_EVENT_ID)
        limit = _bounded(request.query.get("limit", str(EVENTS_PAGE)), 1, MAX_EVENTS_PAGE)
        if since is None or limit is None:
            problems = [
                {"path": name, "message": f"an integer from {low} to {high}"}
                for name, low, high in (("since", 0, MAX_EVENT_ID), ("limit", 1, MAX_EVENTS_PAGE))
            ]
            return _problem(422, "invalid query", problems=problems)
        async with self._database.reader() as uow:
            page = await uow.events.records(since, limit)
        return web.json_response(
            {
                "events": [record.exported() for record in page],
                "next_since": page[-1].id if page else since,
            }
        )


EVENTS_PAGE = 100
MAX_EVENTS_PAGE = 1_000
MAX_EVENT_ID = 2**63 - 1


def _bounded(text: str, low: int, high: int) -> int | None:
    """`text` as an integer within [low, high]; None when it is not one (bounded length: a
    5,000-digit number is refused before Python converts it)."""
    text = text.strip()
    if not text or len(text) > 19 or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if low <= value <= high else None


def _at(path: str, message: str) -> dict[str, str]:
    return {"path": path or "body", "message": message}


def _answer(items: Sequence[_Item]) -> web.Response:
    """202 when anything was taken (stored or already there), 422 when every item was refused.
    Either way the items' results say which were refused and why: resending helps none."""
    results = [item.answer(index) for index, item in enumerate(items)]
    counts = {status: 0 for status in ("accepted", "duplicate", "rejected")}
    for result in results:
        counts[result["status"]] += 1
    body: dict[str, Any] = {
        "accepted": counts["accepted"],
        "duplicates": counts["duplicate"],
        "rejected": counts["rejected"],
        "cases": [r.get("case") for r in results],
        "results": results,
    }
    if counts["rejected"] == len(results):
        problems = [p for item in items for p in item.problems][:MAX_PROBLEMS]
        return web.json_response(
            {"error": "validation failed", "problems": problems, **body}, status=422
        )
    return web.json_response(body, status=202)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _openapi() -> dict[str, Any]:
    """The API as it behaves: schemas come from the same pydantic models that validate."""
    mention = MentionIn.model_json_schema(ref_template="#/components/schemas/{model}")
    components: dict[str, Any] = {
        "MentionIn": {k: v for k, v in mention.items() if k != "$defs"},
        **mention.get("$defs", {}),
    }
    problem_item = {
        "type": "object",
        "required": ["path", "message"],
        "properties": {
            "path": {
                "type": "string",
                "description": "Where, counting items from 0 even for a single object: "
                "[2].author.id; `body` for the request as a whole",
            },
            "message": {"type": "string"},
        },
    }
    components["Problem"] = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "description": "The reason, for people"},
            "problems": {"type": "array", "items": problem_item},
        },
    }
    components["ItemResult"] = {
        "type": "object",
        "required": ["index", "status"],
        "properties": {
            "index": {"type": "integer", "minimum": 0},
            "status": {"enum": ["accepted", "duplicate", "rejected"]},
            "case": {
                "type": ["integer", "null"],
                "description": "accepted or duplicate: the case it opened or joined, if any",
            },
            "problems": {
                "type": "array",
                "items": problem_item,
                "description": "rejected: why. Resending the same item will not help",
            },
        },
    }
    results = {
        "accepted": {"type": "integer", "minimum": 0, "description": "Newly stored"},
        "duplicates": {"type": "integer", "minimum": 0, "description": "Stored before"},
        "rejected": {"type": "integer", "minimum": 0},
        "cases": {
            "type": "array",
            "items": {"type": ["integer", "null"]},
            "description": "The case each item opened or joined, in order (null: none)",
        },
        "results": {"type": "array", "items": {"$ref": "#/components/schemas/ItemResult"}},
    }
    components["Results"] = {
        "type": "object",
        "required": list(results),
        "properties": results,
    }
    components["Case"] = _case_schema()
    components["Health"] = _HEALTH
    components["Unhealthy"] = _UNHEALTHY
    components["Rejected"] = {
        "type": "object",
        "required": ["error"],
        "properties": {**components["Problem"]["properties"], **results},
    }

    def answer(description: str, schema: str = "Problem", **extra: Any) -> dict[str, Any]:
        ref = {"$ref": f"#/components/schemas/{schema}"}
        return {
            "description": description,
            "content": {"application/json": {"schema": ref}},
            **extra,
        }

    retry_after = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait"}}
    auth = {
        "401": answer("Missing or unknown token (failures are counted per client address)"),
        "403": answer("The token lacks the scope"),
        "429": answer(
            f"Over {FAILURES_PER_WINDOW} failed authentications from this address within a "
            "minute: every authenticated request from it is refused until Retry-After",
            headers=retry_after,
        ),
    }
    batch_description = (
        "One mention (an object) or up to 1,000 (an array). Each item is validated and stored "
        "on its own: accepted items are stored even when others are rejected. "
        "Idempotent on (source, external_id): a repeat is a duplicate and changes nothing. "
        "Never 5xx for anything the request carries; 503 only when the database is down "
        "(retry then). Types are strict: `reach` is a JSON integer, not a string or boolean; "
        "`published_at` needs an offset. NUL is dropped from `text` and `author.name` (and "
        "a lone UTF-16 surrogate becomes U+FFFD); in identifiers and URLs it is refused."
    )
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
                    "description": batch_description,
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
                                            # Items are judged one by one: an invalid one is
                                            # rejected in `results`, not the batch.
                                            "items": {
                                                "anyOf": [
                                                    {"$ref": "#/components/schemas/MentionIn"},
                                                    {
                                                        "description": "Anything else: that "
                                                        "item is rejected with its reasons, "
                                                        "the others are stored"
                                                    },
                                                ]
                                            },
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": answer(
                            "Taken: at least one item accepted or a duplicate. `results` lists "
                            "every item, including the rejected ones with their reasons",
                            "Results",
                        ),
                        "400": answer(
                            "The body is not JSON: malformed, not UTF-8, nested too "
                            "deeply, a number of more than 40 digits, NaN"
                        ),
                        **auth,
                        "413": answer(f"The body is larger than {MAX_BODY} bytes"),
                        "415": answer(
                            "A charset other than UTF-8, or a Content-Encoding "
                            "other than gzip or deflate"
                        ),
                        "422": answer(
                            "Nothing taken: every item rejected (see `results`), or the "
                            "batch is empty or longer than 1,000",
                            "Rejected",
                        ),
                        "503": answer(
                            "The database is unavailable: retry the same request later",
                            headers=retry_after,
                        ),
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
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_REACH},
                        }
                    ],
                    "responses": {
                        "200": answer("The case", "Case"),
                        "404": answer("No such case (also for an id that is not 1 to 2^63-1)"),
                        **auth,
                    },
                }
            },
            "/api/v1/events": {
                "get": {
                    "summary": "The audit trail, paged by event id (scope: read)",
                    "description": "Events with id above `since`, oldest first, with their "
                    "hash chain (prev_hash, hash); ask again with since = next_since.",
                    "parameters": [
                        {
                            "name": "since",
                            "in": "query",
                            "schema": {
                                "type": "integer",
                                "minimum": 0,
                                "maximum": MAX_EVENT_ID,
                                "default": 0,
                            },
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": MAX_EVENTS_PAGE,
                                "default": EVENTS_PAGE,
                            },
                        },
                    ],
                    "responses": {
                        "200": {"description": "{events: [...], next_since: id}"},
                        "422": answer("since or limit out of range"),
                        **auth,
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness",
                    "security": [],
                    "responses": {
                        "200": answer("OK", "Health"),
                        "503": answer(
                            "The database or the outbox worker is failing: `reason` says which",
                            "Unhealthy",
                        ),
                    },
                }
            },
        },
    }


def _case_schema() -> dict[str, Any]:
    moment = {"type": ["string", "null"], "format": "date-time"}
    text = {"type": ["string", "null"]}
    return {
        "type": "object",
        "required": ["id", "department", "state", "priority", "created_at", "mention_count"],
        "properties": {
            "id": {"type": "integer"},
            "department": {"type": "string"},
            "state": {"enum": [s.value for s in CaseState]},
            "priority": {"enum": [p.value for p in Priority]},
            "assignee": text,
            "escalation_level": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"},
            # Optional, internal: somebody takes the case (sla.yaml `reaction`).
            "reaction_due_at": moment,
            # The first reply the author saw, and when it is due.
            "first_touch_due_at": moment,
            "first_touched_at": moment,
            "answer_due_at": moment,
            "published_url": text,
            "outcome": {"enum": [*(o.value for o in Outcome), None]},
            "mention_count": {"type": "integer"},
            "codes": {"type": "array", "items": {"type": "string"}},
        },
    }


_HEALTH = {
    "type": "object",
    "required": ["status", "transports", "outbox_depth"],
    "properties": {
        "status": {"const": "ok"},
        "transports": {"type": "array", "items": {"type": "string"}},
        "outbox_depth": {"type": "integer", "minimum": 0},
    },
}

_UNHEALTHY = {
    "type": "object",
    "required": ["status", "reason"],
    "properties": {"status": {"const": "unhealthy"}, "reason": {"type": "string"}},
}

OPENAPI = _openapi()
