"""Texts: every domain value has a label in every locale, templates compile, rendering is
strict, sandboxed and escapes hostile input."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from jinja2.exceptions import SecurityError, TemplateNotFound, UndefinedError

from bot.cases import lifecycle
from bot.messages.texts import (
    DEFAULT_TEMPLATES_DIR,
    ERROR_CODES,
    LOCALES,
    Texts,
    TextsError,
    check_templates,
    required_keys,
    texts_for,
)
from bot.model import (
    Action,
    AuthorLabel,
    CaseState,
    DeptRole,
    DraftStatus,
    EventKind,
    GlobalRole,
    IgnoreReason,
    Outcome,
    Priority,
)

HOSTILE = '<script>alert("x")</script> & <b>bold</b>'
TELEGRAM_TAGS = {"b", "i", "u", "s", "code", "pre", "a", "blockquote"}


@pytest.fixture(params=LOCALES)
def texts(request: pytest.FixtureRequest) -> Texts:
    return texts_for(DEFAULT_TEMPLATES_DIR, request.param)


def card_context(**overrides: Any) -> dict[str, Any]:
    """What bot.cases.cards.card_view passes, plus text_cut."""
    context: dict[str, Any] = {
        "view": "card",
        "case": {
            "id": 42,
            "version": 3,
            "state": "awaiting_approval",
            "priority": "high",
            "department": "housing",
            "escalation_level": 1,
            "drill": False,
            "mention_count": 3,
        },
        "department_name": "ЖКХ",
        "source": "vk",
        "deadline": "12.03 14:30",
        "assignee_name": "Ирина",
        "author": {
            "name": "Пётр",
            "labels": ["systematic_critic"],
            "negative_count": 5,
            "total_mentions": 12,
        },
        "text": "Нет горячей воды",
        "text_cut": False,
        "url": "https://vk.com/wall-1_2",
        "draft": {"version": 2, "status": "pending", "text": "Здравствуйте!"},
        "moved_to": None,
        "actions": ["approve", "request_changes"],
    }
    context.update(overrides)
    return context


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def tags_of(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


# --- coverage of domain values ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "values"),
    [
        ("action", Action),
        ("event", Action),
        ("event", EventKind),
        ("state", CaseState),
        ("priority", Priority),
        ("ignore_reason", IgnoreReason),
        ("outcome", Outcome),
        ("author_label", AuthorLabel),
        ("draft_status", DraftStatus),
        ("role", DeptRole),
        ("role", GlobalRole),
    ],
)
def test_every_domain_value_has_a_message(texts: Texts, prefix: str, values: Any) -> None:
    for value in values:
        label = texts.t(f"{prefix}.{value.value}")
        assert label and "{" not in label


def test_button_labels_are_short(texts: Texts) -> None:
    for action in Action:
        assert len(texts.t(f"action.{action.value}")) <= 20


def test_russian_button_labels() -> None:
    ru = texts_for(DEFAULT_TEMPLATES_DIR, "ru")
    assert [ru.t(f"action.{a.value}") for a in Action] == [
        "Взять",
        "Отпустить",
        "Черновик",
        "Шаблон",
        "Одобрить",
        "На доработку",
        "Отклонить",
        "Опубликовать",
        "Опубликовано",
        "Эскалировать",
        "Передать",
        "Не отвечаем",
        "Закрыть",
        "Переоткрыть",
        "Результат показан",
        "Ещё не решено",
        "Ждём автора",
        "Автор ответил",
        "Дополнить ответ",
        "Исправить ответ",
        "Коды",
        "Приоритет",
        "Назначить",
    ]


def test_every_domain_error_has_a_message() -> None:
    codes = {cls.code for cls in lifecycle.DomainError.__subclasses__()}
    assert codes <= set(ERROR_CODES)
    assert {f"error.{code}" for code in ERROR_CODES} <= required_keys()


@pytest.mark.parametrize(
    ("code", "params"),
    [
        ("invalid_state", {"action": Action.APPROVE, "state": CaseState.NEW}),
        ("no_right", {"action": "approve", "department_name": "ЖКХ"}),
        ("no_right", {"action": "forget", "department_name": None}),
        ("self_review", {"version": 2}),
        ("wrong_tier", {"version": 2, "tier": 1, "role": "department"}),
        ("reviewed_twice", {"version": 2, "tier": 2}),
        ("not_assignee", {"assignee_name": "Иван Иванов"}),
        ("not_assignee", {"assignee_name": None}),
        ("missing_input", {"field": "note"}),
        ("missing_input", {"field": "something_new"}),
        ("invalid_input", {"field": "text", "limit": 4000}),
        ("invalid_input", {"field": "department", "limit": None}),
        ("stale", {"expected": 3, "actual": 5}),
        ("unknown_case", {"case_id": 77}),
    ],
)
def test_error_messages_render_with_lifecycle_params(
    texts: Texts, code: str, params: dict[str, Any]
) -> None:
    message = texts.t(f"error.{code}", **params)
    assert message and "None" not in message and "{{" not in message


def test_error_messages_name_values(texts: Texts) -> None:
    message = texts.t("error.invalid_state", action="approve", state="new")
    assert texts.t("action.approve") in message and texts.t("state.new") in message
    assert "4000" in texts.t("error.invalid_input", field="text", limit=4000)


def test_startup_lines(texts: Texts) -> None:
    no_transport = texts.t("startup.no_transport")
    for name in (
        "telegram.token",
        "OTKLIK_TELEGRAM_TOKEN",
        "matrix.homeserver",
        "matrix.user_id",
        "matrix.access_token",
        "OTKLIK_MATRIX_TOKEN",
    ):
        assert name in no_transport
    ready = texts.t("startup.ready", transports="telegram, matrix", listen="0.0.0.0:8080")
    assert "telegram, matrix" in ready and "0.0.0.0:8080" in ready


# --- the shipped templates --------------------------------------------------------------------


def test_shipped_templates_have_no_problems() -> None:
    assert check_templates(DEFAULT_TEMPLATES_DIR) == []


def test_texts_for_is_cached() -> None:
    assert texts_for(DEFAULT_TEMPLATES_DIR, "ru") is texts_for(DEFAULT_TEMPLATES_DIR, "ru")
    assert texts_for(DEFAULT_TEMPLATES_DIR, "ru") is not texts_for(DEFAULT_TEMPLATES_DIR, "en")


def test_card_renders(texts: Texts) -> None:
    card = texts.render("card.html.j2", **card_context())
    assert ("№42" if texts.locale == "ru" else "#42") in card
    assert texts.t("priority.high") in card and texts.t("state.awaiting_approval") in card
    assert "ЖКХ" in card and "vk" in card and "12.03 14:30" in card and "Ирина" in card
    assert texts.t("author_label.systematic_critic") in card
    assert "Нет горячей воды" in card and "Здравствуйте!" in card
    assert '<a href="https://vk.com/wall-1_2">' in card
    assert "2" in card  # +2 related mentions
    assert "/case 42" not in card  # the text was not cut
    assert {tag for tag, _ in tags_of(card)} <= TELEGRAM_TAGS


def test_card_variants(texts: Texts) -> None:
    plain = texts.render(
        "card.html.j2",
        **card_context(
            deadline=None,
            assignee_name=None,
            url=None,
            draft=None,
            text_cut=True,
            case={
                **card_context()["case"],
                "drill": True,
                "escalation_level": 0,
                "mention_count": 1,
            },
            author={"name": "", "labels": [], "negative_count": 0, "total_mentions": 1},
        ),
    )
    assert "/case 42" in plain
    assert "🧪" in plain
    assert "<a " not in plain
    # text_cut and moved_to are optional: bot.messages.views does not always send them.
    context = card_context(moved_to="Транспорт")
    del context["text_cut"]
    moved = texts.render("card.html.j2", **context)
    assert "Транспорт" in moved


def test_card_escapes_hostile_input(texts: Texts) -> None:
    card = texts.render(
        "card.html.j2",
        **card_context(
            text=HOSTILE,
            author={"name": HOSTILE, "labels": [], "negative_count": 0, "total_mentions": 0},
            department_name='"&"',
            draft={"version": 1, "status": "pending", "text": HOSTILE},
            url='https://example.org/?q="><script>',
        ),
    )
    assert "<script>" not in card and "<b>bold</b>" not in card
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in card
    assert "&#34;&amp;&#34;" in card
    assert {tag for tag, _ in tags_of(card)} <= TELEGRAM_TAGS
    hrefs = [dict(attrs)["href"] for tag, attrs in tags_of(card) if tag == "a"]
    assert hrefs == ['https://example.org/?q="><script>']  # an attribute value, still escaped


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,x", "vk.com/x", ""])
def test_card_shows_only_web_links(texts: Texts, url: str) -> None:
    card = texts.render("card.html.j2", **card_context(url=url))
    assert "<a " not in card


def test_case_thread_renders(texts: Texts) -> None:
    context = card_context(text=HOSTILE)
    del context["draft"], context["text_cut"]
    page = texts.render(
        "case_thread.html.j2",
        **context,
        drafts=[
            {
                "version": 1,
                "status": "changes_requested",
                "author_name": "Ирина",
                "text": "v1",
                "note": "<i>мягче</i>",
            },
            {"version": 2, "status": "pending", "author_name": "Ирина", "text": "v2", "note": None},
        ],
        events=[
            {"at": "12.03 10:00", "actor": "system", "kind": "created"},
            {"at": "12.03 10:05", "actor": "Ирина", "kind": "take"},
            {"at": "12.03 11:05", "actor": "system", "kind": "sla_breached"},
        ],
    )
    assert texts.t("event.created") in page and texts.t("event.take") in page
    assert "sla_breached" in page  # unknown kinds fall back to the raw value
    assert "&lt;i&gt;мягче&lt;/i&gt;" in page and "<script>" not in page
    assert {tag for tag, _ in tags_of(page)} <= TELEGRAM_TAGS


def test_help_and_status_render(texts: Texts) -> None:
    help_text = texts.render("help.html.j2")
    assert "/case" in help_text and texts.t("action.take") in help_text
    status = texts.render(
        "status.html.j2",
        generated_at="12.03 15:00",
        departments=[
            {"name": "<ЖКХ>", "open": 5, "overdue": 1, "at_risk": 2, "oldest_waiting": "3 ч"},
            {"name": "Транспорт", "open": 1, "overdue": 0, "at_risk": 0, "oldest_waiting": None},
        ],
    )
    assert "&lt;ЖКХ&gt;" in status and "6" in status and "3 ч" in status
    assert {tag for tag, _ in tags_of(status + help_text)} <= TELEGRAM_TAGS
    assert texts.render("status.html.j2", generated_at="now", departments=[])


# --- strictness and the sandbox ---------------------------------------------------------------


def test_unknown_key_names_key_and_locale(texts: Texts) -> None:
    with pytest.raises(KeyError, match=rf"no message 'action\.fly' in locale '{texts.locale}'"):
        texts.t("action.fly")
    assert texts.t_or("event.sla_breached", "sla_breached") == "sla_breached"


def test_missing_variable_raises(texts: Texts) -> None:
    with pytest.raises(UndefinedError):
        texts.t("error.no_right", action="take")
    context = card_context()
    del context["deadline"]
    with pytest.raises(UndefinedError):
        texts.render("card.html.j2", **context)


def test_missing_template_raises(texts: Texts) -> None:
    with pytest.raises(TemplateNotFound):
        texts.render("nope.html.j2")


@pytest.fixture
def templates_copy(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    shutil.copytree(DEFAULT_TEMPLATES_DIR, target)
    return target


def _append(file: Path, text: str) -> None:
    file.write_text(file.read_text(encoding="utf-8") + text, encoding="utf-8")


def test_sandbox_blocks_unsafe_attributes(templates_copy: Path) -> None:
    for locale in LOCALES:
        _append(templates_copy / locale / "messages.yaml", "evil: \"{{ ''.__class__.__mro__ }}\"\n")
        (templates_copy / locale / "evil.html.j2").write_text(
            "{{ t.__globals__ }}", encoding="utf-8"
        )
    texts = Texts(templates_copy, "ru")
    with pytest.raises(SecurityError):
        texts.t("evil")
    with pytest.raises(SecurityError):
        texts.render("evil.html.j2")


def test_autoescape_only_for_html(templates_copy: Path) -> None:
    for locale in LOCALES:
        (templates_copy / locale / "note.txt.j2").write_text("{{ text }}", encoding="utf-8")
        (templates_copy / locale / "note.html.j2").write_text("{{ text }}", encoding="utf-8")
    texts = Texts(templates_copy, "en")
    assert texts.render("note.txt.j2", text="<b>&</b>") == "<b>&</b>"
    assert texts.render("note.html.j2", text="<b>&</b>") == "&lt;b&gt;&amp;&lt;/b&gt;"
    assert texts.t("error.unknown_case", case_id="<1>") == "Case #<1> not found."
    assert check_templates(templates_copy) == []


def test_nested_and_dotted_keys_are_the_same(templates_copy: Path) -> None:
    _append(templates_copy / "en" / "messages.yaml", '"extra.one": One\nextra2:\n  two: Two\n')
    texts = Texts(templates_copy, "en")
    assert (texts.t("extra.one"), texts.t("extra2.two")) == ("One", "Two")


def test_check_templates_finds_differences(templates_copy: Path) -> None:
    _append(templates_copy / "ru" / "messages.yaml", "only_ru: Только здесь\n")
    _append(templates_copy / "en" / "messages.yaml", 'typo: "{{ case_idd }}"\nbroken: "{% if %}"\n')
    _append(templates_copy / "ru" / "messages.yaml", 'typo: "{{ case_id }}"\n')
    (templates_copy / "en" / "digest.txt.j2").write_text("{% for %}", encoding="utf-8")
    ru_messages = templates_copy / "ru" / "messages.yaml"
    ru_messages.write_text(
        ru_messages.read_text(encoding="utf-8").replace("  take: Взять\n", ""), encoding="utf-8"
    )
    problems = "\n".join(check_templates(templates_copy))
    assert "ru/messages.yaml: missing required key 'action.take'" in problems
    assert "en/messages.yaml: missing key 'only_ru' (in ru)" in problems
    assert "ru/messages.yaml: missing key 'broken' (in en)" in problems
    assert "en/messages.yaml: broken: template syntax error" in problems
    assert "ru: missing template 'digest.txt.j2' (in en)" in problems
    assert "digest.txt.j2: line 1:" in problems
    assert "typo: locales use different parameters (en: case_idd; ru: case_id)" in problems


def test_check_templates_missing_locale(templates_copy: Path) -> None:
    shutil.rmtree(templates_copy / "en")
    assert any("locale 'en' is missing" in p for p in check_templates(templates_copy))
    with pytest.raises(TextsError, match="no templates for locale 'en'"):
        Texts(templates_copy, "en")


def test_bad_messages_file_stops_texts(templates_copy: Path) -> None:
    _append(templates_copy / "ru" / "messages.yaml", 'yes: да\nbroken: "{% if %}"\n')
    with pytest.raises(TextsError) as caught:
        Texts(templates_copy, "ru")
    problems = "\n".join(caught.value.problems)
    assert "True: keys must be text (quote it)" in problems
    assert "broken: template syntax error" in problems
    (templates_copy / "en" / "messages.yaml").write_text("a: [\n", encoding="utf-8")
    with pytest.raises(TextsError, match="invalid YAML at line"):
        Texts(templates_copy, "en")
