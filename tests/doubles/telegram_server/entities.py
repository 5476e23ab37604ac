"""Text as telegram-bot-api treats it: UTF-16 lengths, link checks, entity order, the
clean-up and trimming of every text (fix_text), automatic entities, explicit `entities` JSON.

The parse modes build on this: next, html_parser.py.
"""

from __future__ import annotations

import bisect
import json
import re
from typing import Any

from tests.doubles.telegram_server.protocol import bad
from tests.doubles.telegram_server.state import User


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: Telegram counts offsets and limits this way."""
    return len(text.encode("utf-16-le")) // 2


class ParseError(Exception):
    """A parse-mode failure; reported as "can't parse entities: <message>"."""


_URL_PART_OK = frozenset(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_!$,~*'();&+="
)
HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


def _check_url_part(part: str, name: str, allow_colon: bool) -> None:
    raw = part.encode()
    i = 0
    while i < len(raw):
        c = raw[i]
        if c in _URL_PART_OK or (allow_colon and c == ord(":")) or c >= 128:
            i += 1
            continue
        if c == ord("%"):
            if i + 2 < len(raw) + 0 and raw[i + 1] in HEX_DIGITS and raw[i + 2] in HEX_DIGITS:
                i += 3
                continue
            raise ValueError(f"Wrong percent-encoded symbol in URL {name}")
        raise ValueError(f"Disallowed character in URL {name}")


def check_link(url: str, *, https_only: bool = False) -> str:
    """tdlib's LinkManager::check_link: the normalised link, or ValueError with its message."""
    link = url
    is_tg = link[:3].lower() == "tg:"
    if is_tg:
        link = link[3:]
        if link.startswith("//"):
            link = link[2:]
    # parse_url: [protocol://][userinfo@]host[:port][/path?query#fragment]
    m = re.match(r"[^:/?#@\[\]]*", link)
    assert m is not None
    protocol = "http"
    rest = link
    if link[m.end() : m.end() + 3] == "://":
        protocol = m.group(0).lower()
        if protocol not in ("http", "https"):
            raise ValueError("Unsupported URL protocol")
        rest = link[m.end() + 3 :]
    cut = re.search(r"[/?#]", rest)
    authority, query = (rest[: cut.start()], rest[cut.start() :]) if cut else (rest, "")
    userinfo = ""
    if "@" in authority:
        userinfo, authority = authority.rsplit("@", 1)
    host, port = authority, 0
    if ":" in authority:
        host, port_text = authority.rsplit(":", 1)
        port = int(port_text) if port_text.isdigit() else -1
        if not 0 < port <= 65535:
            raise ValueError("Wrong port number specified in the URL")
    if not host:
        raise ValueError("URL host is empty")
    if host == ".":
        raise ValueError("Host is invalid")
    host = host.lower()
    _check_url_part(host, "host", False)
    _check_url_part(userinfo, "userinfo", True)
    query = query.rstrip(" \t\r\n")
    if not query:
        query = "/"
    if not query.startswith("/"):
        query = "/" + query
    query = "".join(f"%{ord(c):02X}" if ord(c) <= 0x20 else c for c in query)
    if https_only and (protocol != "https" or is_tg):
        raise ValueError("Only HTTPS links are allowed")
    if is_tg:
        if protocol == "https" or userinfo or port:
            raise ValueError("Wrong tg URL")
        if any(not (ch.isascii() and (ch.isalnum() or ch in "-_")) for ch in host):
            raise ValueError("Unallowed characters in URL host")
        if query.startswith("/?"):
            query = query[1:]
        return f"tg://{host}{query}"
    if "." not in host:
        raise ValueError("Wrong HTTP URL")
    auth = f"{userinfo}@" if userinfo else ""
    return f"{protocol}://{auth}{host}{f':{port}' if port else ''}{query}"


def _link_user_id(url: str) -> int | None:
    m = re.fullmatch(r"(?i)tg:(?://)?user\?id=(\d+)", url)
    return int(m.group(1)) if m else None


SPACES = frozenset(b" \t\r\n\x0b\x0c\x00")  # tdlib's is_space, NUL included (C strings)


PAD = b"\x00" * 16


def link_entity(
    url: str, offset: int, length: int, users: dict[int, User]
) -> dict[str, Any] | None:
    user_id = _link_user_id(url)
    if user_id is not None and user_id in users:
        return {
            "type": "text_mention",
            "offset": offset,
            "length": length,
            "user": users[user_id].to_api(),
        }
    try:
        checked = check_link(url)
    except ValueError:
        return None  # tdlib silently drops links it cannot use
    return {"type": "text_link", "offset": offset, "length": length, "url": checked}


