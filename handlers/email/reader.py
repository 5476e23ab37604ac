"""The organisation's mailbox, read over IMAP: IDLE where the server has it, polling where it
has not. Each unseen letter becomes a mention through the normal intake and is marked \\Seen
only after that: a crash in between reads it again, and the (source, external id) key stores
it once. A letter over the size limit is not downloaded: its headers make a mention that says
so.

Next stop: transport.py, which sends the approved answers back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from collections.abc import Awaitable, Callable, Sequence

import aioimaplib

from bot.cases.grouping import IntakeResult
from bot.clock import Clock
from bot.messages.texts import Texts
from bot.model import Mention
from bot.settings.mail import EmailConfig
from handlers.email.letters import Letter, letter_mention, parse_letter, valid_sender

log = logging.getLogger(__name__)

BATCH = 50  # letters per check; the rest wait for the next round
RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 300.0
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
ANSWER_ID_PREFIX = "otklik."  # our answers' Message-IDs (transport.py message_id_for)


class MailError(Exception):
    """The IMAP server refused a command."""


def _ok(response: aioimaplib.Response, what: str) -> aioimaplib.Response:
    if response.result != "OK":
        raise MailError(f"{what}: {response.result}")
    return response


def _literal(response: aioimaplib.Response) -> bytes | None:
    """The message bytes of a one-letter FETCH."""
    for line in response.lines:
        if isinstance(line, bytearray):
            return bytes(line)
    return None


def megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f}"


async def connect_imap(config: EmailConfig, wait_s: float = 30.0) -> aioimaplib.IMAP4:
    """A logged-in IMAP client, TLS as configured."""
    client: aioimaplib.IMAP4
    if config.imap_tls == "ssl":
        client = aioimaplib.IMAP4_SSL(config.imap_host, config.imap_port, timeout=wait_s)
    else:
        client = aioimaplib.IMAP4(config.imap_host, config.imap_port, timeout=wait_s)
    await client.wait_hello_from_server()
    if config.imap_tls == "starttls":
        await _starttls(client, config.imap_host)
    _ok(await client.login(config.user, config.password), "LOGIN")
    return client


async def _starttls(client: aioimaplib.IMAP4, host: str) -> None:
    # aioimaplib has no STARTTLS of its own: ask for it, then wrap the same connection.
    protocol = client.protocol
    _ok(await protocol.simple_command("STARTTLS"), "STARTTLS")
    loop = asyncio.get_running_loop()
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    protocol.transport = await loop.start_tls(
        protocol.transport, protocol, context, server_hostname=host
    )
    await protocol.capability()


class MailboxReader:
    """One watched mailbox. `start` runs its loop as a task; `stop` ends it."""

    def __init__(
        self,
        config: EmailConfig,
        intake: Callable[[Mention], Awaitable[IntakeResult]],
        clock: Clock,
        texts: Texts,
        thread_of: Callable[[Sequence[str]], Awaitable[str | None]] | None = None,
    ) -> None:
        self._config = config
        self._thread_of = thread_of  # the story of the case one of our answers belongs to
        self._intake = intake
        self._clock = clock
        self._texts = texts
        self._task: asyncio.Task[None] | None = None
        self._client: aioimaplib.IMAP4 | None = None
        self._stopping = asyncio.Event()
        self.idle = False  # the server has IDLE (else: polling)
        self.last_check_ok: bool | None = None  # for channel health: did the last check work

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="email-reader")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        await self._close()

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.logout(), 5)

    async def _run(self) -> None:
        delay = RECONNECT_MIN_S
        while not self._stopping.is_set():
            try:
                await self._session()
                delay = RECONNECT_MIN_S
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a network or server fault: reconnect after a pause
                self.last_check_ok = False
                log.warning("email: mailbox %s: %s; reconnecting", self._config.mailbox, error)
                await self._close()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, RECONNECT_MAX_S)

    async def _session(self) -> None:
        client = self._client = await connect_imap(self._config)
        selected = _ok(await client.select(self._config.mailbox), "SELECT")
        validity = next(
            (m.group(1).decode() for m in map(_UIDVALIDITY.search, selected.lines) if m), "0"
        )
        self.idle = self._config.idle and client.has_capability("IDLE")
        while not self._stopping.is_set():
            while await self.check(client, validity) == BATCH:
                pass  # more are waiting
            self.last_check_ok = True
            if self.idle:
                await self._wait_idle(client)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._config.poll_interval_s)

    async def _wait_idle(self, client: aioimaplib.IMAP4) -> None:
        """Until the server says something changed, or the IDLE timeout (then re-checked:
        RFC 2177 asks clients to renew IDLE well within 30 minutes)."""
        idle = await client.idle_start(timeout=self._config.idle_timeout_s)
        try:
            while client.has_pending_idle():
                pushed = await client.wait_server_push(self._config.idle_timeout_s + 5)
                if pushed == aioimaplib.STOP_WAIT_SERVER_PUSH or any(
                    b"EXISTS" in line or b"RECENT" in line for line in pushed
                ):
                    break
        finally:
            if client.has_pending_idle():
                client.idle_done()
            await asyncio.wait_for(idle, 30)

    async def _story(self, letter: Letter) -> str | None:
        """A reply to one of our answers joins that answer's case by the case's own story."""
        ours = [i for i in letter.replies_to if _ours(i, self._config.domain)]
        if not ours or self._thread_of is None:
            return None
        return await self._thread_of(ours)

    async def check(self, client: aioimaplib.IMAP4, validity: str) -> int:
        """Take in the unseen letters (up to BATCH); returns how many were looked at."""
        found = _ok(await client.uid_search("UNSEEN"), "SEARCH")
        uids = [int(u) for line in found.lines[:-1] for u in bytes(line).split() if u.isdigit()]
        uids = sorted(uids)[:BATCH]
        for uid in uids:
            await self._take_in(client, validity, uid)
        return len(uids)

    async def _take_in(self, client: aioimaplib.IMAP4, validity: str, uid: int) -> None:
        sized = _ok(await client.uid("fetch", str(uid), "(RFC822.SIZE)"), "FETCH")
        size = next((int(m.group(1)) for m in map(_SIZE.search, _lines(sized)) if m), 0)
        limit = self._config.max_letter_bytes
        too_large = size > limit
        part = "BODY.PEEK[HEADER]" if too_large else "BODY.PEEK[]"
        raw = _literal(_ok(await client.uid("fetch", str(uid), f"({part})"), "FETCH"))
        if raw is None:
            return  # expunged meanwhile
        try:
            letter: Letter = await asyncio.to_thread(parse_letter, raw, headers_only=too_large)
        except Exception:  # a letter the email package cannot read must not stall the rest
            log.exception("email: letter %s cannot be read; flagged in the mailbox", uid)
            await client.uid("store", str(uid), "+FLAGS.SILENT (\\Seen \\Flagged)")
            return
        own = letter.sender == self._config.from_address.lower()  # our answer, copied back
        if letter.automatic or own or not valid_sender(letter):
            log.info("email: letter %s skipped (automatic, our own or without a sender)", uid)
        else:
            note = ""
            if too_large:
                note = self._texts.t(
                    "email.too_large", size_mb=megabytes(size), limit_mb=megabytes(limit)
                )
            elif not (letter.body or letter.attachments):
                note = self._texts.t("email.empty")
            story = await self._story(letter)
            mention = letter_mention(
                letter, f"uid:{validity}:{uid}", self._clock.now(), note, story
            )
            result = await self._intake(mention)
            log.info(
                "email: letter %s taken in%s",
                uid,
                f", case #{result.case.id}" if result.case is not None else "",
            )
        # Only now: a crash before this line reads the letter again, and intake keeps it once.
        _ok(await client.uid("store", str(uid), "+FLAGS.SILENT (\\Seen)"), "STORE")


def _ours(message_id: str, domain: str) -> bool:
    return message_id.startswith(ANSWER_ID_PREFIX) and message_id.lower().endswith(f"@{domain}")


def _lines(response: aioimaplib.Response) -> list[bytes]:
    return [bytes(line) for line in response.lines]
