"""RSS and Atom feeds, polled on a schedule with conditional GET; new entries become mentions.

State that must survive restarts (ETag, Last-Modified, the ids of the entries already taken
in) lives in the kv table under "feed:<name>:…". Intake is idempotent by (source, external
id) anyway; the seen set only spares the database a lookup per entry per poll.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp
import feedparser
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.base import BaseScheduler

from bot.cases.grouping import IntakeResult
from bot.clock import Clock
from bot.model import (
    MAX_MENTION_TEXT,
    MAX_NAME,
    MAX_URL,
    Identity,
    Mention,
    Sentiment,
    SentimentSource,
)
from bot.settings.connections import FeedSource
from handlers.html_text import text_of_html

log = logging.getLogger(__name__)

MAX_BODY = 5 * 1024 * 1024  # bigger than any sane feed; the rest is refused unread
TIMEOUT_S = 20.0
MAX_ENTRIES = 500  # per document: a feed is a window on recent items, not an archive
MAX_EXTERNAL_ID = 256  # the store's column
USER_AGENT = "Otklik feed poller"
ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.1"
_SPACES = re.compile(r"[ \t\r\f\v]+")
_LINES = re.compile(r"\s*\n\s*")


class KeyValue(Protocol):
    """Small persistent strings: CaseService.recall / remember."""

    async def recall(self, key: str) -> str | None: ...

    async def remember(self, key: str, value: str) -> None: ...


class Intake(Protocol):
    async def receive(self, mention: Mention) -> IntakeResult: ...


class FeedError(Exception):
    """A feed answered, but not with something we can use."""


@dataclass(frozen=True, slots=True)
class PollResult:
    status: int | None  # HTTP status; None when the request failed
    new: int = 0  # mentions stored for the first time
    cases: int = 0  # of which opened a case


def source_of(feed: FeedSource) -> str:
    return feed.source


def plain_text(value: str, html: bool = True) -> str:
    """Text without markup, whitespace tidied; `html=False` for values that are text already."""
    if html:
        value = text_of_html(value)
    value = value.replace("\x00", "")  # a loose parse turns &#0; into NUL; no database wants it
    return _LINES.sub("\n", _SPACES.sub(" ", value)).strip()


def _detail_text(entry: Mapping[str, Any], key: str) -> str:
    value = entry.get(key) or ""
    detail = entry.get(f"{key}_detail") or {}
    return plain_text(str(value), "html" in str(detail.get("type", "text/html")))


def _summary(entry: Mapping[str, Any]) -> str:
    summary = _detail_text(entry, "summary")
    if summary:
        return summary
    for content in entry.get("content") or ():  # Atom <content> without <summary>
        text = plain_text(str(content.get("value", "")), "html" in str(content.get("type", "")))
        if text:
            return text
    return ""


def _moment(entry: Mapping[str, Any]) -> datetime | None:
    # feedparser normalises dates to UTC struct_time
    for key in ("published_parsed", "updated_parsed"):
        parsed = entry.get(key)
        if parsed:
            try:
                return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
            except (TypeError, ValueError, OverflowError, OSError):
                continue
    return None


def entry_id(entry: Mapping[str, Any]) -> str:
    """The entry's own id, else its link, else a hash of title and link; always ≤ 256."""
    found = str(entry.get("id") or entry.get("link") or "").strip()
    if "\x00" in found:  # hashed rather than cut: two ids must stay two
        found = "sha256:" + hashlib.sha256(found.encode(errors="surrogatepass")).hexdigest()
    if not found:
        seed = f"{entry.get('title', '')}\n{entry.get('link', '')}".encode()
        found = "sha256:" + hashlib.sha256(seed).hexdigest()
    if len(found) > MAX_EXTERNAL_ID:
        found = "sha256:" + hashlib.sha256(found.encode()).hexdigest()
    return found


def _seen_key(external_id: str) -> str:
    return hashlib.sha256(external_id.encode()).hexdigest()[:16]


def entry_mention(
    feed: FeedSource, entry: Mapping[str, Any], feed_title: str, now: datetime
) -> Mention | None:
    """An entry as a mention; None when it has no words at all."""
    title, summary = _detail_text(entry, "title"), _summary(entry)
    text = "\n".join(part for part in (title, summary) if part)[:MAX_MENTION_TEXT]
    if not text:
        return None
    link = str(entry.get("link") or "")
    if "\x00" in link:
        link = ""  # not a link anyone can follow
    author_detail = entry.get("author_detail") or {}
    author = plain_text(str(author_detail.get("name") or entry.get("author") or ""), html=False)
    # Until the classifier lands unlabelled feeds are neutral: only urgent words open cases.
    sentiment = Sentiment(feed.sentiment) if feed.sentiment else None  # None: classified
    return Mention(
        source=source_of(feed),
        external_id=entry_id(entry),
        text=text,
        author=Identity(
            source_of(feed),
            (author or feed.name)[:MAX_EXTERNAL_ID],
            (author or feed_title or feed.name)[:MAX_NAME],
        ),
        received_at=now,
        published_at=_moment(entry),
        url=link if link.startswith(("http://", "https://")) and len(link) <= MAX_URL else None,
        sentiment=sentiment,
        sentiment_source=SentimentSource.SOURCE,
        codes=tuple(feed.codes),
    )


