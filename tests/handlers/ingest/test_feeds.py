"""RSS and Atom feeds: a local HTTP server with ETag / Last-Modified, the real poller, the real
intake on a temporary SQLite database."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from aiohttp import web

import handlers.ingest.feeds
from bot.cases.grouping import IntakeResult
from bot.clock import FrozenClock
from bot.model import CaseState, Mention, Sentiment
from bot.settings.config import load_config
from bot.settings.connections import FeedSource
from bot.settings.playbook import load_playbook
from handlers.app import App
from handlers.ingest.feeds import FeedPoller, PollResult, entry_id, entry_mention, plain_text
from tests.doubles.fakes import RecordingTransport
from tests.doubles.support import API_TOKENS, CONFIG_YAML, ROOT

RSS_ITEM = """
    <item>
      <title>{title}</title>
      <link>https://news.example.org/{n}</link>
      <guid isPermaLink="false">news-{n}</guid>
      <description>{description}</description>
      <author>editor@example.org (Ирина Редакторова)</author>
      <pubDate>Fri, 20 Nov 2026 10:0{n}:00 +0300</pubDate>
    </item>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Городской форум</title>
  <id>urn:forum</id>
  <updated>2026-11-20T09:00:00Z</updated>
  <entry>
    <title type="text">Автобус 12 снова не пришёл</title>
    <id>urn:forum:post:77</id>
    <link href="https://forum.example.org/t/77"/>
    <updated>2026-11-20T09:00:00Z</updated>
    <author><name>Пётр С.</name></author>
    <content type="html">&lt;p&gt;Ждали &lt;b&gt;час&lt;/b&gt; на остановке&lt;/p&gt;</content>
  </entry>
