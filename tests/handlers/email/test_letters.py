"""Letters as mentions: threading by Message-ID, HTML made safe text, attachments listed,
automatic mail left alone, hostile headers bounded."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

from handlers.email.letters import html_to_text, letter_mention, parse_letter, valid_sender

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


def _letter(**headers: str) -> EmailMessage:
    letter = EmailMessage()
    letter["From"] = "Пётр <Petr@Mail.Example>"
    letter["To"] = "city@city.example"
    letter["Subject"] = "Нет воды"
    for name, value in headers.items():
        letter[name.replace("_", "-")] = value
    letter.set_content("Третий день нет воды")
    return letter


def test_a_new_letter_is_its_own_thread_and_a_reply_joins_the_first_letters() -> None:
    first = parse_letter(_letter(Message_ID="<a1@mail.example>").as_bytes())
    assert (first.message_id, first.thread_root) == ("a1@mail.example", "a1@mail.example")
    assert first.sender == "petr@mail.example" and first.sender_name == "Пётр"
    mention = letter_mention(first, "uid:1:101", NOW)
    assert mention.source == "email" and mention.external_id == "a1@mail.example"
    assert mention.text == "Нет воды\n\nТретий день нет воды"  # the subject first
    assert mention.author.channel == "email"
    assert mention.story_id == "a1@mail.example"

    reply = parse_letter(
        _letter(
            Message_ID="<a3@mail.example>",
            In_Reply_To="<otklik.x@city.example>",
            References="<a1@mail.example> <otklik.x@city.example>",
        ).as_bytes()
    )
    assert letter_mention(reply, "uid:1:102", NOW).story_id == "a1@mail.example"
    # Newest first: the letter it answers, then the rest of the thread.
    assert reply.replies_to == ("otklik.x@city.example", "a1@mail.example")
    # The case's own story wins when the reader knows it (a reply to an answer of ours).
    assert letter_mention(reply, "uid:1:102", NOW, story="F-1").story_id == "F-1"


def test_a_letter_without_message_id_is_kept_once_by_its_uid() -> None:
    letter = _letter()
    del letter["Message-ID"]
    parsed = parse_letter(letter.as_bytes())
    assert parsed.message_id is None
    assert letter_mention(parsed, "uid:7:42", NOW).external_id == "uid:7:42"


def test_html_is_text_without_scripts_styles_or_markup() -> None:
    html = (
        "<html><head><title>T</title><style>p{}</style><script>alert(1)</script></head>"
        "<body><p>Яма &amp; лужа</p><SCRIPT>steal()</SCRIPT><br/>Улица<iframe>x</iframe>"
        "<script/>после</body></html>"
    )
    assert html_to_text(html) == "Яма & лужа\n\nУлицапосле"  # the frame's "x" is gone too


def test_plain_text_is_preferred_and_attachments_are_listed() -> None:
    letter = _letter(Message_ID="<b1@mail.example>")
    letter.add_alternative("<p>HTML-ВЕРСИЯ</p>", subtype="html")
    letter.add_attachment(b"x" * 1234, maintype="image", subtype="jpeg", filename="яма.jpg")
    parsed = parse_letter(letter.as_bytes())
    assert parsed.body == "Третий день нет воды"
    assert [(a.kind.value, a.name, a.size, a.ref) for a in parsed.attachments] == [
        ("photo", "яма.jpg", 1234, "email:1")
    ]


def test_automatic_mail_and_letters_without_a_sender_are_not_mentions() -> None:
    auto = parse_letter(_letter(Auto_Submitted="auto-replied").as_bytes())
    assert auto.automatic
    nobody = _letter()
    nobody.replace_header("From", "undisclosed-recipients:;")
    assert not valid_sender(parse_letter(nobody.as_bytes()))


def test_hostile_headers_are_bounded() -> None:
    long_id = "x" * 900 + "@mail.example"
    letter = _letter(Message_ID=f"<{long_id}>")
    letter.replace_header("Subject", "S" * 5000)
    parsed = parse_letter(letter.as_bytes())
    assert parsed.message_id is not None and parsed.message_id.startswith("sha256:")
    assert len(parsed.subject) <= 512
    raw = b"From: a@b.example\r\nSubject: \x00bad\r\nMessage-ID: <c@d>\r\n\r\n\x00body\r\n"
    hostile = parse_letter(raw)
    assert "\x00" not in hostile.subject and "\x00" not in hostile.body
    # Headers the stdlib's header registry fails on are read from their raw text.
    broken = parse_letter(b"From: <>\r\nMessage-ID: <<<>>>\r\nReferences: < >\r\n\r\nhi\r\n")
    assert not valid_sender(broken) and broken.body == "hi"