class FeedPoller:
    def __init__(
        self,
        feeds: Iterable[FeedSource],
        intake: Intake,
        state: KeyValue,
        clock: Clock,
        session_factory: Callable[[], aiohttp.ClientSession] | None = None,
    ) -> None:
        self.feeds = list(feeds)
        self._intake = intake
        self._state = state
        self._clock = clock
        self._session_factory = session_factory or _default_session
        self._session: aiohttp.ClientSession | None = None
        self._scheduler: BaseScheduler | None = None
        self._running: set[asyncio.Task[object]] = set()
        self._stopping = False

    def schedule(self, scheduler: BaseScheduler) -> None:
        """One interval job per feed; the first poll runs right away."""
        self._stopping = False
        self._scheduler = scheduler
        for feed in self.feeds:
            scheduler.add_job(
                self.poll,
                "interval",
                args=[feed],
                seconds=feed.interval_s,
                id=_job_id(feed),
                name=f"feed {feed.name}",
                coalesce=True,
                max_instances=1,
                misfire_grace_time=None,  # late is fine; skipping a poll is not
                next_run_time=datetime.now(UTC),
                replace_existing=True,
            )

    async def stop(self) -> None:
        """Unschedule, cut in-flight polls short (their work is redone next start), close."""
        self._stopping = True
        if self._scheduler is not None:
            for feed in self.feeds:
                with contextlib.suppress(JobLookupError):
                    self._scheduler.remove_job(_job_id(feed))
            self._scheduler = None
        running = list(self._running)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def poll(self, feed: FeedSource) -> PollResult:
        """Poll one feed once. Never raises: a broken feed waits for its next interval."""
        if self._stopping:
            return PollResult(None)
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            return await self._poll(feed)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            return PollResult(None)  # stopped on purpose: not an error for the scheduler
        except (aiohttp.ClientError, TimeoutError, FeedError) as error:
            log.warning("feed %s: %s (%s); retrying next interval", feed.name, feed.url, error)
            return PollResult(None)
        except Exception:
            log.exception("feed %s: poll failed; retrying next interval", feed.name)
            return PollResult(None)
        finally:
            if task is not None:
                self._running.discard(task)

    async def _poll(self, feed: FeedSource) -> PollResult:
        prefix = f"feed:{feed.name}:"
        etag = await self._state.recall(prefix + "etag")
        modified = await self._state.recall(prefix + "last_modified")
        status, body, headers = await self._fetch(feed, etag, modified)
        if body is None:
            return PollResult(status)
        parsed = await asyncio.to_thread(feedparser.parse, body, response_headers=headers)
        if parsed.bozo:
            problem = parsed.get("bozo_exception") or "malformed"
            if not parsed.entries:
                raise FeedError(f"not a feed: {problem}")
            # feedparser's loose parser salvages sloppy feeds (stray "&nbsp;" and the like).
            log.info("feed %s: malformed (%s); taking what could be read", feed.name, problem)
        seen = set(await self._seen(prefix))
        feed_title = plain_text(str(parsed.feed.get("title", "")))
        kept: list[str] = []
        new = cases = 0
        # Feeds list the newest first; taking them oldest first keeps cards in time order.
        for entry in reversed(parsed.entries[:MAX_ENTRIES]):
            external_id = entry_id(entry)
            key = _seen_key(external_id)
            kept.append(key)
            if key in seen:
                continue
            mention = entry_mention(feed, entry, feed_title, self._clock.now())
            if mention is None:
                continue
            result = await self._intake.receive(mention)
            if not result.duplicate:
                new += 1
                cases += result.case is not None
        # Saved last: a poll cut short re-reads the same document next time.
        await self._state.remember(prefix + "seen", json.dumps(kept))
        # Overwritten even when absent: a validator the server dropped must not be sent again.
        await self._state.remember(prefix + "etag", headers.get("etag", ""))
        await self._state.remember(prefix + "last_modified", headers.get("last-modified", ""))
        if new:
            log.info("feed %s: %d new entries, %d cases", feed.name, new, cases)
        return PollResult(status, new, cases)

    async def _seen(self, prefix: str) -> list[str]:
        raw = await self._state.recall(prefix + "seen")
        try:
            seen = json.loads(raw) if raw else []
        except ValueError:
            return []
        return [str(key) for key in seen] if isinstance(seen, list) else []

    async def _fetch(
        self, feed: FeedSource, etag: str | None, modified: str | None
    ) -> tuple[int, bytes | None, dict[str, str]]:
        """(status, body or None for 304, the headers feedparser and the next poll need)."""
        if self._session is None or self._session.closed:
            self._session = self._session_factory()
        request_headers = {"User-Agent": USER_AGENT, "Accept": ACCEPT}
        if etag:
            request_headers["If-None-Match"] = etag
        if modified:
            request_headers["If-Modified-Since"] = modified
        async with self._session.get(
            feed.url, headers=request_headers, timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)
        ) as response:
            if response.status == 304:
                return 304, None, {}
            if response.status != 200:
                raise FeedError(f"HTTP {response.status}")
            if (response.content_length or 0) > MAX_BODY:
                raise FeedError(f"larger than {MAX_BODY} bytes")
            body = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > MAX_BODY:
                    raise FeedError(f"larger than {MAX_BODY} bytes")
            headers = {
                name.lower(): response.headers[name]
                for name in ("Content-Type", "ETag", "Last-Modified")
                if name in response.headers
            }
            headers["content-location"] = str(response.url)  # base for relative links
            return 200, bytes(body), headers


def _job_id(feed: FeedSource) -> str:
    return f"feed:{feed.name}"


def _default_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(raise_for_status=False)