</feed>
"""


def rss(items: list[tuple[str, str]]) -> str:
    body = "".join(
        RSS_ITEM.format(n=n, title=title, description=description)
        for n, (title, description) in enumerate(items, start=1)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Новости области</title><link>https://news.example.org/</link>{body}"
        "</channel></rss>"
    )


@dataclass
class Document:
    body: str
    content_type: str = "application/rss+xml; charset=utf-8"
    etag: str | None = None
    last_modified: str | None = None
    status: int = 200


@dataclass
class FeedServer:
    """Serves documents by path; honours If-None-Match / If-Modified-Since with 304."""

    documents: dict[str, Document] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    base: str = ""
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def publish(self, path: str, document: Document) -> str:
        self.documents[path] = document
        return f"{self.base}{path}"

    def seen(self, path: str) -> list[dict[str, str]]:
        return [headers for p, headers in self.requests if p == path]

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.headers)))
        if request.path == "/hang":
            await self.release.wait()  # a server that does not answer until torn down
        doc = self.documents.get(request.path)
        if doc is None:
            return web.Response(status=404)
        if doc.status != 200:
            return web.Response(status=doc.status, text="oops")
        headers = {}
        if doc.etag:
            headers["ETag"] = doc.etag
        if doc.last_modified:
            headers["Last-Modified"] = doc.last_modified
        if (doc.etag and request.headers.get("If-None-Match") == doc.etag) or (
            doc.last_modified and request.headers.get("If-Modified-Since") == doc.last_modified
        ):
            return web.Response(status=304, headers=headers)
        headers["Content-Type"] = doc.content_type
        return web.Response(body=doc.body.encode(), headers=headers)


@pytest.fixture
async def feed_server() -> AsyncIterator[FeedServer]:
    server = FeedServer()
    app = web.Application()
    app.router.add_get("/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.base = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        server.release.set()
        await runner.cleanup()


def write_config(tmp_path: Path, sqlite_url: str, feeds: str = "") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG_YAML.format(url=sqlite_url, root=ROOT, port=0) + feeds, encoding="utf-8")
    return path


@pytest.fixture
async def app(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> AsyncIterator[tuple[App, RecordingTransport]]:
    config = load_config(write_config(tmp_path, sqlite_url), env=API_TOKENS)
    transport = RecordingTransport()
    running = App(config, load_playbook(config.playbooks.path), clock, {"telegram": transport})
    await running.start()
    try:
        yield running, transport
    finally:
        await running.stop()


@dataclass
class Recorder:
    """The real intake, with a note of every mention handed to it."""

    app: App
    received: list[Mention] = field(default_factory=list)

    async def receive(self, mention: Mention) -> IntakeResult:
        self.received.append(mention)
        return await self.app.intake.receive(mention)


@pytest.fixture
async def poller(
    app: tuple[App, RecordingTransport], clock: FrozenClock
) -> AsyncIterator[tuple[FeedPoller, Recorder]]:
    recorder = Recorder(app[0])
    feeds = FeedPoller([], recorder, app[0].cases, clock)
    try:
        yield feeds, recorder
    finally:
        await feeds.stop()


async def stored(app: App, source: str, external_id: str) -> Mention:
    async with app.database.uow() as uow:
        mention = await uow.mentions.get_by_external(source, external_id)
    assert mention is not None, (source, external_id)
    return mention


async def test_rss_and_atom_entries_become_mentions_and_conditional_get_stores_nothing_new(
    feed_server: FeedServer,
    app: tuple[App, RecordingTransport],
    poller: tuple[FeedPoller, Recorder],
    clock: FrozenClock,
) -> None:
    running, _ = app
    feeds, recorder = poller
    items = [
        ("Ремонт дороги на Ленина", "<p>Работы <b>продлятся</b> до&nbsp;пятницы</p>"),
        ("Новый маршрут &amp; расписание", "Автобус 40 пойдёт через центр"),
    ]
    news = FeedSource(
        name="news",
        url=feed_server.publish(
            "/rss", Document(rss(items), etag='"v1"', last_modified="Fri, 20 Nov 2026 07:00:00 GMT")
        ),
        codes=["media"],
    )
    forum = FeedSource(
        name="forum",
        url=feed_server.publish(
            "/atom",
            Document(
                ATOM,
                content_type="application/atom+xml",
                last_modified="Fri, 20 Nov 2026 09:00:00 GMT",
            ),
        ),
    )

    assert await feeds.poll(news) == PollResult(200, new=2, cases=0)
    road = await stored(running, "rss:news", "news-1")
    assert road.text == "Ремонт дороги на Ленина\nРаботы продлятся до\xa0пятницы"
    assert road.url == "https://news.example.org/1"
    assert road.published_at == datetime(2026, 11, 20, 7, 1, tzinfo=UTC)
    assert road.received_at == clock.now()
    # No sentiment in the feed: the model decides. An announcement is no complaint: not
    # negative (the model may leave it uncertain, for a person to check), and no case.
    assert road.sentiment in (Sentiment.NEUTRAL, Sentiment.UNCERTAIN) and "media" in road.codes
    assert (road.author.channel, road.author.display_name) == ("rss:news", "Ирина Редакторова")
    route = await stored(running, "rss:news", "news-2")
    assert route.text.startswith("Новый маршрут & расписание\n")

    # No sentiment in the feed: the classifier reads a complaint, so it opens a case.
    assert await feeds.poll(forum) == PollResult(200, new=1, cases=1)
    bus = await stored(running, "rss:forum", "urn:forum:post:77")
    assert bus.text == "Автобус 12 снова не пришёл\nЖдали час на остановке"
    assert bus.url == "https://forum.example.org/t/77"
    assert bus.author.display_name == "Пётр С."

    # Unchanged feeds: validators go back, 304 comes back, nothing reaches the intake.
    recorder.received.clear()
    assert await feeds.poll(news) == PollResult(304)
    assert await feeds.poll(forum) == PollResult(304)
    assert feed_server.seen("/rss")[-1]["If-None-Match"] == '"v1"'
    assert feed_server.seen("/atom")[-1]["If-Modified-Since"] == "Fri, 20 Nov 2026 09:00:00 GMT"
    assert recorder.received == []

    # A new entry arrives once; the ones already taken in are not even looked up again.
    items.append(("Плановое отключение воды в Заречном", "12 декабря с 10 до 14 часов"))
    feed_server.documents["/rss"] = Document(rss(items), etag='"v2"')
    assert await feeds.poll(news) == PollResult(200, new=1, cases=0)
    assert [m.external_id for m in recorder.received] == ["news-3"]
    assert await feeds.poll(news) == PollResult(304)

    # A server that ignores conditional requests costs bandwidth, not duplicates.
    feed_server.documents["/rss"].etag = None
    recorder.received.clear()
    assert await feeds.poll(news) == PollResult(200, new=0, cases=0)
    assert recorder.received == []


async def test_a_negative_feed_opens_a_case_routed_by_the_playbook(
    feed_server: FeedServer,
    app: tuple[App, RecordingTransport],
    poller: tuple[FeedPoller, Recorder],
) -> None:
    running, transport = app
    feeds, _ = poller
    complaints = FeedSource(
        name="complaints",
        url=feed_server.publish(
            "/complaints",
            Document(rss([("Жалоба", "Третий день нет отопления, батареи ледяные")])),
        ),
        sentiment="negative",
    )
    assert await feeds.poll(complaints) == PollResult(200, new=1, cases=1)
    mention = await stored(running, "rss:complaints", "news-1")
    assert mention.sentiment is Sentiment.NEGATIVE and mention.case_id is not None
    case = await running.cases.get(mention.case_id)
    assert case is not None
    assert (case.department, case.state, case.source) == (
        "housing",
        CaseState.NEW,
        "rss:complaints",
    )
    await running.worker.run_once()
    assert {s.chat for s in transport.posts()} == {"-100111"}  # the housing chat's card


async def test_broken_feeds_are_survived_and_retried(
    feed_server: FeedServer,
    poller: tuple[FeedPoller, Recorder],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    feeds, recorder = poller
    caplog.set_level(logging.WARNING, logger="handlers.ingest.feeds")
    flaky = FeedSource(name="flaky", url=feed_server.publish("/flaky", Document("", status=500)))
    assert await feeds.poll(flaky) == PollResult(None)
    assert "HTTP 500" in caplog.text

    feed_server.documents["/flaky"] = Document("это вовсе не XML", content_type="text/html")
    assert await feeds.poll(flaky) == PollResult(None)
    assert "not a feed" in caplog.text
    feed_server.documents["/flaky"] = Document("<rss><channel><item><title>unclosed")
    assert (await feeds.poll(flaky)).new == 0  # nothing readable, nothing stored, no crash

    # Sloppy but readable (an undefined entity): the loose parser salvages the entries.
    feed_server.documents["/flaky"] = Document(
        "<rss><channel><item><title>Один</title><description>а &nbsp; б</description></item>"
        "<item><title>Концерт &amp; ярмарка</title></item></channel></rss>"
    )
    assert await feeds.poll(flaky) == PollResult(200, new=2, cases=0)
    assert [m.text for m in recorder.received] == ["Концерт & ярмарка", "Один\nа \xa0 б"]
    recorder.received.clear()

    monkeypatch.setattr(handlers.ingest.feeds, "MAX_BODY", 100)
    feed_server.documents["/flaky"] = Document(rss([("Большая новость", "х" * 200)]))
    assert await feeds.poll(flaky) == PollResult(None)
    assert "larger than 100 bytes" in caplog.text
    monkeypatch.undo()

    gone = FeedSource(name="gone", url="http://127.0.0.1:9/feed")  # nothing listens there
    assert await feeds.poll(gone) == PollResult(None)
    assert recorder.received == []

    # Fixed on the server side: the next interval just works.
    assert await feeds.poll(flaky) == PollResult(200, new=1, cases=0)


def test_entry_ids_and_text_are_bounded_and_plain() -> None:
    assert entry_id({"id": "urn:1", "link": "https://x/1"}) == "urn:1"
    assert entry_id({"link": "https://x/1"}) == "https://x/1"
    hashed = entry_id({"title": "Без ссылки"})
    assert hashed.startswith("sha256:") and hashed == entry_id({"title": "Без ссылки"})
    assert len(entry_id({"id": "x" * 1000})) <= 256
    assert plain_text("<p>Раз</p><p>два&nbsp;<script>alert(1)</script>три</p>") == (
        "Раз\nдва\xa0три"
    )
    assert plain_text("1 < 2 & <b>", html=False) == "1 < 2 & <b>"


async def test_the_app_polls_configured_feeds_from_the_start(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock, feed_server: FeedServer
) -> None:
    url = feed_server.publish("/rss", Document(rss([("Прорыв трубы на Садовой", "Заливает")])))
    feeds = f"feeds:\n  - {{name: news, url: '{url}', interval_s: 60}}\n"
    config = load_config(write_config(tmp_path, sqlite_url, feeds), env=API_TOKENS)
    running = App(config, load_playbook(config.playbooks.path), clock, {})
    await running.start()
    try:
        for _ in range(200):
            async with running.database.uow() as uow:
                found = await uow.mentions.get_by_external("rss:news", "news-1")
            if found is not None:
                break
            await asyncio.sleep(0.02)
        assert found is not None and found.case_id is not None  # urgent words open a case
        assert running.scheduler.get_job("feed:news") is not None
    finally:
        await running.stop()
    assert len(feed_server.seen("/rss")) == 1


async def test_stopping_cuts_a_hanging_poll_short(
    feed_server: FeedServer, poller: tuple[FeedPoller, Recorder]
) -> None:
    feeds, _ = poller
    hanging = FeedSource(name="slow", url=f"{feed_server.base}/hang")
    task = asyncio.create_task(feeds.poll(hanging))
    for _ in range(100):
        if feed_server.seen("/hang"):
            break
        await asyncio.sleep(0.01)
    assert feed_server.seen("/hang")
    await asyncio.wait_for(feeds.stop(), timeout=2)
    assert task.done() and task.result() == PollResult(None)
    assert await feeds.poll(hanging) == PollResult(None)  # stopped: no new requests
    assert len(feed_server.seen("/hang")) == 1


def test_fault3_nul_in_a_feed_entry_never_reaches_the_database() -> None:
    # A loosely parsed feed turns &#0; into NUL, which PostgreSQL refuses in text.
    xml = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item>'
        b"<title>a&#0;b</title><description>c&#0;d</description><guid>id&#0;1</guid>"
        b"<link>https://e.org/x&#0;</link><author>me&#0;</author></item></channel></rss>"
    )
    entry = feedparser.parse(xml).entries[0]
    feed = FeedSource(name="news", url="https://e.org/rss")
    mention = entry_mention(feed, entry, "t", datetime(2026, 11, 20, tzinfo=UTC))
    assert mention is not None
    assert mention.text == "ab\ncd"
    assert "\x00" not in mention.external_id and mention.external_id.startswith("sha256:")
    assert "\x00" not in mention.author.external_id + mention.author.display_name
    assert mention.url is None  # not a usable link
