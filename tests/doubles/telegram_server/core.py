"""A Telegram Bot API test server that the real aiogram `Bot` talks to over HTTP.

It follows the published Bot API (https://core.telegram.org/bots/api) and, where the docs are
silent, what the reference implementation (tdlib + telegram-bot-api) does: the same error codes
and descriptions, the HTML parser's exact rules, the text clean-up and trimming, the limits
(4096/1024 UTF-16 code units, 1-64 byte callback data, 100 buttons), privacy mode, long polling
and flood control. A bot that passes against it should therefore pass against Telegram.

    server = TelegramServer(Limits(time_scale=10))
    await server.start()
    info = server.add_bot("123456:secret", "otklik_bot")
    bot = Bot(info.token, session=AiohttpSession(
        api=TelegramAPIServer.from_base(server.api_base)))
    forum = server.create_chat("supergroup", "Ops", is_forum=True)
    topic = server.create_topic(forum.id, "Roads")
    ann = server.create_user("Ann", "ann")
    server.send_user_message(forum.id, ann, "/status", thread_id=topic)  # -> an update
    await server.wait_for(lambda: len(server.messages(forum.id, topic)) == 2)

Tests act as people through plain methods (`send_user_message`, `press_button`,
`post_to_channel`, ...) and read the state back (`messages`, `history`, `stats`, `wait_for`,
`wait_answer`). Everything is in memory and runs on the test's event loop, so state changes
need no locks; every change wakes the waiters, nothing polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import re
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from aiohttp import web

# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error the server answers with, exactly as Telegram words it."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after


def _bad(message: str) -> ApiError:
    return ApiError(400, f"Bad Request: {message}")


def _forbidden(message: str) -> ApiError:
    return ApiError(403, f"Forbidden: {message}")


QUERY_INVALID = "query is too old and response timeout expired or query ID is invalid"
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
TELEGRAM_SERVICE_USER_ID = 777000  # "Telegram": the sender of automatic forwards

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_CALLBACK_ANSWER = 200
MAX_BUTTONS = 100
MAX_PHOTO_BYTES = 10 * 1024 * 1024

# Update types a bot gets when it did not choose (Bot API: "all except chat_member,
# message_reaction and message_reaction_count").
_NOT_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


# --------------------------------------------------------------------------------------------
# Text: UTF-16 lengths, links, parse modes, clean-up, automatic entities
# --------------------------------------------------------------------------------------------


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: Telegram counts offsets and limits this way."""
    return len(text.encode("utf-16-le")) // 2


class ParseError(Exception):
    """A parse-mode failure; reported as "can't parse entities: <message>"."""


def _ascii_lower(data: bytes) -> str:
    return data.decode("utf-8", "replace").lower()


_URL_PART_OK = frozenset(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_!$,~*'();&+="
)
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _check_url_part(part: str, name: str, allow_colon: bool) -> None:
    raw = part.encode()
    i = 0
    while i < len(raw):
        c = raw[i]
        if c in _URL_PART_OK or (allow_colon and c == ord(":")) or c >= 128:
            i += 1
            continue
        if c == ord("%"):
            if i + 2 < len(raw) + 0 and raw[i + 1] in _HEX and raw[i + 2] in _HEX:
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


_TAGS = frozenset(
    {"a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins", "tg-spoiler", "tg-emoji"}
    | {"tg-time", "span", "pre", "code", "blockquote"}
)
_SPACES = frozenset(b" \t\r\n\x0b\x0c\x00")  # tdlib's is_space, NUL included (C strings)
_NAMED_ENTITIES = {b"lt": 0x3C, b"gt": 0x3E, b"amp": 0x26, b"quot": 0x22}
_PAD = b"\x00" * 16


def _decode_html_entity(d: bytes, pos: int) -> tuple[int, int]:
    """tdlib's decode_html_entity: (code point, next position) or (0, pos) when not an entity."""
    end = pos + 1
    res = 0
    if d[pos + 1] == ord("#"):
        end += 1
        if d[pos + 2] == ord("x"):
            end += 1
            while d[end] in _HEX:
                res = res * 16 + int(chr(d[end]), 16)
                end += 1
        else:
            while 0x30 <= d[end] <= 0x39:
                res = res * 10 + d[end] - 0x30
                end += 1
        if res == 0 or res >= 0x10FFFF or end - pos >= 10:
            return 0, pos
    else:
        while chr(d[end]).isascii() and chr(d[end]).isalpha():
            end += 1
        res = _NAMED_ENTITIES.get(d[pos + 1 : end], 0)
        if res == 0:
            return 0, pos
    if d[end] == ord(";"):
        end += 1
    return res, end


@dataclass
class _Open:
    tag: str
    argument: str
    date: int
    offset: int  # UTF-16 offset in the result
    begin: int  # byte offset in the result


def parse_html(
    text: str, *, strict: bool, users: dict[int, User]
) -> tuple[str, list[dict[str, Any]]]:
    """Port of tdlib's parse_html (the Bot API's HTML parse mode), byte offsets and all.

    With `strict`, an `&` that starts no HTML entity is rejected (the Bot API docs require
    `&amp;`); tdlib itself would keep such an `&` as a literal character.
    """
    raw = text.encode("utf-8")
    n = len(raw)
    d = raw + _PAD
    out = bytearray()
    utf16 = 0
    stack: list[_Open] = []
    entities: list[dict[str, Any]] = []
    i = 0
    while i < n:
        c = d[i]
        if c == ord("&"):
            code, after = _decode_html_entity(d, i)
            if code:
                if 0xD800 <= code <= 0xDFFF:
                    raise ParseError(
                        "Text contains invalid Unicode characters after decoding HTML entities, "
                        "check for unmatched surrogate code units"
                    )
                utf16 += 1 + (code > 0xFFFF)
                out += chr(code).encode()
                i = after
                continue
            if strict:
                raise ParseError(
                    f'Character "&" at byte offset {i} starts no HTML entity; '
                    'it must be escaped as "&amp;"'
                )
        if c != ord("<"):
            if c & 0xC0 != 0x80:
                utf16 += 1 + (c >= 0xF0)
            out.append(c)
            i += 1
            continue
        begin = i
        i += 1
        if d[i] != ord("/"):
            while d[i] not in _SPACES and d[i] != ord(">"):
                i += 1
            if d[i] == 0:
                raise ParseError(f"Unclosed start tag at byte offset {begin}")
            tag = _ascii_lower(d[begin + 1 : i])
            if tag not in _TAGS:
                raise ParseError(f'Unsupported start tag "{tag}" at byte offset {begin}')
            argument = ""
            date = 0
            while d[i] != ord(">"):
                while d[i] != 0 and d[i] in _SPACES:
                    i += 1
                if d[i] == ord(">"):
                    break
                attr_begin = i
                while d[i] not in _SPACES and d[i] not in b"=>/\"'":
                    i += 1
                attr = bytes(d[attr_begin:i])
                if not attr:
                    raise ParseError(
                        f'Empty attribute name in the tag "{tag}" at byte offset {begin}'
                    )
                while d[i] != 0 and d[i] in _SPACES:
                    i += 1
                if d[i] != ord("="):
                    if d[i] == 0:
                        raise ParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
                    if tag == "blockquote" and attr == b"expandable":
                        argument = "1"
                    continue
                i += 1
                while d[i] != 0 and d[i] in _SPACES:
                    i += 1
                if d[i] == 0:
                    raise ParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
                if d[i] not in b"'\"":
                    token_begin = i
                    while chr(d[i]).isascii() and (chr(d[i]).isalnum() or d[i] in b".-"):
                        i += 1
                    value = _ascii_lower(d[token_begin:i])
                    if d[i] not in _SPACES and d[i] != ord(">"):
                        raise ParseError(
                            f"Unexpected end of name token at byte offset {token_begin}"
                        )
                else:
                    quote = d[i]
                    i += 1
                    buf = bytearray()
                    while d[i] != quote and d[i] != 0:
                        if d[i] == ord("&"):
                            code, after = _decode_html_entity(d, i)
                            if code:
                                buf += chr(code).encode("utf-8", "surrogatepass")
                                i = after
                                continue
                        buf.append(d[i])
                        i += 1
                    if d[i] == quote:
                        i += 1
                    value = buf.decode("utf-8", "replace")
                if d[i] == 0:
                    raise ParseError(f"Unclosed start tag at byte offset {begin}")
                if tag == "a" and attr == b"href":
                    argument = value
                elif tag == "code" and attr == b"class" and value.startswith("language-"):
                    argument = value[9:]
                elif tag == "span" and attr == b"class" and value.startswith("tg-"):
                    argument = value[3:]
                elif tag == "tg-emoji" and attr == b"emoji-id":
                    argument = value
                elif tag == "blockquote" and attr == b"expandable":
                    argument = "1"
                elif tag == "tg-time" and attr == b"unix":
                    date = int(value) if value.isdigit() else 0
                elif tag == "tg-time" and attr == b"format":
                    argument = value
            if tag == "span" and argument != "spoiler":
                raise ParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {begin}')
            stack.append(_Open(tag, argument, date, utf16, len(out)))
        else:
            if not stack:
                raise ParseError(f"Unexpected end tag at byte offset {begin}")
            while d[i] not in _SPACES and d[i] != ord(">"):
                i += 1
            end_tag = _ascii_lower(d[begin + 2 : i])
            while d[i] in _SPACES and d[i] != 0:
                i += 1
            if d[i] != ord(">"):
                raise ParseError(f"Unclosed end tag at byte offset {begin}")
            top = stack[-1]
            if end_tag and end_tag != top.tag:
                raise ParseError(
                    f'Unmatched end tag at byte offset {begin}, expected "</{top.tag}>", '
                    f'found "</{end_tag}>"'
                )
            if utf16 > top.offset:
                _close_html_entity(top, utf16, out, entities, users)
            stack.pop()
        i += 1
    if stack:
        raise ParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].tag}"')
    for entity in entities:
        if entity["type"] == "code":
            entity.pop("language", None)
    return out.decode("utf-8"), sort_entities(entities)


def _close_html_entity(
    top: _Open, utf16: int, out: bytearray, entities: list[dict[str, Any]], users: dict[int, User]
) -> None:
    offset, length, tag = top.offset, utf16 - top.offset, top.tag
    simple = {
        "i": "italic",
        "em": "italic",
        "b": "bold",
        "strong": "bold",
        "s": "strikethrough",
        "strike": "strikethrough",
        "del": "strikethrough",
        "u": "underline",
        "ins": "underline",
        "tg-spoiler": "spoiler",
        "span": "spoiler",
    }
    if tag in simple:
        entities.append({"type": simple[tag], "offset": offset, "length": length})
    elif tag == "tg-emoji":
        if not top.argument.isdigit() or not 0 < int(top.argument) < 2**63:
            raise ParseError("Invalid custom emoji identifier specified")
        entities.append(
            {
                "type": "custom_emoji",
                "offset": offset,
                "length": length,
                "custom_emoji_id": str(int(top.argument)),
            }
        )
    elif tag == "tg-time":
        if top.date > 0:
            entity: dict[str, Any] = {
                "type": "date_time",
                "offset": offset,
                "length": length,
                "unix_time": top.date,
            }
            if top.argument:
                entity["date_time_format"] = top.argument
            entities.append(entity)
    elif tag == "a":
        url = top.argument or bytes(out[top.begin :]).decode("utf-8", "replace")
        link = _link_entity(url, offset, length, users)
        if link is not None:
            entities.append(link)
    elif tag == "pre":
        last = entities[-1] if entities else None
        if (
            last
            and last["type"] == "code"
            and last["offset"] == offset
            and last["length"] == length
            and last.get("language")
        ):
            last["type"] = "pre"
        else:
            entities.append({"type": "pre", "offset": offset, "length": length})
    elif tag == "code":
        last = entities[-1] if entities else None
        if (
            last
            and last["type"] == "pre"
            and last["offset"] == offset
            and last["length"] == length
            and top.argument
        ):
            last["language"] = top.argument
        else:
            entity = {"type": "code", "offset": offset, "length": length}
            if top.argument:
                entity["language"] = top.argument  # dropped at the end unless inside <pre>
            entities.append(entity)
    elif tag == "blockquote":
        kind = "expandable_blockquote" if top.argument else "blockquote"
        entities.append({"type": kind, "offset": offset, "length": length})