# tdlib's MessageEntity ordering: offset, then longer first, then this priority.
_PRIORITY = {
    "blockquote": 0,
    "expandable_blockquote": 0,
    "pre": 11,
    "code": 20,
    "text_link": 49,
    "text_mention": 49,
    "bold": 90,
    "italic": 91,
    "underline": 92,
    "strikethrough": 93,
    "spoiler": 94,
    "custom_emoji": 99,
}


def sort_entities(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(entities, key=lambda e: (e["offset"], -e["length"], _PRIORITY.get(e["type"], 50)))


_USER_ENTITY_TYPES = frozenset(
    {
        "bold",
        "italic",
        "underline",
        "strikethrough",
        "spoiler",
        "code",
        "pre",
        "text_link",
        "text_mention",
        "custom_emoji",
        "blockquote",
        "expandable_blockquote",
        "date_time",
    }
)
_AUTO_ENTITY_TYPES = frozenset(
    {
        "mention",
        "hashtag",
        "cashtag",
        "bot_command",
        "url",
        "email",
        "phone_number",
        "bank_card_number",
    }
)
# Automatic entities never overlap these (tdlib merge_new_entities).
_OPAQUE = frozenset({"code", "pre", "text_link", "text_mention", "custom_emoji", "date_time"})


def _char_to_utf16(text: str) -> list[int]:
    table = [0]
    for ch in text:
        table.append(table[-1] + (2 if ord(ch) > 0xFFFF else 1))
    return table


_TLDS = (
    "com|org|net|ru|io|dev|ai|me|info|biz|edu|gov|co|uk|de|fr|app|xyz|su|ua|by|kz|tech|site"
    "|online|store|ly|gg|tv|us|eu|рф"
)
_AUTO_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("email", re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}")),
    ("url", re.compile(r"(?i)\b(?:https?|ftp|tg)://[^\s<>\"']+")),
    (
        "url",
        re.compile(
            rf"(?i)(?<![\w@./-])(?:[a-z0-9-]+\.)+(?:{_TLDS})(?::\d{{1,5}})?(?:/[^\s<>\"']*)?(?!\w)"
        ),
    ),
    ("mention", re.compile(r"(?<![\w@])@[A-Za-z0-9_]{3,32}(?![\w])")),
    ("hashtag", re.compile(r"(?<![\w#])#(?!\d+(?!\w))\w{1,256}")),
    ("cashtag", re.compile(r"(?<![\w$])\$[A-Z]{1,8}(?![\w])")),
    ("bot_command", re.compile(r"(?<![\w/<>])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?")),
]


