"""The MarkdownV2 and legacy Markdown parse modes, as tdlib parses them.

Next: keyboards.py, reply markup and callback queries.
"""

from __future__ import annotations

import re
from typing import Any

from tests.doubles.telegram_server.entities import (
    PAD,
    SPACES,
    ParseError,
    link_entity,
    sort_entities,
)
from tests.doubles.telegram_server.state import User

_MD_RESERVED = "_*[]()~`>#+-=|{}.!"


def parse_markdown_v2(text: str, *, users: dict[int, User]) -> tuple[str, list[dict[str, Any]]]:
    """tdlib's parse_markdown_v2 (block quotations simplified to whole '>' lines)."""
    raw = text.encode("utf-8")
    n = len(raw)
    d = raw + PAD
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
                    while d[lang_end] not in SPACES and d[lang_end] != ord("`"):
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
                entity = link_entity(url, offset, utf16 - offset, users)
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
    d = raw + PAD
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
            while d[lang_end] not in SPACES and d[lang_end] != ord("`"):
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
                entity = link_entity(url, offset, length, users)
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
