"""The citizens' web form: GET /form shows it, POST /form turns it into a mention of source
"form" (bot/cases/replies.py FORM_SOURCE), on the bot's own HTTP server (handlers/app.py).

Everything a browser sends is untrusted, and every refusal is a page the person can read with
a 4xx status: 400 unreadable or a robot's honeypot, 403 a missing or forged token
(handlers/form/guard.py), 413 too large, 415 not a form, 422 a field to fix (the form comes
back with the person's words and the problems next to their fields), 429 too many from one
address. Pages are Jinja2 templates with autoescaping on; the words are messages.yaml's
`form.*` in Russian and English (?lang=, else Accept-Language, else the config's locale).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from bot.cases.replies import FORM_SOURCE
from bot.clock import Clock
from bot.intake.intake import MentionIntake
from bot.messages.texts import Texts
from bot.model import Identity, Mention
from bot.settings.config import Config
from handlers.form.guard import (
    AddressLimit,
    Tokens,
    client_address,
    is_trusted,
    networks,
    reference_of,
)
from handlers.http_body import read_at_most

log = logging.getLogger(__name__)

PREFIX = "/form"
COOKIE = "otklik_form"
HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
MAX_BODY = 96 * 1024  # 5,000 Cyrillic characters take some 30 KB URL-encoded
MAX_FIELDS = 16
FIELDS = ("name", "contact", "text", "department")  # as the page shows them
LIMITS = {"name": 200, "contact": 254, "text": 5_000}
RETRY_AFTER_S = 60
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded"})
_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"\\]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")
_PHONE_NOISE = re.compile(r"[\s().\-]")
_SPACES = re.compile(r"\s+")


def contact_identity(contact: str, name: str) -> Identity | None:
    """The author identity a contact names: `email:<address>` (lower-cased: the same mailbox
    however it was typed) or `phone:+<digits>` (E.164; a Russian 8… or a bare ten-digit
    number becomes +7…). None: neither."""
    contact = contact.strip()
    if "@" in contact:
        if not _EMAIL.match(contact) or ".." in contact:
            return None
        return Identity("email", contact.lower(), name)
    digits = _PHONE_NOISE.sub("", contact)
    plus = digits.startswith("+")
    digits = digits.removeprefix("+")
    if not (digits.isascii() and digits.isdigit()):
        return None
    if not plus and len(digits) == 11 and digits[0] == "8":
        digits = "7" + digits[1:]
    elif not plus and len(digits) == 10 and digits[0] == "9":
        digits = "7" + digits
    if not 7 <= len(digits) <= 15:
        return None
    return Identity("phone", f"+{digits}", name)


@dataclass(slots=True)
class _Filled:
    """What the person sent, cleaned, with the problems to show next to the fields."""

    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)


class _Refusal(Exception):
    def __init__(self, status: int, key: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(key)
        self.status = status
        self.key = key  # form.refused.<key>
        self.headers = dict(headers or {})


class FormWeb:
    def __init__(
        self,
        config: Config,
        intake: MentionIntake,
        clock: Clock,
        secret: str,
        texts: Mapping[str, Texts],
    ) -> None:
        settings = config.form
        self._config = config
        self._intake = intake
        self._clock = clock
        self._texts = dict(texts)  # by locale: "ru", "en"
        self._tokens = Tokens(secret, timedelta(minutes=settings.token_minutes))
        self._limit = AddressLimit(settings.per_address_per_hour)
        self._proxies = networks(settings.trusted_proxies)
        # The citizen may name a department; the coordination centre is ours, not theirs.
        self._departments = [
            (d.id, d.name) for d in config.departments if d.id != config.coordination_department
        ]
        self._pages = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(PREFIX, self.show)
        app.router.add_post(PREFIX, self.submit)
        app.router.add_get(f"{PREFIX}/static/form.css", self.stylesheet)

    # --- pages ---

    async def show(self, request: web.Request) -> web.Response:
        lang = self._language(request, request.query.get("lang"))
        token = self._tokens.issue(self._clock.now())
        response = self._form(lang, token, {}, {}, 200)
        self._set_cookie(request, response, token)
        return response

    async def stylesheet(self, request: web.Request) -> web.StreamResponse:
        response = web.FileResponse(STATIC / "form.css")
        response.content_type = "text/css"
        response.headers.update(SECURITY_HEADERS)
        response.headers["Cache-Control"] = "public, max-age=3600"
        return response

    async def submit(self, request: web.Request) -> web.Response:
        lang = self._language(request, request.query.get("lang"))
        now = self._clock.now()
        address = client_address(
            request.remote, request.headers.get("X-Forwarded-For", ""), self._proxies
        )
        try:
            if self._limit.exhausted(address, now):
                raise _Refusal(429, "rate", {"Retry-After": "3600"})
            fields = await self._read(request)
            lang = self._language(request, fields.get("lang"))
            if fields.get("website", ""):
                self._limit.count(address, now)  # a robot's tries count against its address
                raise _Refusal(400, "honeypot")
            token = fields.get("csrf", "")
            nonce = self._tokens.check(token, request.cookies.get(COOKIE, ""), now)
            if nonce is None:
                self._limit.count(address, now)
                raise _Refusal(403, "csrf")
        except _Refusal as refusal:
            # Not the address: a citizen's IP is personal data too.
            log.info("form: refused: %s (%d)", refusal.key, refusal.status)
            return self._refused(lang, refusal)
        filled = self._check(fields, self._texts[lang])
        if filled.errors:
            return self._form(lang, token, filled.values, filled.errors, 422)
        identity = contact_identity(filled.values["contact"], filled.values["name"])
        assert identity is not None  # _check refused the contact otherwise
        reference = reference_of(nonce)
        mention = Mention(
            source=FORM_SOURCE,
            external_id=reference,
            text=filled.values["text"],
            author=identity,
            received_at=now,
            published_at=now,
        )
        try:
            result = await self._intake.receive(
                mention, department_hint=filled.values.get("department") or None
            )
        except Exception:
            log.exception("form: appeal %s could not be stored", reference)
            unavailable = _Refusal(503, "unavailable", {"Retry-After": str(RETRY_AFTER_S)})
            return self._refused(lang, unavailable)
        self._limit.count(address, now)
        case = result.case.id if result.case is not None else None
        # The reference and the case only: the appeal's words and contact are personal data.
        log.info("form: appeal %s taken in%s", reference, f", case #{case}" if case else "")
        return self._done(lang, reference, identity, result.duplicate)

    # --- reading and checking ---

    async def _read(self, request: web.Request) -> dict[str, str]:
        if request.content_type not in _FORM_TYPES:
            raise _Refusal(415, "unreadable")
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise _Refusal(413, "too_large")
        body = await read_at_most(request, MAX_BODY)
        if body is None:
            raise _Refusal(413, "too_large")
        try:
            pairs = parse_qsl(
                body.decode("utf-8"),
                keep_blank_values=True,
                strict_parsing=False,
                max_num_fields=MAX_FIELDS,
                errors="strict",
            )
        except (UnicodeDecodeError, ValueError):
            raise _Refusal(400, "unreadable") from None
        fields: dict[str, str] = {}
        for name, value in pairs:
            if name in fields:  # one value per field: a second is a trick, not a person
                raise _Refusal(400, "unreadable")
            fields[name] = value
        return fields

    def _check(self, fields: Mapping[str, str], texts: Texts) -> _Filled:
        values = {
            "name": _SPACES.sub(" ", fields.get("name", "").replace("\0", "")).strip(),
            "contact": fields.get("contact", "").replace("\0", "").strip(),
            "text": fields.get("text", "").replace("\0", "").replace("\r\n", "\n").strip(),
            "department": fields.get("department", "").strip(),
        }
        filled = _Filled(values)
        errors = filled.errors
        for name in ("name", "contact", "text"):
            if not values[name]:
                errors[name] = texts.t(f"form.error.{name}_missing")
            elif len(values[name]) > LIMITS[name]:
                errors[name] = texts.t("form.error.too_long", limit=LIMITS[name])
        if "contact" not in errors and contact_identity(values["contact"], "") is None:
            errors["contact"] = texts.t("form.error.contact_invalid")
        if values["department"] and values["department"] not in dict(self._departments):
            errors["department"] = texts.t("form.error.department_unknown")
            values["department"] = ""
        # The summary lists the problems in the order the fields come on the page.
        filled.errors = {name: errors[name] for name in FIELDS if name in errors}
        return filled

    # --- answers ---

    def _language(self, request: web.Request, asked: str | None) -> str:
        if asked in self._texts:
            assert asked is not None
            return asked
        for tag in _accepted_languages(request.headers.get("Accept-Language", "")):
            if tag in self._texts:
                return tag
        return self._config.locale if self._config.locale in self._texts else "ru"

    def _render(self, template: str, lang: str, status: int, **params: Any) -> web.Response:
        texts = self._texts[lang]
        html = self._pages.get_template(template).render(
            lang=lang,
            other_lang="en" if lang == "ru" else "ru",
            organisation=self._config.organisation,
            prefix=PREFIX,
            t=texts.t,
            **params,
        )
        return web.Response(
            text=html,
            status=status,
            content_type="text/html",
            charset="utf-8",
            headers=SECURITY_HEADERS,
        )

    def _form(
        self,
        lang: str,
        token: str,
        values: Mapping[str, str],
        errors: Mapping[str, str],
        status: int,
    ) -> web.Response:
        texts = self._texts[lang]
        labels = {name: texts.t(f"form.{name}") for name in FIELDS}
        return self._render(
            "form.html.j2",
            lang,
            status,
            title=texts.t("form.title"),
            token=token,
            values={name: values.get(name, "") for name in FIELDS},
            errors=dict(errors),
            labels=labels,
            limits=LIMITS,
            departments=self._departments,
        )

    def _refused(self, lang: str, refusal: _Refusal) -> web.Response:
        texts = self._texts[lang]
        response = self._render(
            "message.html.j2",
            lang,
            refusal.status,
            kind="refused",
            title=texts.t("form.refused.title"),
            reference=None,
            lines=[texts.t(f"form.refused.{refusal.key}")],
            link=texts.t("form.refused.back"),
        )
        response.headers.update(refusal.headers)
        return response

    def _done(self, lang: str, reference: str, author: Identity, again: bool) -> web.Response:
        texts = self._texts[lang]
        lines = [texts.t("form.done.keep")]
        if again:
            lines.insert(0, texts.t("form.done.again"))
        kind = "email" if author.channel == "email" else "phone"
        lines.append(texts.t(f"form.done.{kind}", contact=author.external_id))
        return self._render(
            "message.html.j2",
            lang,
            200,
            kind="done",
            title=texts.t("form.done.title"),
            reference=reference,
            lines=lines,
            link=texts.t("form.done.another"),
        )

    def _set_cookie(self, request: web.Request, response: web.Response, token: str) -> None:
        # Behind a TLS-terminating proxy the browser speaks https though we see http.
        forwarded_https = request.headers.get("X-Forwarded-Proto", "") == "https" and is_trusted(
            request.remote, self._proxies
        )
        response.set_cookie(
            COOKIE,
            token,
            path=PREFIX,
            max_age=int(self._tokens.lifetime.total_seconds()),
            httponly=True,
            samesite="Strict",
            secure=request.secure or forwarded_https,
        )


def _accepted_languages(header: str) -> list[str]:
    """Accept-Language's primary tags, most wanted first (bounded: it is a header)."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header[:500].split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                weight = float(params[2:])
            except ValueError:
                continue
        primary = tag.strip().split("-", 1)[0].lower()
        if primary and weight > 0:
            ranked.append((-weight, index, primary))
    return [tag for _, _, tag in sorted(ranked)]