def find_entities(text: str, existing: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entities Telegram detects by itself (an approximation of tdlib's find_entities)."""
    table = _char_to_utf16(text)
    taken: list[tuple[int, int]] = [
        (e["offset"], e["offset"] + e["length"]) for e in existing if e["type"] in _OPAQUE
    ]
    found: list[dict[str, Any]] = []
    for kind, pattern in _AUTO_PATTERNS:
        for m in pattern.finditer(text):
            start, end = m.start(), m.end()
            if kind == "url":
                while end > start and text[end - 1] in ".,:;!?)]'\"»":
                    end -= 1
            a, b = table[start], table[end]
            if b <= a or any(a < y and x < b for x, y in taken):
                continue
            taken.append((a, b))
            found.append({"type": kind, "offset": a, "length": b - a})
    return found


# clean_input_string: '\r', U+2028..U+202E and three "vertical line" combining marks go;
# other control characters but the newline become spaces.
_CLEAN = {o: None for o in (0x0D, 0x0333, 0x033F, 0x030A, *range(0x2028, 0x202F))} | {
    o: " " for o in range(32) if o not in (0x0A, 0x0D)
}
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def _cleaned_offset(text: str, astral: list[int], offset: int) -> int:
    """Where a UTF-16 offset of `text` lands once it is cleaned (inside a character: its
    start)."""
    index = offset - bisect.bisect_left(astral, offset)
    return utf16_len(text[:index].translate(_CLEAN))


def fix_text(
    text: str, entities: list[dict[str, Any]], *, allow_empty: bool, detect: bool = True
) -> tuple[str, list[dict[str, Any]]]:
    """tdlib's fix_formatted_text: clean control characters, trim, add automatic entities.

    Raises ApiError "text must be non-empty" when nothing but whitespace is left.
    """
    entities = [dict(e) for e in entities if e["length"] > 0]
    # clean_input_string_with_entities: map every old UTF-16 offset to the new one
    cleaned = text.translate(_CLEAN)
    if cleaned != text and entities:
        # UTF-16 offset of each astral character (two units), to find an offset's character.
        astral = [m.start() + n for n, m in enumerate(_ASTRAL.finditer(text))]
        for e in entities:
            start, end = (
                _cleaned_offset(text, astral, x) for x in (e["offset"], e["offset"] + e["length"])
            )
            e["offset"], e["length"] = start, end - start
    entities = [e for e in entities if e["length"] > 0]
    stripped_right = cleaned.rstrip(" \n")
    if not stripped_right:
        if allow_empty:
            return "", []
        raise bad("text must be non-empty")
    end16 = utf16_len(stripped_right)
    kept: list[dict[str, Any]] = []
    for e in entities:
        if e["offset"] >= end16:
            continue
        e["length"] = min(e["length"], end16 - e["offset"])
        kept.append(e)
    first_entity = min((e["offset"] for e in kept), default=end16)
    lead = len(stripped_right) - len(stripped_right.lstrip(" \n"))
    lead = min(lead, first_entity)  # whitespace is trimmed only before the first entity
    result = stripped_right[lead:]
    for e in kept:
        e["offset"] -= lead
    if detect:
        kept.extend(find_entities(result, kept))
    return result, sort_entities(kept)


def parse_explicit_entities(raw: str, users: dict[int, User]) -> list[dict[str, Any]]:
    """The `entities` / `caption_entities` parameter, checked like the Bot API does."""
    try:
        value = json.loads(raw)
    except ValueError:
        raise bad("can't parse entities JSON object") from None
    if not isinstance(value, list):
        raise bad('field "entities" must be an Array')
    result: list[dict[str, Any]] = []
    for item in value:
        if not isinstance(item, dict):
            raise bad("can't parse MessageEntity: expected an Object")
        kind = item.get("type")
        for key in ("type", "offset", "length"):
            if key not in item:
                raise bad(f"can't parse MessageEntity: Can't find field \"{key}\"")
        known = _USER_ENTITY_TYPES | _AUTO_ENTITY_TYPES
        if kind not in known:
            raise bad("can't parse MessageEntity: Unsupported type specified")
        offset, length = item["offset"], item["length"]
        if not isinstance(offset, int) or not 0 <= offset <= 1_000_000:
            raise bad(f"receive an entity with incorrect offset {offset}")
        if not isinstance(length, int) or not 0 <= length <= 1_000_000:
            raise bad(f"receive an entity with incorrect length {length}")
        entity: dict[str, Any] = {"type": kind, "offset": offset, "length": length}
        if kind == "text_link":
            if "url" not in item:
                raise bad("can't parse MessageEntity: Can't find field \"url\"")
            try:
                entity["url"] = check_link(str(item["url"]))
            except ValueError as exc:
                raise bad(f"entity URL '{item['url']}' is invalid: {exc}") from None
        elif kind == "text_mention":
            user = item.get("user")
            if not isinstance(user, dict):
                raise bad("can't parse MessageEntity: Can't find field \"user\"")
            if user.get("id") not in users:
                raise bad("user not found")
            entity["user"] = users[user["id"]].to_api()
        elif kind == "custom_emoji":
            if "custom_emoji_id" not in item:
                raise bad("can't parse MessageEntity: Can't find field \"custom_emoji_id\"")
            emoji_id = str(item["custom_emoji_id"])
            if not emoji_id.isdigit() or int(emoji_id) >= 2**63:
                raise bad(
                    'can\'t parse MessageEntity: Field "custom_emoji_id" must be a valid Number'
                )
            entity["custom_emoji_id"] = emoji_id
        elif kind == "pre" and item.get("language"):
            entity["language"] = str(item["language"])
        if kind in _USER_ENTITY_TYPES:  # automatic ones are found again anyway
            result.append(entity)
    return sort_entities(result)


def check_entity_bounds(text: str, entities: list[dict[str, Any]]) -> None:
    total = utf16_len(text)
    for e in entities:
        if e["offset"] > total or (e["offset"] == total and e["length"] > 0):
            raise bad(f"entity begins after the end of the text at UTF-16 offset {e['offset']}")
        if e["offset"] + e["length"] > total:
            raise bad(
                f"entity beginning at UTF-16 offset {e['offset']} ends after the end of the text "
                f"at UTF-16 offset {e['offset'] + e['length']}"
            )