def _link_entity(
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


_MD_RESERVED = "_*[]()~`>#+-=|{}.!"


def parse_markdown_v2(text: str, *, users: dict[int, User]) -> tuple[str, list[dict[str, Any]]]:
    """tdlib's parse_markdown_v2 (block quotations simplified to whole '>' lines)."""
    raw = text.encode("utf-8")
    n = len(raw)
    d = raw + _PAD
    out = bytearray()
    utf16 = 0
    stack: list[tuple[str, str, int, int, int]] = []  # type, argument, offset, byte offset, begin
    entities: list[dict[str, Any]] = []
    quote_start: int | None = None
    quote_expandable = False
    at_line_start = True
    i = 0
    while i < n:
        c = d[i]
        if at_line_start and not (stack and stack[-1][0] in ("code", "pre")):
            at_line_start = False
            if c == ord(">") or raw[i : i + 3] == b"**>":
                if raw[i : i + 3] == b"**>":
                    quote_expandable = True
                    i += 2
                if quote_start is None:
                    quote_start = utf16
                i += 1
                continue
            if quote_start is not None:  # the quote ends before the newline that ended it
                _close_quote(entities, quote_start, utf16 - 1, quote_expandable)
                quote_start, quote_expandable = None, False
        if c == ord("\\") and 0 < d[i + 1] <= 126:
            i += 1
            utf16 += 1
            out.append(d[i])
            i += 1
            continue
        reserved = _MD_RESERVED
        if stack and stack[-1][0] in ("code", "pre"):
            reserved = "`"
        if c >= 128 or chr(c) not in reserved:
            if c & 0xC0 != 0x80:
                utf16 += 1 + (c >= 0xF0)
            out.append(c)
            if c == ord("\n"):
                at_line_start = True
            i += 1
            continue
        if (
            quote_start is not None
            and raw[i : i + 2] == b"||"
            and (i + 2 >= n or d[i + 2] == ord("\n"))
            and not stack
        ):
            quote_expandable = True  # "||" closes an expandable quotation
            i += 2
            continue
        top = stack[-1][0] if stack else None
        closes = {
            "bold": c == ord("*"),
            "italic": c == ord("_") and d[i + 1] != ord("_"),
            "code": c == ord("`"),
            "pre": raw[i : i + 3] == b"```",
            "text_link": c == ord("]"),
            "underline": raw[i : i + 2] == b"__",
            "strikethrough": c == ord("~"),
            "spoiler": raw[i : i + 2] == b"||",
            "custom_emoji": c == ord("]"),
        }.get(top or "", False)
        if not closes:
            kind: str
            argument = ""
            byte_offset = i
            ch = chr(c)
            if ch == "_":
                if d[i + 1] == ord("_"):
                    kind = "underline"
                    i += 1
                else:
                    kind = "italic"
            elif ch == "*":
                kind = "bold"
            elif ch == "~":
                kind = "strikethrough"
            elif ch == "|" and d[i + 1] == ord("|"):
                kind = "spoiler"
                i += 1
            elif ch == "[":
                kind = "text_link"
            elif ch == "`":
                if raw[i : i + 3] == b"```":
                    i += 3
                    kind = "pre"
                    lang_end = i
                    while d[lang_end] not in _SPACES and d[lang_end] != ord("`"):
                        lang_end += 1
                    if i != lang_end and lang_end < n and d[lang_end] != ord("`"):
                        argument = raw[i:lang_end].decode("utf-8", "replace")
                        i = lang_end
                    if d[i] in b"\r\n":
                        i += 2 if d[i + 1] in b"\r\n" and d[i] != d[i + 1] else 1
                    i -= 1
                else:
                    kind = "code"
            elif ch == "!" and d[i + 1] == ord("["):
                kind = "custom_emoji"
                i += 1
            else:
                raise ParseError(
                    f"Character '{ch}' is reserved and must be escaped with the preceding '\\'"
                )
            stack.append((kind, argument, utf16, byte_offset, len(out)))
            i += 1
            continue
        kind, argument, offset, _, begin = stack.pop()
        skip = utf16 == offset
        entity: dict[str, Any] | None = None
        if kind in ("underline", "spoiler"):
            i += 1
        elif kind == "pre":
            i += 2
        elif kind in ("text_link", "custom_emoji"):
            url = ""
            if d[i + 1] != ord("("):
                if kind == "custom_emoji":
                    raise ParseError("Custom emoji entity must contain a tg://emoji URL")
                url = bytes(out[begin:]).decode("utf-8", "replace")
            else:
                i += 2
                url_begin = i
                buf = bytearray()
                while i < n and d[i] != ord(")"):
                    if d[i] == ord("\\") and 0 < d[i + 1] <= 126:
                        buf.append(d[i + 1])
                        i += 2
                        continue
                    buf.append(d[i])
                    i += 1
                if d[i] != ord(")"):
                    what = "a custom emoji URL" if kind == "custom_emoji" else "a URL"
                    raise ParseError(f"Can't find end of {what} at byte offset {url_begin}")
                url = buf.decode("utf-8", "replace")
            if kind == "custom_emoji":
                m = re.fullmatch(r"tg://emoji\?id=(\d+)", url)
                if not m:
                    raise ParseError("Custom emoji URL must have an emoji identifier")
                entity = {"type": "custom_emoji", "custom_emoji_id": m.group(1)}
            else:
                entity = _link_entity(url, offset, utf16 - offset, users)
                skip = skip or entity is None
        if not skip:
            if entity is None:
                entity = {"type": kind}
                if kind == "pre" and argument:
                    entity["language"] = argument
            entity.update(offset=offset, length=utf16 - offset)
            entities.append(entity)
        i += 1
    if stack:
        names = {
            "bold": "Bold",
            "italic": "Italic",
            "underline": "Underline",
            "code": "Code",
            "pre": "Pre",
            "strikethrough": "Strikethrough",
            "spoiler": "Spoiler",
            "text_link": "TextUrl",
            "custom_emoji": "CustomEmoji",
        }
        kind, _, _, byte_offset, _ = stack[-1]
        raise ParseError(f"Can't find end of {names[kind]} entity at byte offset {byte_offset}")
    if quote_start is not None:
        _close_quote(entities, quote_start, utf16, quote_expandable)
    return out.decode("utf-8"), sort_entities(entities)


def _close_quote(entities: list[dict[str, Any]], start: int, end: int, expandable: bool) -> None:
    if end > start:
        kind = "expandable_blockquote" if expandable else "blockquote"
        entities.append({"type": kind, "offset": start, "length": end - start})


def parse_markdown(text: str, *, users: dict[int, User]) -> tuple[str, list[dict[str, Any]]]:
    """tdlib's parse_markdown (the legacy "Markdown" parse mode)."""
    raw = text.encode("utf-8")
    n = len(raw)
    d = raw + _PAD
    out = bytearray()
    utf16 = 0
    entities: list[dict[str, Any]] = []
    i = 0
    while i < n:
        c = d[i]
        if c == ord("\\") and d[i + 1] in b"_*`[":
            i += 1
            out.append(d[i])
            utf16 += 1
            i += 1
            continue
        if c not in b"_*`[":
            if c & 0xC0 != 0x80:
                utf16 += 1 + (c >= 0xF0)
            out.append(c)
            i += 1
            continue
        begin_pos = i
        end_char = ord("]") if c == ord("[") else c
        is_pre = False
        language = ""
        i += 1
        if c == ord("`") and d[i] == ord("`") and d[i + 1] == ord("`"):
            i += 2
            is_pre = True
            lang_end = i
            while d[lang_end] not in _SPACES and d[lang_end] != ord("`"):
                lang_end += 1
            if i != lang_end and lang_end < n and d[lang_end] != ord("`"):
                language = raw[i:lang_end].decode("utf-8", "replace")
                i = lang_end
            if d[i] in b"\r\n":
                i += 2 if d[i + 1] in b"\r\n" and d[i] != d[i + 1] else 1
        offset = utf16
        begin = len(out)
        while i < n and (d[i] != end_char or (is_pre and raw[i + 1 : i + 3] != b"``")):
            if d[i] & 0xC0 != 0x80:
                utf16 += 1 + (d[i] >= 0xF0)
            out.append(d[i])
            i += 1
        if i == n:
            raise ParseError(f"Can't find end of the entity starting at byte offset {begin_pos}")
        if utf16 != offset:
            length = utf16 - offset
            if c == ord("_"):
                entities.append({"type": "italic", "offset": offset, "length": length})
            elif c == ord("*"):
                entities.append({"type": "bold", "offset": offset, "length": length})
            elif c == ord("["):
                url = bytes(out[begin:]).decode("utf-8", "replace")
                if d[i + 1] == ord("("):
                    i += 2
                    buf = bytearray()
                    while i < n and d[i] != ord(")"):
                        buf.append(d[i])
                        i += 1
                    url = buf.decode("utf-8", "replace")
                entity = _link_entity(url, offset, length, users)
                if entity is not None:
                    entities.append(entity)
            elif is_pre:
                entity = {"type": "pre", "offset": offset, "length": length}
                if language:
                    entity["language"] = language
                entities.append(entity)
            else:
                entities.append({"type": "code", "offset": offset, "length": length})
        if is_pre:
            i += 2
        i += 1
    return out.decode("utf-8"), sort_entities(entities)


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


def _removed_char(o: int) -> bool:
    # clean_input_string: '\r', U+2028..U+202E and three "vertical line" combining marks go
    return o == 0x0D or 0x2028 <= o <= 0x202E or o in (0x0333, 0x033F, 0x030A)


def fix_text(
    text: str, entities: list[dict[str, Any]], *, allow_empty: bool, detect: bool = True
) -> tuple[str, list[dict[str, Any]]]:
    """tdlib's fix_formatted_text: clean control characters, trim, add automatic entities.

    Raises ApiError "text must be non-empty" when nothing but whitespace is left.
    """
    entities = [dict(e) for e in entities if e["length"] > 0]
    # clean_input_string_with_entities: map every old UTF-16 offset to the new one
    mapping: list[int] = []
    out: list[str] = []
    new_pos = 0
    for ch in text:
        o = ord(ch)
        if _removed_char(o):
            repl = ""
        elif o < 32 and o != 10:
            repl = " "
        else:
            repl = ch
        mapping.extend([new_pos] * (2 if o > 0xFFFF else 1))
        out.append(repl)
        new_pos += utf16_len(repl)
    mapping.append(new_pos)
    cleaned = "".join(out)
    for e in entities:
        start, end = mapping[e["offset"]], mapping[e["offset"] + e["length"]]
        e["offset"], e["length"] = start, end - start
    entities = [e for e in entities if e["length"] > 0]
    stripped_right = cleaned.rstrip(" \n")
    if not stripped_right:
        if allow_empty:
            return "", []
        raise _bad("text must be non-empty")
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
        raise _bad("can't parse entities JSON object") from None
    if not isinstance(value, list):
        raise _bad('field "entities" must be an Array')
    result: list[dict[str, Any]] = []
    for item in value:
        if not isinstance(item, dict):
            raise _bad("can't parse MessageEntity: expected an Object")
        kind = item.get("type")
        for key in ("type", "offset", "length"):
            if key not in item:
                raise _bad(f"can't parse MessageEntity: Can't find field \"{key}\"")
        known = _USER_ENTITY_TYPES | _AUTO_ENTITY_TYPES
        if kind not in known:
            raise _bad("can't parse MessageEntity: Unsupported type specified")
        offset, length = item["offset"], item["length"]
        if not isinstance(offset, int) or not 0 <= offset <= 1_000_000:
            raise _bad(f"receive an entity with incorrect offset {offset}")
        if not isinstance(length, int) or not 0 <= length <= 1_000_000:
            raise _bad(f"receive an entity with incorrect length {length}")
        entity: dict[str, Any] = {"type": kind, "offset": offset, "length": length}
        if kind == "text_link":
            if "url" not in item:
                raise _bad("can't parse MessageEntity: Can't find field \"url\"")
            try:
                entity["url"] = check_link(str(item["url"]))
            except ValueError as exc:
                raise _bad(f"entity URL '{item['url']}' is invalid: {exc}") from None
        elif kind == "text_mention":
            user = item.get("user")
            if not isinstance(user, dict):
                raise _bad("can't parse MessageEntity: Can't find field \"user\"")
            if user.get("id") not in users:
                raise _bad("user not found")
            entity["user"] = users[user["id"]].to_api()
        elif kind == "custom_emoji":
            if "custom_emoji_id" not in item:
                raise _bad("can't parse MessageEntity: Can't find field \"custom_emoji_id\"")
            emoji_id = str(item["custom_emoji_id"])
            if not emoji_id.isdigit() or int(emoji_id) >= 2**63:
                raise _bad(
                    'can\'t parse MessageEntity: Field "custom_emoji_id" must be a valid Number'
                )
            entity["custom_emoji_id"] = emoji_id
        elif kind == "pre" and item.get("language"):
            entity["language"] = str(item["language"])
        if kind in _USER_ENTITY_TYPES:  # automatic ones are found again anyway
            result.append(entity)
    return sort_entities(result)


def _check_entity_bounds(text: str, entities: list[dict[str, Any]]) -> None:
    total = utf16_len(text)
    for e in entities:
        if e["offset"] > total or (e["offset"] == total and e["length"] > 0):
            raise _bad(f"entity begins after the end of the text at UTF-16 offset {e['offset']}")
        if e["offset"] + e["length"] > total:
            raise _bad(
                f"entity beginning at UTF-16 offset {e['offset']} ends after the end of the text "
                f"at UTF-16 offset {e['offset'] + e['length']}"
            )


# --------------------------------------------------------------------------------------------
# Images: only the header is read, for the width and height PhotoSize needs
# --------------------------------------------------------------------------------------------


def image_size(data: bytes) -> tuple[int, int] | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return width, height
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            seg_len = struct.unpack(">H", data[i + 2 : i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return width, height
            i += 2 + seg_len
        return None
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            width = int.from_bytes(data[24:27], "little") + 1
            height = int.from_bytes(data[27:30], "little") + 1
            return width, height
        if chunk == b"VP8 ":
            width, height = struct.unpack("<HH", data[26:30])
            return width & 0x3FFF, height & 0x3FFF
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------


@dataclass
class User:
    id: int
    first_name: str
    username: str | None = None
    last_name: str | None = None
    language_code: str | None = None
    is_bot: bool = False

    def to_api(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        if self.language_code:
            data["language_code"] = self.language_code
        return data


@dataclass
class BotInfo:
    id: int
    username: str
    token: str = field(repr=False)
    first_name: str = ""
    can_join_groups: bool = True
    can_read_all_group_messages: bool = True

    @property
    def user(self) -> User:
        return User(self.id, self.first_name, self.username, is_bot=True)


@dataclass
class _BotState:
    info: BotInfo
    updates: list[dict[str, Any]] = field(default_factory=list)
    next_update_id: int = 1
    allowed_updates: frozenset[str] | None = None
    poll_generation: int = 0
    polls_waiting: int = 0
    commands: dict[tuple[str, str], list[dict[str, str]]] = field(default_factory=dict)


ADMIN_RIGHTS: dict[str, bool] = {
    "can_be_edited": False,
    "is_anonymous": False,
    "can_manage_chat": True,
    "can_delete_messages": True,
    "can_manage_video_chats": True,
    "can_restrict_members": True,
    "can_promote_members": False,
    "can_change_info": True,
    "can_invite_users": True,
    "can_post_stories": True,
    "can_edit_stories": True,
    "can_delete_stories": True,
    "can_send_welcome_messages": False,
    "can_pin_messages": True,
    "can_manage_topics": True,
    "can_post_messages": True,
    "can_edit_messages": True,
}
MEMBER_STATUSES = frozenset({"creator", "administrator", "member", "restricted"})


@dataclass
class _Membership:
    status: str  # creator / administrator / member / restricted / left / kicked
    rights: dict[str, bool] = field(default_factory=dict)
    can_read_all: bool | None = None  # privacy mode as it was when the bot joined


@dataclass
class Topic:
    thread_id: int
    name: str
    icon_color: int = 0x6FB9F0
    closed: bool = False


@dataclass
class StoredMessage:
    """A message as the chat currently shows it (edits applied; `deleted` once removed)."""

    chat_id: int
    message_id: int
    date: int
    from_user: User | None
    sender_chat_id: int | None = None
    text: str | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)
    caption: str | None = None
    caption_entities: list[dict[str, Any]] = field(default_factory=list)
    photo: list[dict[str, Any]] | None = None
    photo_bytes: bytes | None = None
    reply_to_message_id: int | None = None
    external_reply: dict[str, Any] | None = None
    quote: dict[str, Any] | None = None
    thread_id: int | None = None
    is_topic_message: bool = False
    reply_markup: dict[str, Any] | None = None  # inline keyboards only, as Telegram returns
    sent_reply_markup: dict[str, Any] | None = None  # whatever markup the sender attached
    protect_content: bool = False
    disable_notification: bool = False
    link_preview_options: dict[str, Any] | None = None
    edit_date: int | None = None
    deleted: bool = False
    is_automatic_forward: bool = False
    forward_origin: dict[str, Any] | None = None
    service: dict[str, Any] | None = None
    author_signature: str | None = None
    bot_id: int | None = None  # the bot that sent it, if any
    private_bot_id: int | None = None  # for private chats: whose chat with the user
    discussion_message_id: int | None = None  # channel posts: the automatic forward's id
    source: str | None = None  # the text or caption exactly as the sender passed it
    parse_mode: str | None = None


@dataclass
class Chat:
    id: int
    type: str  # private / group / supergroup / channel
    title: str | None = None
    username: str | None = None
    is_forum: bool = False
    owner: User | None = None
    linked_chat_id: int | None = None
    private_user: User | None = None
    private_bot_id: int | None = None
    started: bool = False  # private chats: the user contacted the bot
    blocked: bool = False
    members: dict[int, _Membership] = field(default_factory=dict, repr=False)
    topics: dict[int, Topic] = field(default_factory=dict, repr=False)
    store: dict[int, StoredMessage] = field(default_factory=dict, repr=False)
    next_message_id: int = 1
    last_bot_sender: int | None = None


@dataclass
class Limits:
    """Flood control, per bot. `time_scale=10` runs every window ten times faster.

    `retry_after` is reported in scaled seconds: wait `retry_after / time_scale` real ones.
    """

    per_chat_per_s: float = 1.0
    per_chat_burst: int = 3
    per_group_per_min: int = 20
    global_per_s: int = 30
    time_scale: float = 1.0
    callback_answer_timeout_s: float = 15.0  # after this an answer gets QUERY_ID_INVALID


@dataclass
class CallRecord:
    method: str
    chat_id: int | None
    at: float  # the server's monotonic clock, unscaled
    bot_id: int


@dataclass
class ApiCall:
    method: str
    bot_id: int | None
    params: dict[str, Any]
    ok: bool
    error_code: int | None
    description: str | None
    at: float


@dataclass
class Stats:
    count_429: int = 0
    calls: list[CallRecord] = field(default_factory=list)  # successful ones only


@dataclass
class _CallbackQuery:
    id: str
    bot_id: int
    user: User
    chat_id: int
    message_id: int
    data: str | None
    created: float  # scaled time
    answered: bool = False


# (thread id, is a topic message, replied message, external reply, quote)
_Reply = tuple[
    int | None, bool, "StoredMessage | None", dict[str, Any] | None, dict[str, Any] | None
]


class _Access(Enum):
    READ = "read"
    EDIT = "edit"
    WRITE = "write"


_RATED_METHODS = frozenset(
    {"sendMessage", "sendPhoto", "editMessageText", "editMessageReplyMarkup", "editMessageCaption"}
)


class _FloodControl:
    """Sliding windows over scaled monotonic time: per chat, per group per minute, global."""

    def __init__(self, limits: Limits, monotonic: Callable[[], float]) -> None:
        self.limits = limits
        self._monotonic = monotonic
        self._events: dict[tuple[Any, ...], deque[float]] = {}

    def now(self) -> float:
        return self._monotonic() * self.limits.time_scale

    def _windows(self, bot_id: int, chat: Chat) -> list[tuple[tuple[Any, ...], float, int]]:
        lim = self.limits
        windows = [
            (
                ("chat", bot_id, chat.id),
                lim.per_chat_burst / lim.per_chat_per_s,
                lim.per_chat_burst,
            ),
            (("global", bot_id), 1.0, lim.global_per_s),
        ]
        if chat.type != "private":
            windows.append((("group", bot_id, chat.id), 60.0, lim.per_group_per_min))
        return windows

    def retry_after(self, bot_id: int, chat: Chat) -> int | None:
        now = self.now()
        wait = 0.0
        for key, width, limit in self._windows(bot_id, chat):
            events = self._events.setdefault(key, deque())
            while events and events[0] <= now - width:
                events.popleft()
            if len(events) >= limit:
                wait = max(wait, events[len(events) - limit] + width - now)
        return max(1, math.ceil(wait - 1e-9)) if wait > 0 else None

    def record(self, bot_id: int, chat: Chat) -> None:
        now = self.now()
        for key, _, _ in self._windows(bot_id, chat):
            self._events.setdefault(key, deque()).append(now)


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


_METHODS = (
    "getMe",
    "getUpdates",
    "deleteWebhook",
    "getWebhookInfo",
    "setMyCommands",
    "getMyCommands",
    "deleteMyCommands",
    "sendMessage",
    "sendPhoto",
    "editMessageText",
    "editMessageCaption",
    "editMessageReplyMarkup",
    "deleteMessage",
    "answerCallbackQuery",
    "getChat",
    "getChatMember",
    "getChatAdministrators",
    "sendChatAction",
    "getFile",
)
_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)


def _to_bool(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "yes", "1")


def _to_int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return 0  # td::to_integer yields 0 for garbage


def _json_arg(value: str, what: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        raise _bad(f"can't parse {what} JSON object") from None


class TelegramServer:
    """An in-memory Telegram with a Bot API endpoint at `api_base`."""

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], float] = time.time,
        strict_html: bool = True,
    ) -> None:
        self.limits = limits or Limits()
        self.stats = Stats()
        self.history: list[ApiCall] = []
        self.strict_html = strict_html
        self._monotonic = monotonic
        self._clock = clock
        self._flood = _FloodControl(self.limits, monotonic)
        self._bots: dict[int, _BotState] = {}
        self._tokens: dict[str, _BotState] = {}
        self._users: dict[int, User] = {}
        self._chats: dict[int, Chat] = {}
        self._private: dict[tuple[int, int], Chat] = {}
        self._callbacks: dict[str, _CallbackQuery] = {}
        self._answers: dict[str, dict[str, Any]] = {}
        self._files: dict[str, bytes] = {}
        self._ids = itertools.count(1)
        self._user_ids = itertools.count(1_000_001)
        self._group_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self._changed = asyncio.Event()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._base: str | None = None
        self._service_user = User(TELEGRAM_SERVICE_USER_ID, "Telegram")
        self._users[TELEGRAM_SERVICE_USER_ID] = self._service_user

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("GET", "/file/bot{token}/{path:.*}", self._handle_file)
        # Cancel handlers whose client went away (an aiogram poller being stopped), and do not
        # let a pending long poll hold the shutdown.
        self._runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self._base = f"http://{bound_host}:{bound_port}"
        self._closing = False

    async def stop(self) -> None:
        self._closing = True
        self._touch()  # long polls return at once
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> TelegramServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def api_base(self) -> str:
        if self._base is None:
            raise RuntimeError("the server is not started")
        return self._base

    # ---- waiting ------------------------------------------------------------------------

    def _touch(self) -> None:
        """Wake everyone waiting for a state change."""
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - a deadline for the condition, not for I/O
    ) -> None:
        """Wait until `predicate()` holds; it is re-checked after every state change."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = self._changed
            if predicate():
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    async def wait_answer(
        self,
        callback_query_id: str,
        timeout: float = 5.0,  # noqa: ASYNC109 - same as wait_for
    ) -> dict[str, Any]:
        """The answerCallbackQuery parameters the bot sent for this query."""
        await self.wait_for(lambda: callback_query_id in self._answers, timeout)
        return self._answers[callback_query_id]

    # ---- test side: setup ---------------------------------------------------------------

    def add_bot(
        self,
        token: str,
        username: str,
        *,
        first_name: str | None = None,
        can_read_all_group_messages: bool = True,
        can_join_groups: bool = True,
    ) -> BotInfo:
        """Register a bot; its id is the token's numeric prefix, as aiogram assumes."""
        m = re.fullmatch(r"(\d+):[\w-]+", token)
        if not m:
            raise ValueError("a bot token looks like '123456:secret'")
        info = BotInfo(
            int(m.group(1)),
            username,
            token,
            first_name or username,
            can_join_groups,
            can_read_all_group_messages,
        )
        state = _BotState(info)
        self._bots[info.id] = state
        self._tokens[token] = state
        self._users[info.id] = info.user
        return info

    def create_user(
        self,
        first_name: str,
        username: str | None = None,
        id: int | None = None,
        *,
        last_name: str | None = None,
        language_code: str | None = None,
    ) -> User:
        user_id = id if id is not None else next(self._user_ids)
        user = User(user_id, first_name, username, last_name, language_code)
        self._users[user_id] = user
        return user

    def create_chat(
        self,
        type: str,
        title: str,
        is_forum: bool = False,
        bot_status: str | None = "member",
        can_read_all: bool | None = None,
        *,
        username: str | None = None,
        owner: User | None = None,
        bots: Iterable[BotInfo] | None = None,
        bot_rights: dict[str, bool] | None = None,
    ) -> Chat:
        """A group, supergroup or channel; `bot_status` applies to `bots` (default: all bots).

        `bot_status=None` means the bots never were in it (they get "chat not found").
        `can_read_all=None` takes each bot's privacy setting (`add_bot`).
        """
        if type not in ("group", "supergroup", "channel"):
            raise ValueError(
                "private chats: start_private_chat(user) or send_user_message(user.id, ...)"
            )
        if is_forum and type != "supergroup":
            raise ValueError("only supergroups can be forums")
        n = next(self._group_ids)
        chat_id = -(4_000_000_000 + n) if type == "group" else -(1_002_000_000_000 + n)
        owner = owner or self.create_user("Owner")
        chat = Chat(chat_id, type, title, username, is_forum, owner)
        chat.members[owner.id] = _Membership("creator")
        chat.next_message_id = 2  # message 1 is the service message "chat created"
        self._chats[chat_id] = chat
        if bot_status is not None:
            for bot in bots if bots is not None else [s.info for s in self._bots.values()]:
                rights = {**ADMIN_RIGHTS, **(bot_rights or {})}
                chat.members[bot.id] = _Membership(
                    bot_status,
                    rights if bot_status == "administrator" else {},
                    can_read_all,
                )
        return chat

    def create_channel(
        self, title: str, *, username: str | None = None, bot_status: str | None = "administrator"
    ) -> Chat:
        return self.create_chat("channel", title, bot_status=bot_status, username=username)

    def set_bot_status(
        self,
        chat_id: int,
        bot: BotInfo,
        status: str,
        *,
        rights: dict[str, bool] | None = None,
        by: User | None = None,
    ) -> None:
        """Promote, demote, remove ("left") or ban ("kicked") a bot; it gets my_chat_member."""
        chat = self._chat(chat_id)
        old = chat.members.get(bot.id)
        old_api = self._member_api(chat, bot.user, old)
        chat.members[bot.id] = _Membership(
            status,
            {**ADMIN_RIGHTS, **(rights or {})} if status == "administrator" else {},
            old.can_read_all if old else None,
        )
        actor = by or chat.owner or self._service_user
        self._enqueue(
            self._bots[bot.id],
            "my_chat_member",
            {
                "chat": self._chat_api(chat),
                "from": actor.to_api(),
                "date": self._now(),
                "old_chat_member": old_api,
                "new_chat_member": self._member_api(chat, bot.user, chat.members[bot.id]),
            },
        )
        self._touch()

    def add_member(self, chat_id: int, user: User, *, announce: bool = True) -> None:
        """A user joins; with `announce` the chat gets the "joined" service message."""
        chat = self._chat(chat_id)
        chat.members[user.id] = _Membership("member")
        if announce and chat.type in ("group", "supergroup"):
            msg = self._new_message(chat, user, service={"new_chat_members": [user.to_api()]})
            self._fan_out(chat, msg)
        self._touch()

    def create_topic(
        self, chat_id: int, name: str, *, by: User | None = None, icon_color: int = 0x6FB9F0
    ) -> int:
        """A forum topic; its id is the id of its "topic created" service message."""
        chat = self._chat(chat_id)
        if not chat.is_forum:
            raise ValueError("topics exist only in forum supergroups")
        creator = by or chat.owner
        assert creator is not None
        thread_id = chat.next_message_id
        msg = self._new_message(
            chat,
            creator,
            service={"forum_topic_created": {"name": name, "icon_color": icon_color}},
            thread_id=thread_id,
            is_topic_message=True,
        )
        chat.topics[thread_id] = Topic(thread_id, name, icon_color)
        self._fan_out(chat, msg)
        self._touch()
        return thread_id

    def close_topic(self, chat_id: int, thread_id: int) -> None:
        chat = self._chat(chat_id)
        chat.topics[thread_id].closed = True
        assert chat.owner is not None
        msg = self._new_message(
            chat,
            chat.owner,
            service={"forum_topic_closed": {}},
            thread_id=thread_id,
            is_topic_message=True,
        )
        self._fan_out(chat, msg)
        self._touch()

    def delete_topic(self, chat_id: int, thread_id: int) -> None:
        chat = self._chat(chat_id)
        chat.topics.pop(thread_id)
        for msg in chat.store.values():
            if msg.thread_id == thread_id:
                msg.deleted = True
        self._touch()

    def link_discussion(self, channel_id: int, group_id: int) -> None:
        channel, group = self._chat(channel_id), self._chat(group_id)
        if channel.type != "channel" or group.type != "supergroup":
            raise ValueError("a channel's discussion group is a supergroup")
        channel.linked_chat_id = group.id
        group.linked_chat_id = channel.id

    def start_private_chat(
        self, user: User, bot: BotInfo | None = None, *, send_start: bool = True
    ) -> Chat:
        """The user opens the bot. Pressing Start sends "/start"; without `send_start` the
        chat is simply one the user contacted before (so the bot may write first)."""
        if send_start:
            self.send_user_message(user.id, user, "/start", bot=bot)
        chat = self._private_chat(user, self._pick_bot(bot))
        chat.started = True
        self._touch()
        return chat

    def block_bot(self, user: User, bot: BotInfo) -> None:
        """The user blocks the bot: sending to them is 403 "bot was blocked by the user"."""
        chat = self._private_chat(user, bot.id)
        chat.blocked = True
        self._enqueue(
            self._bots[bot.id],
            "my_chat_member",
            {
                "chat": self._chat_api(chat),
                "from": user.to_api(),
                "date": self._now(),
                "old_chat_member": {"status": "member", "user": bot.user.to_api()},
                "new_chat_member": {"status": "kicked", "user": bot.user.to_api(), "until_date": 0},
            },
        )
        self._touch()

    # ---- test side: people act ----------------------------------------------------------

    def send_user_message(
        self,
        chat_id: int,
        user: User,
        text: str,
        reply_to: int | None = None,
        thread_id: int | None = None,
        *,
        bot: BotInfo | None = None,
    ) -> StoredMessage:
        """A person writes; bots that can see it (privacy mode!) get a `message` update.

        Private chats are addressed by the user's id (`chat_id == user.id`) and, when several
        bots are registered, `bot`.
        """
        chat = self._chat_for_person(chat_id, user, bot)
        if chat.type == "channel":
            raise ValueError("people do not write into channels here; use post_to_channel")
        if chat.type == "private":
            chat.started, chat.blocked = True, False
        else:
            member = chat.members.get(user.id)
            if member is not None and member.status == "kicked":
                raise ValueError(f"{user.first_name} is banned from {chat.title}")
            if member is None or member.status not in MEMBER_STATUSES:
                chat.members[user.id] = _Membership("member")
        reply: StoredMessage | None = None
        if reply_to is not None:
            reply = self._live(chat, reply_to)
            if reply is None:
                raise ValueError(f"message {reply_to} does not exist in {chat.id}")
        thread, is_topic = self._person_thread(chat, thread_id, reply)
        text, entities = self._person_text(text)
        msg = self._new_message(
            chat,
            user,
            text=text,
            entities=entities,
            reply_to=reply.message_id if reply else None,
            thread_id=thread,
            is_topic_message=is_topic,
        )
        self._fan_out(chat, msg)
        self._touch()
        return msg

    def edit_user_message(
        self, chat_id: int, message_id: int, text: str, *, bot: BotInfo | None = None
    ) -> StoredMessage:
        """A person edits their message; bots that saw it get `edited_message`."""
        chat = self._chat_for_lookup(chat_id, bot)
        msg = self._live(chat, message_id)
        if msg is None or msg.bot_id is not None or msg.text is None:
            raise ValueError("only a person's live text message can be edited this way")
        msg.text, msg.entities = self._person_text(text)
        msg.edit_date = self._now()
        self._fan_out(chat, msg, kind="edited_message")
        self._touch()
        return msg

    def delete_message(self, chat_id: int, message_id: int, *, bot: BotInfo | None = None) -> None:
        """Someone (an admin, the author) deletes a message; bots are not told, as in Telegram."""
        chat = self._chat_for_lookup(chat_id, bot)
        msg = self._live(chat, message_id)
        if msg is None:
            raise ValueError(f"message {message_id} does not exist")
        msg.deleted = True
        self._touch()

    def post_to_channel(
        self, channel_id: int, text: str, *, author_signature: str | None = None
    ) -> StoredMessage:
        """A channel post; admin bots get `channel_post`, the discussion group its forward."""
        channel = self._chat(channel_id)
        if channel.type != "channel":
            raise ValueError("not a channel")
        text, entities = self._person_text(text)
        post = self._new_message(
            channel,
            None,
            sender_chat_id=channel.id,
            text=text,
            entities=entities,
            author_signature=author_signature,
        )
        self._fan_out(channel, post, kind="channel_post")
        self._auto_forward(channel, post)
        self._touch()
        return post

    def press_button(
        self,
        chat_id: int,
        message_id: int,
        user: User,
        data: str | None = None,
        *,
        button_text: str | None = None,
        bot: BotInfo | None = None,
    ) -> str:
        """A person presses an inline button; returns the callback query id.

        `data=None` takes the message's callback button (pick one by `button_text` when it has
        several). Explicit `data` is sent as is, even if no button carries it: Telegram does
        not check either, so this is how a forged press is simulated.
        """
        chat = self._chat_for_lookup(chat_id, bot)
        msg = self._live(chat, message_id)
        if msg is None:
            raise ValueError(f"message {message_id} does not exist in {chat_id}")
        if msg.bot_id is None:
            raise ValueError("only messages sent by a bot carry callback buttons")
        if data is None:
            buttons = [
                b
                for row in (msg.reply_markup or {}).get("inline_keyboard", [])
                for b in row
                if "callback_data" in b and (button_text is None or b["text"] == button_text)
            ]
            if len(buttons) != 1:
                found = [(b["text"], b["callback_data"]) for b in buttons]
                raise ValueError(f"expected exactly one matching callback button, found {found}")
            data = buttons[0]["callback_data"]
        query_id = str(4_000_000_000_000_000_000 + next(self._callback_ids))
        query = _CallbackQuery(
            query_id, msg.bot_id, user, chat.id, message_id, data, self._flood.now()
        )
        self._callbacks[query_id] = query
        state = self._bots[msg.bot_id]
        self._enqueue(
            state,
            "callback_query",
            {
                "id": query_id,
                "from": user.to_api(),
                "message": self._message_api(chat, msg, state.info),
                "chat_instance": self._chat_instance(chat, state.info),
                "data": data,
            },
        )
        self._touch()
        return query_id

    # ---- test side: reading state -------------------------------------------------------

    def messages(
        self,
        chat_id: int,
        thread_id: int | None = None,
        *,
        bot: BotInfo | None = None,
        include_service: bool = False,
    ) -> list[StoredMessage]:
        """The chat as it looks now (edits applied, deleted messages gone), oldest first."""
        chat = self._chat_for_lookup(chat_id, bot)
        return [
            m
            for m in sorted(chat.store.values(), key=lambda m: m.message_id)
            if not m.deleted
            and (thread_id is None or m.thread_id == thread_id)
            and (include_service or m.service is None)
        ]

    def message(
        self, chat_id: int, message_id: int, *, bot: BotInfo | None = None
    ) -> StoredMessage:
        """One message, deleted or not."""
        return self._chat_for_lookup(chat_id, bot).store[message_id]

    def pending_updates(self, bot: BotInfo) -> list[dict[str, Any]]:
        """Updates queued for the bot and not yet confirmed."""
        return list(self._bots[bot.id].updates)

    def commands(
        self, bot: BotInfo, scope: dict[str, Any] | None = None, language_code: str = ""
    ) -> list[dict[str, str]]:
        key = (json.dumps(scope or {"type": "default"}, sort_keys=True), language_code)
        return list(self._bots[bot.id].commands.get(key, []))

    def is_polling(self, bot: BotInfo) -> bool:
        """A getUpdates of this bot is waiting for updates right now."""
        return self._bots[bot.id].polls_waiting > 0

    def calls(self, method: str | None = None) -> list[ApiCall]:
        return [c for c in self.history if method is None or c.method == method]

    # ---- internals: chats and messages --------------------------------------------------

    def _now(self) -> int:
        return int(self._clock())

    def _chat(self, chat_id: int) -> Chat:
        try:
            return self._chats[chat_id]
        except KeyError:
            raise ValueError(f"no chat {chat_id}") from None

    def _pick_bot(self, bot: BotInfo | None) -> int:
        if bot is not None:
            return bot.id
        if len(self._bots) != 1:
            raise ValueError("several bots are registered: say which one with bot=")
        return next(iter(self._bots))

    def _private_chat(self, user: User, bot_id: int) -> Chat:
        chat = self._private.get((user.id, bot_id))
        if chat is None:
            chat = Chat(user.id, "private", private_user=user, private_bot_id=bot_id)
            self._private[(user.id, bot_id)] = chat
        return chat

    def _chat_for_person(self, chat_id: int, user: User, bot: BotInfo | None) -> Chat:
        if chat_id > 0:
            if chat_id != user.id:
                raise ValueError("a private chat's id is the user's id")
            return self._private_chat(user, self._pick_bot(bot))
        return self._chat(chat_id)

    def _chat_for_lookup(self, chat_id: int, bot: BotInfo | None) -> Chat:
        if chat_id < 0:
            return self._chat(chat_id)
        if bot is not None:
            chat = self._private.get((chat_id, bot.id))
            if chat is None:
                raise ValueError(f"no private chat between {chat_id} and bot {bot.id}")
            return chat
        found = [c for (uid, _), c in self._private.items() if uid == chat_id]
        if len(found) != 1:
            raise ValueError(f"{len(found)} private chats with {chat_id}: say which bot=")
        return found[0]

    @staticmethod
    def _person_text(text: str) -> tuple[str, list[dict[str, Any]]]:
        # Apps clean and trim what people type just like the server does for bots
        try:
            return fix_text(text, [], allow_empty=False)
        except ApiError:
            raise ValueError("a message needs some non-blank text") from None

    @staticmethod
    def _live(chat: Chat, message_id: int) -> StoredMessage | None:
        msg = chat.store.get(message_id)
        return None if msg is None or msg.deleted else msg

    def _new_message(
        self,
        chat: Chat,
        sender: User | None,
        *,
        reply_to: int | None = None,
        thread_id: int | None = None,
        **fields: Any,
    ) -> StoredMessage:
        msg = StoredMessage(
            chat_id=chat.id,
            message_id=chat.next_message_id,
            date=self._now(),
            from_user=sender,
            reply_to_message_id=reply_to,
            thread_id=thread_id,
            private_bot_id=chat.private_bot_id,
            **fields,
        )
        chat.next_message_id += 1
        chat.store[msg.message_id] = msg
        return msg

    def _person_thread(
        self, chat: Chat, thread_id: int | None, reply: StoredMessage | None
    ) -> tuple[int | None, bool]:
        if chat.is_forum:
            if thread_id is None and reply is not None:
                thread_id = reply.thread_id
            if thread_id is not None and thread_id not in chat.topics:
                raise ValueError(f"no topic {thread_id} in {chat.title}")
            return thread_id, thread_id is not None
        if thread_id is not None:
            raise ValueError("message_thread_id is for forum topics; reply to join a thread")
        if chat.type == "supergroup" and reply is not None:
            return reply.thread_id or reply.message_id, False  # reply (comment) threads
        return None, False

    def _auto_forward(self, channel: Chat, post: StoredMessage) -> None:
        if channel.linked_chat_id is None:
            return
        group = self._chats[channel.linked_chat_id]
        copy = self._new_message(
            group,
            self._service_user,
            sender_chat_id=channel.id,
            text=post.text,
            entities=list(post.entities),
            caption=post.caption,
            caption_entities=list(post.caption_entities),
            photo=post.photo,
            photo_bytes=post.photo_bytes,
            is_automatic_forward=True,
            forward_origin={
                "type": "channel",
                "chat": self._chat_api(channel),
                "message_id": post.message_id,
                "date": post.date,
            },
        )
        post.discussion_message_id = copy.message_id
        self._fan_out(group, copy)

    # ---- internals: who sees what -------------------------------------------------------

    def _bot_members(self, chat: Chat) -> list[_BotState]:
        if chat.type == "private":
            assert chat.private_bot_id is not None
            return [self._bots[chat.private_bot_id]]
        return [
            state
            for bot_id, state in self._bots.items()
            if (m := chat.members.get(bot_id)) is not None and m.status in MEMBER_STATUSES
        ]

    def _bot_sees(self, state: _BotState, chat: Chat, msg: StoredMessage) -> bool:
        bot = state.info
        if msg.bot_id is not None or (msg.from_user is not None and msg.from_user.is_bot):
            return False  # bots do not see other bots' messages, nor their own
        if chat.type in ("private", "channel") or msg.service is not None:
            return True  # privacy mode covers ordinary group messages only
        member = chat.members[bot.id]
        can_read_all = (
            member.can_read_all
            if member.can_read_all is not None
            else bot.can_read_all_group_messages
        )
        if member.status in ("administrator", "creator") or can_read_all:
            return True
        if msg.reply_to_message_id is not None:
            replied = chat.store.get(msg.reply_to_message_id)
            if replied is not None and replied.bot_id == bot.id:
                return True
        text = msg.text if msg.text is not None else msg.caption or ""
        for entity in msg.entities if msg.text is not None else msg.caption_entities:
            piece = text.encode("utf-16-le")[
                entity["offset"] * 2 : (entity["offset"] + entity["length"]) * 2
            ].decode("utf-16-le")
            if entity["type"] == "mention" and piece[1:].lower() == bot.username.lower():
                return True
            if entity["type"] == "text_mention" and entity["user"]["id"] == bot.id:
                return True
            if entity["type"] == "bot_command" and entity["offset"] == 0:
                _, _, target = piece.partition("@")
                if target:
                    if target.lower() == bot.username.lower():
                        return True
                elif chat.last_bot_sender in (None, bot.id):
                    return True  # general commands go to the bot that spoke last
        return False

    def _fan_out(self, chat: Chat, msg: StoredMessage, kind: str = "message") -> None:
        if chat.type == "channel" and kind == "message":
            kind = "channel_post"
        if chat.type == "channel" and kind == "edited_message":
            kind = "edited_channel_post"
        for state in self._bot_members(chat):
            if self._bot_sees(state, chat, msg):
                self._enqueue(state, kind, self._message_api(chat, msg, state.info))

    def _enqueue(self, state: _BotState, kind: str, payload: dict[str, Any]) -> None:
        allowed = state.allowed_updates
        if (kind in allowed) if allowed else (kind not in _NOT_BY_DEFAULT):
            state.updates.append({"update_id": state.next_update_id, kind: payload})
            state.next_update_id += 1

    def _bot_knows_user(self, bot_id: int, user: User) -> bool:
        if (user.id, bot_id) in self._private:
            return True
        return any(
            bot_id in chat.members and user.id in chat.members for chat in self._chats.values()
        )

    # ---- internals: serialisation -------------------------------------------------------

    def _chat_api(self, chat: Chat) -> dict[str, Any]:
        data: dict[str, Any] = {"id": chat.id, "type": chat.type}
        if chat.type == "private":
            user = chat.private_user
            assert user is not None
            data["first_name"] = user.first_name
            if user.last_name:
                data["last_name"] = user.last_name
            if user.username:
                data["username"] = user.username
            return data
        data["title"] = chat.title
        if chat.username:
            data["username"] = chat.username
        if chat.is_forum:
            data["is_forum"] = True
        return data

    def _chat_instance(self, chat: Chat, bot: BotInfo) -> str:
        return str(-((abs(chat.id) * 1_000_003 + bot.id * 7_919) % 9_000_000_000_000_000_000))

    def _member_api(self, chat: Chat, user: User, member: _Membership | None) -> dict[str, Any]:
        status = member.status if member else "left"
        data: dict[str, Any] = {"status": status, "user": user.to_api()}
        if status == "creator":
            data["is_anonymous"] = False
        elif status == "administrator":
            assert member is not None
            rights = dict(member.rights)
            if chat.type != "channel":
                rights.pop("can_post_messages", None)
                rights.pop("can_edit_messages", None)
            if not chat.is_forum:
                rights.pop("can_manage_topics", None)
            if chat.type == "channel":
                rights.pop("can_pin_messages", None)
            data.update(rights)
        elif status == "restricted":
            data.update(
                is_member=True,
                until_date=0,
                can_send_messages=True,
                can_send_audios=True,
                can_send_documents=True,
                can_send_photos=True,
                can_send_videos=True,
                can_send_video_notes=True,
                can_send_voice_notes=True,
                can_send_polls=True,
                can_send_other_messages=True,
                can_add_web_page_previews=True,
                can_react_to_messages=True,
                can_change_info=False,
                can_invite_users=True,
                can_pin_messages=False,
                can_manage_topics=False,
                can_edit_tag=False,
            )
        elif status == "kicked":
            data["until_date"] = 0
        return data

    def _message_api(
        self, chat: Chat, msg: StoredMessage, bot: BotInfo, depth: int = 0
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"message_id": msg.message_id}
        if msg.from_user is not None:
            data["from"] = msg.from_user.to_api()
        if msg.sender_chat_id is not None:
            data["sender_chat"] = self._chat_api(self._chats[msg.sender_chat_id])
        data["date"] = msg.date
        data["chat"] = self._chat_api(chat)
        if msg.thread_id is not None:
            data["message_thread_id"] = msg.thread_id
        if msg.is_topic_message:
            data["is_topic_message"] = True
        if msg.author_signature:
            data["author_signature"] = msg.author_signature
        if msg.forward_origin is not None:
            data["forward_origin"] = msg.forward_origin
        if msg.is_automatic_forward:
            data["is_automatic_forward"] = True
        reply_id = msg.reply_to_message_id
        if reply_id is None and msg.is_topic_message and msg.thread_id != msg.message_id:
            reply_id = msg.thread_id  # Telegram: a topic message "replies" to the topic's start
        if depth == 0 and reply_id is not None:
            replied = self._live(chat, reply_id)
            if replied is not None:
                data["reply_to_message"] = self._message_api(chat, replied, bot, depth + 1)
        if msg.external_reply is not None:
            data["external_reply"] = msg.external_reply
        if msg.quote is not None:
            data["quote"] = msg.quote
        if msg.edit_date is not None:
            data["edit_date"] = msg.edit_date
        if msg.protect_content:
            data["has_protected_content"] = True
        if msg.text is not None:
            data["text"] = msg.text
            if msg.entities:
                data["entities"] = msg.entities
            if msg.link_preview_options:
                data["link_preview_options"] = msg.link_preview_options
        if msg.photo is not None:
            data["photo"] = msg.photo
        if msg.caption:
            data["caption"] = msg.caption
            if msg.caption_entities:
                data["caption_entities"] = msg.caption_entities
        if msg.service:
            data.update(msg.service)
        if msg.reply_markup is not None:
            data["reply_markup"] = msg.reply_markup
        return data

    # ---- HTTP ---------------------------------------------------------------------------

    async def _read_params(
        self, request: web.Request
    ) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
        params: dict[str, str] = dict(request.query)
        files: dict[str, tuple[str, bytes]] = {}
        if not request.can_read_body:
            return params, files
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise _bad("can't parse JSON encoded request") from None
            if not isinstance(body, dict):
                raise _bad("JSON object expected")
            for key, value in body.items():
                if isinstance(value, str):
                    params[key] = value
                elif value is not None:
                    params[key] = json.dumps(value)
            return params, files
        try:
            form = await request.post()
        except web.HTTPRequestEntityTooLarge:
            raise ApiError(413, "Request Entity Too Large") from None
        for key, value in form.items():
            if isinstance(value, web.FileField):
                files[key] = (value.filename, value.file.read())
            else:
                params[key] = str(value)
        return params, files

    @staticmethod
    def _reply(code: int, payload: dict[str, Any]) -> web.Response:
        return web.json_response(payload, status=code)

    async def _handle(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        requested = request.match_info["method"]
        state = self._tokens.get(token)
        canonical = next((m for m in _METHODS if m.lower() == requested.lower()), requested)
        at = self._monotonic()
        params: dict[str, Any] = {}
        try:
            if state is None:
                raise ApiError(401, "Unauthorized")
            params, files = await self._read_params(request)
            handler = getattr(self, f"_api_{canonical}", None)
            if canonical not in _METHODS or handler is None:
                raise ApiError(404, "Not Found")
            result = await handler(state, params, files)
        except ApiError as exc:
            if exc.code == 429:
                self.stats.count_429 += 1
            self.history.append(
                ApiCall(
                    canonical,
                    state.info.id if state else None,
                    params,
                    False,
                    exc.code,
                    exc.description,
                    at,
                )
            )
            body: dict[str, Any] = {
                "ok": False,
                "error_code": exc.code,
                "description": exc.description,
            }
            if exc.retry_after is not None:
                body["parameters"] = {"retry_after": exc.retry_after}
            self._touch()
            return self._reply(exc.code, body)
        assert state is not None
        self.history.append(ApiCall(canonical, state.info.id, params, True, None, None, at))
        chat_id = params.get("chat_id")
        recorded_chat = _to_int(chat_id) if chat_id and chat_id.lstrip("-").isdigit() else None
        self.stats.calls.append(CallRecord(canonical, recorded_chat, at, state.info.id))
        self._touch()
        return self._reply(200, {"ok": True, "result": result})

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] not in self._tokens:
            return self._reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        data = self._files.get(request.match_info["path"].rsplit("/", 1)[-1].split(".")[0])
        if data is None:
            return self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        return web.Response(body=data, content_type="application/octet-stream")

    # ---- shared checks ------------------------------------------------------------------

    def _check_chat(self, bot: BotInfo, raw: str | None, access: _Access) -> Chat:
        """telegram-bot-api's check_chat + check_chat_access."""
        if not raw:
            raise _bad("chat_id is empty")
        if raw.startswith("@"):
            name = raw[1:].lower()
            chat = next(
                (
                    c
                    for c in self._chats.values()
                    if c.username and c.username.lower() == name and c.type != "group"
                ),
                None,
            )
            if chat is None:
                raise _bad("chat not found")
        else:
            chat_id = _to_int(raw)
            if chat_id > 0:
                return self._check_private(bot, chat_id, access)
            chat = self._chats.get(chat_id)
            if chat is None:
                raise _bad("chat not found")
        member = chat.members.get(bot.id)
        if member is None:
            raise _bad("chat not found")  # the bot never was there, so it cannot know the chat
        kind = chat.type
        need_edit = access in (_Access.EDIT, _Access.WRITE)
        if member.status == "kicked" and (need_edit or chat.type != "group"):
            raise _forbidden(f"bot was kicked from the {kind} chat")
        if member.status not in MEMBER_STATUSES:
            need = need_edit if (chat.type == "group" or chat.username) else True
            if need:
                raise _forbidden(f"bot is not a member of the {kind} chat")
        return chat

    def _check_private(self, bot: BotInfo, user_id: int, access: _Access) -> Chat:
        user = self._users.get(user_id)
        if user is None or user_id == bot.id or not self._bot_knows_user(bot.id, user):
            raise _bad("chat not found")
        chat = self._private_chat(user, bot.id)
        if access is _Access.WRITE:
            if user.is_bot:
                raise _forbidden("bot can't send messages to bots")
            if not chat.started:
                raise _forbidden("bot can't initiate conversation with a user")
            if chat.blocked:
                raise _forbidden("bot was blocked by the user")
        return chat

    def _check_can_post(self, bot: BotInfo, chat: Chat) -> None:
        if chat.type != "channel":
            return
        member = chat.members[bot.id]
        if member.status != "creator" and not (
            member.status == "administrator" and member.rights.get("can_post_messages")
        ):
            raise _bad("need administrator rights in the channel chat")

    def _flood_check(self, bot: BotInfo, chat: Chat) -> None:
        retry = self._flood.retry_after(bot.id, chat)
        if retry is not None:
            raise ApiError(429, f"Too Many Requests: retry after {retry}", retry_after=retry)

    def _parse_text(
        self, text: str, parse_mode: str | None, entities_raw: str | None
    ) -> tuple[str, list[dict[str, Any]], bool]:
        """Parse mode or explicit entities; returns (text, entities, entities were explicit)."""
        if entities_raw:
            return text, parse_explicit_entities(entities_raw, self._users), True
        mode = (parse_mode or "").lower()
        try:
            if mode == "":
                return text, [], False
            if mode == "html":
                plain, entities = parse_html(text, strict=self.strict_html, users=self._users)
            elif mode == "markdownv2":
                plain, entities = parse_markdown_v2(text, users=self._users)
            elif mode == "markdown":
                plain, entities = parse_markdown(text, users=self._users)
            else:
                raise _bad("unsupported parse_mode")
        except ParseError as exc:
            raise _bad(f"can't parse entities: {exc}") from None
        return plain, entities, False

    def _finish_text(
        self, text: str, entities: list[dict[str, Any]], explicit: bool, *, caption: bool
    ) -> tuple[str, list[dict[str, Any]]]:
        if explicit:
            _check_entity_bounds(text, entities)
        plain, fixed = fix_text(text, entities, allow_empty=caption)
        if utf16_len(plain) > (MAX_CAPTION if caption else MAX_TEXT):
            raise _bad("message caption is too long" if caption else "message is too long")
        return plain, fixed

    # ---- reply markup -------------------------------------------------------------------

    def _parse_markup(self, raw: str | None) -> dict[str, Any] | None:
        """The Bot API's JSON checks; buttons keep their raw URL until `_check_markup`."""
        if not raw:
            return None
        value = _json_arg(raw, "reply keyboard markup")
        if not isinstance(value, dict):
            raise _bad("object expected as reply markup")
        if "inline_keyboard" in value:
            rows = value["inline_keyboard"]
            if not isinstance(rows, list) or any(not isinstance(r, list) for r in rows):
                raise _bad(
                    'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
                )
            parsed = [[self._parse_button(b) for b in row] for row in rows]
            if any(parsed):
                return {"inline_keyboard": parsed}
            return None
        if "keyboard" in value:
            rows = value["keyboard"]
            if not isinstance(rows, list) or any(not isinstance(r, list) for r in rows):
                raise _bad('field "keyboard" must be an Array of Arrays')
            for row in rows:
                for button in row:
                    if isinstance(button, dict) and not isinstance(button.get("text"), str):
                        raise _bad("can't parse keyboard button: Can't find field \"text\"")
                    if not isinstance(button, dict | str):
                        raise _bad(
                            "can't parse keyboard button: KeyboardButton must be a String "
                            "or an Object"
                        )
            return {"keyboard": rows, **{k: v for k, v in value.items() if k != "keyboard"}}
        if value.get("remove_keyboard") or value.get("hide_keyboard"):
            return {"remove_keyboard": True}
        if value.get("force_reply") or value.get("force_reply_keyboard"):
            placeholder = value.get("input_field_placeholder")
            if isinstance(placeholder, str) and len(placeholder) > 64:
                raise _bad("input field placeholder is too long")
            return {
                "force_reply": True,
                **({"input_field_placeholder": placeholder} if placeholder else {}),
            }
        return None

    @staticmethod
    def _parse_button(button: Any) -> dict[str, Any]:
        prefix = "can't parse inline keyboard button: "
        if not isinstance(button, dict):
            raise _bad(prefix + "InlineKeyboardButton must be an Object")
        if "text" not in button:
            raise _bad(prefix + 'Can\'t find field "text"')
        if not isinstance(button["text"], str):
            raise _bad(prefix + 'Field "text" must be of type String')
        result: dict[str, Any] = {"text": button["text"]}
        for extra in ("style", "icon_custom_emoji_id"):
            if extra in button:
                result[extra] = button[extra]
        # The Bot API takes the first kind present, in this order; it does not insist on one.
        for kind in ("url", "callback_data"):
            value = button.get(kind)
            if isinstance(value, str) and value:
                result[kind] = value
                return result
        for kind in (
            "callback_game",
            "pay",
            "switch_inline_query",
            "switch_inline_query_chosen_chat",
            "switch_inline_query_current_chat",
            "login_url",
            "web_app",
            "copy_text",
        ):
            if kind in button:
                result[kind] = button[kind]
                return result
        raise _bad(prefix + "Text buttons are unallowed in the inline keyboard")

    def _check_markup(self, markup: dict[str, Any] | None, chat: Chat) -> dict[str, Any] | None:
        """tdlib's URL checks, then the server's own (data size, button count)."""
        if markup is None or "inline_keyboard" not in markup:
            return markup
        rows: list[list[dict[str, Any]]] = []
        count = 0
        for row in markup["inline_keyboard"]:
            new_row = []
            for button in row:
                button = dict(button)
                if "url" in button:
                    try:
                        button["url"] = check_link(button["url"])
                    except ValueError as exc:
                        raise _bad(
                            f"inline keyboard button URL '{button['url']}' is invalid: {exc}"
                        ) from None
                if "web_app" in button:
                    url = str((button["web_app"] or {}).get("url", ""))
                    try:
                        check_link(url, https_only=True)
                    except ValueError as exc:
                        raise _bad(
                            f"inline keyboard button Web App URL '{url}' is invalid: {exc}"
                        ) from None
                new_row.append(button)
                count += 1
            rows.append(new_row)
        for row in rows:
            for button in row:
                data = button.get("callback_data")
                if data is not None and len(data.encode("utf-8")) > MAX_CALLBACK_DATA:
                    raise _bad("BUTTON_DATA_INVALID")
                if "pay" in button or "callback_game" in button:
                    raise _bad("BUTTON_TYPE_INVALID")
                if "copy_text" in button:
                    copy = button["copy_text"]
                    text = copy.get("text") if isinstance(copy, dict) else None
                    if not isinstance(text, str) or not 1 <= len(text) <= 256:
                        raise _bad("BUTTON_COPY_TEXT_INVALID")
                if "web_app" in button and chat.type != "private":
                    raise _bad("BUTTON_TYPE_INVALID")
        if count > MAX_BUTTONS:
            raise _bad("reply markup is too long")
        return {"inline_keyboard": rows}

    # ---- replies and threads ------------------------------------------------------------

    def _reply_target(self, bot: BotInfo, chat: Chat, params: dict[str, str]) -> _Reply:
        """Bot API check_reply_parameters: (thread, is topic, reply, external reply, quote)."""
        message_id, allow, reply_chat, quote = 0, False, chat, None
        if params.get("reply_parameters"):
            rp = _json_arg(params["reply_parameters"], "reply parameters")
            if not isinstance(rp, dict):
                raise _bad("object expected as reply parameters")
            raw_id = rp.get("message_id")
            message_id = raw_id if isinstance(raw_id, int) else 0
            allow = bool(rp.get("allow_sending_without_reply"))
            quote = rp.get("quote")
            if rp.get("chat_id") not in (None, "") and str(rp["chat_id"]) != params.get("chat_id"):
                reply_chat = self._check_chat(bot, str(rp["chat_id"]), _Access.READ)
        else:
            message_id = _to_int(params.get("reply_to_message_id"))
            allow = _to_bool(params.get("allow_sending_without_reply"))
        replied: StoredMessage | None = None
        if message_id > 0:
            replied = self._live(reply_chat, message_id)
            if replied is None and not allow:
                raise _bad("message to be replied not found")
        thread_id = _to_int(params.get("message_thread_id"))
        is_topic = False
        if thread_id > 0:
            if chat.is_forum:
                if thread_id not in chat.topics:
                    raise _bad("message thread not found")
                is_topic = True
                topic = chat.topics[thread_id]
                member = chat.members[bot.id]
                if topic.closed and member.status not in ("administrator", "creator"):
                    raise _bad("TOPIC_CLOSED")
            else:
                root = self._live(chat, thread_id) if chat.type == "supergroup" else None
                if root is not None and (root.thread_id or root.message_id) == thread_id:
                    raise _bad("message thread is not a forum topic thread")
                raise _bad("message thread not found")
        external: dict[str, Any] | None = None
        if replied is not None:
            other_thread = thread_id > 0 and replied.thread_id != thread_id
            if reply_chat is not chat or other_thread:
                external = {
                    "origin": self._origin(replied),
                    "chat": self._chat_api(reply_chat),
                    "message_id": replied.message_id,
                }
                replied = None
        if thread_id <= 0 and replied is not None:
            if chat.is_forum:
                thread_id, is_topic = replied.thread_id or 0, replied.thread_id is not None
            elif chat.type == "supergroup":
                thread_id = replied.thread_id or replied.message_id
        quote_obj = None
        if quote and (replied or external):
            source = (replied.text if replied else None) or ""
            position = source.find(str(quote)) if replied else 0
            if replied and position < 0:
                raise _bad("QUOTE_TEXT_INVALID")
            quote_obj = {
                "text": str(quote),
                "position": utf16_len(source[:position]),
                "is_manual": True,
            }
        return thread_id or None, is_topic, replied, external, quote_obj

    def _origin(self, msg: StoredMessage) -> dict[str, Any]:
        if msg.sender_chat_id is not None:
            sender = self._chats[msg.sender_chat_id]
            if sender.type == "channel":
                return {
                    "type": "channel",
                    "date": msg.date,
                    "chat": self._chat_api(sender),
                    "message_id": msg.message_id,
                }
            return {"type": "chat", "date": msg.date, "sender_chat": self._chat_api(sender)}
        assert msg.from_user is not None
        return {"type": "user", "date": msg.date, "sender_user": msg.from_user.to_api()}

    # ---- sending ------------------------------------------------------------------------

    def _store_bot_message(
        self,
        state: _BotState,
        chat: Chat,
        params: dict[str, str],
        markup: dict[str, Any] | None,
        reply: _Reply,
        **content: Any,
    ) -> StoredMessage:
        thread_id, is_topic, replied, external, quote = reply
        bot = state.info
        sender = bot.user if chat.type != "channel" else None
        msg = self._new_message(
            chat,
            sender,
            sender_chat_id=chat.id if chat.type == "channel" else None,
            reply_to=replied.message_id if replied else None,
            thread_id=thread_id,
            is_topic_message=is_topic,
            external_reply=external,
            quote=quote,
            reply_markup=markup if markup and "inline_keyboard" in markup else None,
            sent_reply_markup=markup,
            protect_content=_to_bool(params.get("protect_content")),
            disable_notification=_to_bool(params.get("disable_notification")),
            bot_id=bot.id,
            **content,
        )
        if chat.type != "private":
            chat.last_bot_sender = bot.id
        self._flood.record(bot.id, chat)
        if chat.type == "channel":
            self._auto_forward(chat, msg)
        return msg

    def _link_preview(self, params: dict[str, str]) -> dict[str, Any] | None:
        if params.get("link_preview_options"):
            options = _json_arg(params["link_preview_options"], "link preview options")
            if not isinstance(options, dict):
                raise _bad("object expected as link preview options")
            if options.get("url"):
                try:
                    check_link(str(options["url"]))
                except ValueError:
                    raise _bad("WEBPAGE_URL_INVALID") from None
            return {k: v for k, v in options.items() if v not in (None, False, "")} or None
        if _to_bool(params.get("disable_web_page_preview")):
            return {"is_disabled": True}
        return None

    async def _api_sendMessage(
        self, state: _BotState, params: dict[str, str], files: dict[str, Any]
    ) -> dict[str, Any]:
        markup = self._parse_markup(params.get("reply_markup"))
        source = params.get("text", "")
        if source == "":
            raise _bad("message text is empty")
        text, entities, explicit = self._parse_text(
            source, params.get("parse_mode"), params.get("entities")
        )
        preview = self._link_preview(params)
        chat = self._check_chat(state.info, params.get("chat_id"), _Access.WRITE)
        reply = self._reply_target(state.info, chat, params)
        self._check_can_post(state.info, chat)
        text, entities = self._finish_text(text, entities, explicit, caption=False)
        markup = self._check_markup(markup, chat)
        self._flood_check(state.info, chat)
        msg = self._store_bot_message(
            state,
            chat,
            params,
            markup,
            reply,
            text=text,
            entities=entities,
            link_preview_options=preview,
            source=source,
            parse_mode=params.get("parse_mode"),
        )
        return self._message_api(chat, msg, state.info)

    def _photo_sizes(self, data: bytes) -> list[dict[str, Any]]:
        size = image_size(data)
        if size is None:
            raise _bad("IMAGE_PROCESS_FAILED")
        width, height = size
        if (
            width <= 0
            or height <= 0
            or width + height > 10000
            or max(width, height) > 20 * min(width, height)
        ):
            raise _bad("PHOTO_INVALID_DIMENSIONS")
        n = next(self._ids)
        unique = f"AQAD{n:08d}"
        self._files[unique] = data
        sizes: list[dict[str, Any]] = []
        for i, limit in enumerate((90, 320, 800, 1280)):
            scale = min(1.0, limit / max(width, height))
            sizes.append(
                {
                    "file_id": f"AgACAgIAAxkBAAI{n:08d}{i}",
                    "file_unique_id": f"{unique}{'smxy'[i]}",
                    "file_size": len(data)
                    if scale == 1.0
                    else max(1, int(len(data) * scale * scale)),
                    "width": max(1, round(width * scale)),
                    "height": max(1, round(height * scale)),
                }
            )
            self._files[sizes[-1]["file_id"]] = data
            if scale == 1.0:
                break
        return sizes

    def _photo_input(self, params: dict[str, str], files: dict[str, Any]) -> bytes:
        raw = params.get("photo")
        if raw is None and "photo" in files:
            data = files["photo"][1]
        elif raw and raw.startswith("attach://"):
            if raw[9:] not in files:
                raise _bad("there is no photo in the request")  # nothing attached by that name
            data = files[raw[9:]][1]
        elif raw and raw in self._files:
            return self._files[raw]
        elif raw and re.match(r"(?i)https?://", raw):
            raise _bad("failed to get HTTP URL content")  # this server is offline
        elif raw:
            raise _bad("wrong file identifier/HTTP URL specified")
        else:
            raise _bad("there is no photo in the request")
        if not data:
            raise _bad("file must be non-empty")
        if len(data) > MAX_PHOTO_BYTES:
            raise _bad("PHOTO_SAVE_FILE_INVALID")
        return data

    async def _api_sendPhoto(
        self, state: _BotState, params: dict[str, str], files: dict[str, Any]
    ) -> dict[str, Any]:
        markup = self._parse_markup(params.get("reply_markup"))
        data = self._photo_input(params, files)
        source = params.get("caption", "")
        caption, entities, explicit = self._parse_text(
            source, params.get("parse_mode"), params.get("caption_entities")
        )
        chat = self._check_chat(state.info, params.get("chat_id"), _Access.WRITE)
        reply = self._reply_target(state.info, chat, params)
        self._check_can_post(state.info, chat)
        caption, entities = self._finish_text(caption, entities, explicit, caption=True)
        markup = self._check_markup(markup, chat)
        sizes = self._photo_sizes(data)
        self._flood_check(state.info, chat)
        msg = self._store_bot_message(
            state,
            chat,
            params,
            markup,
            reply,
            photo=sizes,
            photo_bytes=data,
            caption=caption or None,
            caption_entities=entities,
            source=source,
            parse_mode=params.get("parse_mode"),
        )
        return self._message_api(chat, msg, state.info)

    # ---- editing and deleting -----------------------------------------------------------

    def _target(
        self, bot: BotInfo, params: dict[str, str], what: str
    ) -> tuple[Chat, StoredMessage]:
        if params.get("inline_message_id"):
            raise _bad("MESSAGE_ID_INVALID")  # no inline mode here
        if not params.get("chat_id"):
            raise _bad("message identifier is not specified")
        chat = self._check_chat(bot, params.get("chat_id"), _Access.EDIT)
        message_id = _to_int(params.get("message_id"))
        msg = self._live(chat, message_id) if message_id > 0 else None
        if msg is None:
            raise _bad(f"{what} not found")
        return chat, msg

    def _check_editable(self, bot: BotInfo, chat: Chat, msg: StoredMessage) -> None:
        if msg.bot_id == bot.id and chat.type != "channel":
            return
        member = chat.members.get(bot.id)
        rights = member.rights if member else {}
        own_post = msg.bot_id == bot.id and rights.get("can_post_messages")
        if (
            chat.type == "channel"
            and msg.sender_chat_id == chat.id
            and member
            and (member.status == "creator" or rights.get("can_edit_messages") or own_post)
        ):
            return
        raise _bad("message can't be edited")

    def _apply_edit(
        self, state: _BotState, chat: Chat, msg: StoredMessage, changes: dict[str, Any]
    ) -> dict[str, Any]:
        if all(getattr(msg, key) == value for key, value in changes.items()):
            raise _bad(NOT_MODIFIED)
        self._flood_check(state.info, chat)
        for key, value in changes.items():
            setattr(msg, key, value)
        msg.edit_date = self._now()
        self._flood.record(state.info.id, chat)
        if chat.type == "channel" and msg.discussion_message_id is not None:
            copy = chat.linked_chat_id and self._chats[chat.linked_chat_id].store.get(
                msg.discussion_message_id
            )
            if copy:  # Telegram keeps the discussion copy in step with the post
                for key in ("text", "entities", "caption", "caption_entities"):
                    setattr(copy, key, getattr(msg, key))
                copy.edit_date = msg.edit_date
        return self._message_api(chat, msg, state.info)

    async def _api_editMessageText(
        self, state: _BotState, params: dict[str, str], files: dict[str, Any]
    ) -> dict[str, Any]:
        markup = self._parse_markup(params.get("reply_markup"))
        if markup is not None and "inline_keyboard" not in markup:
            raise _bad("inline keyboard expected")
        source = params.get("text", "")
        if source == "":
            raise _bad("message text is empty")
        text, entities, explicit = self._parse_text(
            source, params.get("parse_mode"), params.get("entities")
        )
        preview = self._link_preview(params)
        chat, msg = self._target(state.info, params, "message to edit")
        self._check_editable(state.info, chat, msg)
        if msg.text is None:
            raise _bad("there is no text in the message to edit")
        text, entities = self._finish_text(text, entities, explicit, caption=False)
        markup = self._check_markup(markup, chat)
        return self._apply_edit(
            state,
            chat,
            msg,
            {
                "text": text,
                "entities": entities,
                "reply_markup": markup,
                **({"link_preview_options": preview} if preview else {}),
            },
        )

    async def _api_editMessageCaption(
        self, state: _BotState, params: dict[str, str], files: dict[str, Any]
    ) -> dict[str, Any]:
        markup = self._parse_markup(params.get("reply_markup"))
        source = params.get("caption", "")
        caption, entities, explicit = self._parse_text(
            source, params.get("parse_mode"), params.get("caption_entities")
        )
        chat, msg = self._target(state.info, params, "message to edit")
        self._check_editable(state.info, chat, msg)
        if msg.photo is None:
            raise _bad("there is no caption in the message to edit")
        caption, entities = self._finish_text(caption, entities, explicit, caption=True)
        markup = self._check_markup(markup, chat)
        return self._apply_edit(
            state,
            chat,
            msg,
            {
                "caption": caption or None,
                "caption_entities": entities,
                "reply_markup": markup,
            },
        )

    async def _api_editMessageReplyMarkup(
        self, state: _BotState, params: dict[str, str], files: dict[str, Any]
    ) -> dict[str, Any]:
        markup = self._parse_markup(params.get("reply_markup"))
        if markup is not None and "inline_keyboard" not in markup:
            raise _bad("inline keyboard expected")
        chat, msg = self._target(state.info, params, "message to edit")
        self._check_editable(state.info, chat, msg)
        markup = self._check_markup(markup, chat)
        return self._apply_edit(state, chat, msg, {"reply_markup": markup})

    async def _api_deleteMessage(
        self, state: _BotState, params: dict[str, str], files: dict[str, Any]
    ) -> bool:
        bot = state.info
        chat, msg = self._target(bot, params, "message to delete")
        member = chat.members.get(bot.id)
        is_admin = member is not None and (
            member.status == "creator" or member.rights.get("can_delete_messages", False)
        )
        own = msg.bot_id == bot.id
        if msg.service and ("forum_topic_created" in msg.service):
            raise _bad("message can't be deleted")
        if chat.type == "private":
            allowed = True  # bots may delete both sides of a private chat
        elif chat.type == "channel":
            allowed = is_admin or (
                own and member is not None and bool(member.rights.get("can_post_messages"))
            )
        else:
            allowed = own or is_admin
        if not allowed:
            raise _bad("message can't be deleted")
        if self._now() - msg.date > 48 * 3600 and not (is_admin and chat.type != "group"):
            raise _bad("message can't be deleted for everyone")
        msg.deleted = True
        return True

    # ---- callbacks ----------------------------------------------------------------------

    async def _api_answerCallbackQuery(
        self, state: _BotState, params: dict[str, str], files: dict[str, Any]
    ) -> bool:
        query_id = params.get("callback_query_id", "")
        query = self._callbacks.get(query_id)
        too_old = query is not None and (
            self._flood.now() - query.created > self.limits.callback_answer_timeout_s
        )
        if query is None or query.bot_id != state.info.id or query.answered or too_old:
            raise _bad(QUERY_INVALID)
        text = params.get("text", "")
        if utf16_len(text) > MAX_CALLBACK_ANSWER:
            raise _bad("MESSAGE_TOO_LONG")
        url = params.get("url")
        if url and not re.match(r"(?i)(https?://t\.me/|tg://)", url):
            raise _bad("URL_INVALID")  # only game and t.me/<bot>?start= links may open
        query.answered = True
        self._answers[query_id] = {
            "callback_query_id": query_id,
            "text": text or None,
            "show_alert": _to_bool(params.get("show_alert")),
            "url": url,
            "cache_time": _to_int(params.get("cache_time")),
        }
        return True

    # ---- updates ------------------------------------------------------------------------

    async def _api_getUpdates(
        self, state: _BotState, params: dict[str, str], files: dict[str, Any]
    ) -> list[dict[str, Any]]:
        offset = _to_int(params.get("offset"))
        limit = min(max(_to_int(params.get("limit"), 100), 1), 100)
        timeout = min(max(_to_int(params.get("timeout")), 0), 50)
        if "allowed_updates" in params and params["allowed_updates"] != "":
            allowed = _json_arg(params["allowed_updates"], "allowed updates")
            if isinstance(allowed, list):
                state.allowed_updates = frozenset(str(a) for a in allowed) or None
        state.poll_generation += 1
        generation = state.poll_generation
        self._touch()  # an older poll of this bot ends with 409
        if offset < 0:
            state.updates = state.updates[offset:]
        elif offset > 0:
            state.updates = [u for u in state.updates if u["update_id"] >= offset]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        announced = False
        state.polls_waiting += 1
        try:
            while True:
                if state.poll_generation != generation:
                    raise ApiError(
                        409,
                        "Conflict: terminated by other getUpdates request; make sure that only "
                        "one bot instance is running",
                    )
                remaining = deadline - loop.time()
                if state.updates or remaining <= 0 or self._closing:
                    return state.updates[:limit]
                if not announced:  # once, so that tests can wait for the poll to be in flight
                    announced = True
                    self._touch()
                event = self._changed  # no await since the checks: no change can be missed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), remaining)
        finally:
            state.polls_waiting -= 1

    async def _api_deleteWebhook(
        self, state: _BotState, params: dict[str, str], files: dict[str, Any]
    ) -> bool:
        if _to_bool(params.get("drop_pending_updates")):
            state.updates.clear()
        return True

    async def _api_getWebhookInfo(
        self, state: _BotState, params: dict[str, str], files: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": len(state.updates),
        }

    # ---- bot settings -------------------------------------------------------------------

    async def _api_getMe(
        self, state: _BotState, params: dict[str, str], files: dict[str, Any]
    ) -> dict[str, Any]:
        info = state.info
        return info.user.to_api() | {
            "can_join_groups": info.can_join_groups,
            "can_read_all_group_messages": info.can_read_all_group_messages,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _command_key(self, bot: BotInfo, params: dict[str, str]) -> tuple[str, str]:
        language = params.get("language_code", "")
        if language and not re.fullmatch(r"[a-z]{2}", language):
            raise _bad("invalid language code specified")
        scope: dict[str, Any] = {"type": "default"}
        if params.get("scope"):
            raw = _json_arg(params["scope"], "bot command scope")
            if not isinstance(raw, dict):
                raise _bad("object expected as bot command scope")
            kind = raw.get("type")
            if kind in (
                "default",
                "all_private_chats",
                "all_group_chats",
                "all_chat_administrators",
            ):
                scope = {"type": kind}
            elif kind in ("chat", "chat_administrators", "chat_member"):
                chat = self._check_chat(bot, str(raw.get("chat_id", "")), _Access.READ)
                scope = {"type": kind, "chat_id": chat.id}
                if kind == "chat_member":
                    user_id = raw.get("user_id")
                    if not isinstance(user_id, int) or user_id not in self._users:
                        raise _bad("user not found")
                    scope["user_id"] = user_id
            else:
                raise _bad("unsupported bot command scope type specified")
        return json.dumps(scope, sort_keys=True), language

    async def _api_setMyCommands(
        self, state: _BotState, params: dict[str, str], files: dict[str, Any]
    ) -> bool:
        raw = _json_arg(params.get("commands", "") or "null", "bot commands")
        if not isinstance(raw, list):
            raise _bad('field "commands" must be an Array')
        commands: list[dict[str, str]] = []
        for item in raw:
            if not isinstance(item, dict):
                raise _bad("can't parse BotCommand: expected an Object")
            command = str(item.get("command", "")).removeprefix("/")
            description = str(item.get("description", ""))
            if not command:
                raise _bad("command must be non-empty")
            if len(command) > 32:
                raise _bad("command length must not exceed 32")
            if not re.fullmatch(r"[a-z0-9_]+", command):
                raise _bad("BOT_COMMAND_INVALID")
            if not description.strip():
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
            if len(description) > 256:
                raise _bad("command description length must not exceed 256")
            commands.append({"command": command, "description": description})
        if len(commands) > 100:
            raise _bad("BOT_COMMANDS_TOO_MUCH")
        key = self._command_key(state.info, params)
        if commands:
            state.commands[key] = commands
        else:
            state.commands.pop(key, None)
        return True

    async def _api_getMyCommands(
        self, state: _BotState, params: dict[str, str], files: dict[str, Any]
    ) -> list[dict[str, str]]:
        return list(state.commands.get(self._command_key(state.info, params), []))

    async def _api_deleteMyCommands(
        self, state: _BotState, params: dict[str, str], files: dict[str, Any]
    ) -> bool:
        state.commands.pop(self._command_key(state.info, params), None)
        return True

    # ---- chats --------------------------------------------------------------------------

    async def _api_getChat(
        self, state: _BotState, params: dict[str, str], files: dict[str, Any]
    ) -> dict[str, Any]:
        chat = self._check_chat(state.info, params.get("chat_id"), _Access.READ)
        data = self._chat_api(chat) | {
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }
        if chat.linked_chat_id is not None:
            data["linked_chat_id"] = chat.linked_chat_id
        if chat.type in ("group", "supergroup"):
            data["permissions"] = {
                "can_send_messages": True,
                "can_send_photos": True,
                "can_invite_users": True,
                "can_pin_messages": False,
                "can_change_info": False,
                "can_manage_topics": False,
            }
        return data

    async def _api_getChatMember(
        self, state: _BotState, params: dict[str, str], files: dict[str, Any]
    ) -> dict[str, Any]:
        chat = self._check_chat(state.info, params.get("chat_id"), _Access.READ)
        user_id = _to_int(params.get("user_id"))
        user = self._users.get(user_id)
        if user is None:
            raise _bad("user not found")
        if chat.type == "private":
            both = {chat.id, chat.private_bot_id}
            return self._member_api(
                chat, user, _Membership("member" if user_id in both else "left")
            )
        return self._member_api(chat, user, chat.members.get(user_id))

    async def _api_getChatAdministrators(
        self, state: _BotState, params: dict[str, str], files: dict[str, Any]
    ) -> list[dict[str, Any]]:
        chat = self._check_chat(state.info, params.get("chat_id"), _Access.READ)
        if chat.type == "private":
            raise _bad("there are no administrators in the private chat")
        return [
            self._member_api(chat, self._users[uid], m)
            for uid, m in chat.members.items()
            if m.status in ("creator", "administrator")
        ]

    async def _api_sendChatAction(
        self, state: _BotState, params: dict[str, str], files: dict[str, Any]
    ) -> bool:
        if params.get("action") not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        chat = self._check_chat(state.info, params.get("chat_id"), _Access.WRITE)
        self._reply_target(
            state.info, chat, {"message_thread_id": params.get("message_thread_id", "")}
        )
        return True

    async def _api_getFile(
        self, state: _BotState, params: dict[str, str], files: dict[str, Any]
    ) -> dict[str, Any]:
        file_id = params.get("file_id", "")
        if not file_id:
            raise _bad("file_id not specified")
        data = self._files.get(file_id)
        if data is None:
            raise _bad("invalid file_id")
        return {
            "file_id": file_id,
            "file_unique_id": file_id[-12:],
            "file_size": len(data),
            "file_path": f"photos/{file_id}.jpg",
        }
