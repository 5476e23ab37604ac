"""The HTML parse mode: a port of tdlib's parse_html, byte offsets, entity decoding and
the strict `&` rule included.

Next: markdown_parser.py, the two Markdown parse modes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.doubles.telegram_server.entities import (
    HEX_DIGITS,
    PAD,
    SPACES,
    ParseError,
    link_entity,
    sort_entities,
)
from tests.doubles.telegram_server.state import User


def _ascii_lower(data: bytes) -> str:
    return data.decode("utf-8", "replace").lower()


_TAGS = frozenset(
    {"a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins", "tg-spoiler", "tg-emoji"}
    | {"tg-time", "span", "pre", "code", "blockquote"}
)


_NAMED_ENTITIES = {b"lt": 0x3C, b"gt": 0x3E, b"amp": 0x26, b"quot": 0x22}


def _decode_html_entity(d: bytes, pos: int) -> tuple[int, int]:
    """tdlib's decode_html_entity: (code point, next position) or (0, pos) when not an entity."""
    end = pos + 1
    res = 0
    if d[pos + 1] == ord("#"):
        end += 1
        if d[pos + 2] == ord("x"):
            end += 1
            while d[end] in HEX_DIGITS:
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


def _next(data: bytes, byte: bytes, start: int, end: int) -> int:
    found = data.find(byte, start, end)
    return end if found < 0 else found


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
    d = raw + PAD
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
            # Plain text up to the next "&" or "<", in one go (the byte loop, unrolled).
            stop = min(_next(raw, b"&", i + 1, n), _next(raw, b"<", i + 1, n))
            run = raw[i:stop]
            utf16 += len(run.decode("utf-8").encode("utf-16-le")) // 2
            out += run
            i = stop
            continue
        begin = i
        i += 1
        if d[i] != ord("/"):
            while d[i] not in SPACES and d[i] != ord(">"):
                i += 1
            if d[i] == 0:
                raise ParseError(f"Unclosed start tag at byte offset {begin}")
            tag = _ascii_lower(d[begin + 1 : i])
            if tag not in _TAGS:
                raise ParseError(f'Unsupported start tag "{tag}" at byte offset {begin}')
            argument = ""
            date = 0
            while d[i] != ord(">"):
                while d[i] != 0 and d[i] in SPACES:
                    i += 1
                if d[i] == ord(">"):
                    break
                attr_begin = i
                while d[i] not in SPACES and d[i] not in b"=>/\"'":
                    i += 1
                attr = bytes(d[attr_begin:i])
                if not attr:
                    raise ParseError(
                        f'Empty attribute name in the tag "{tag}" at byte offset {begin}'
                    )
                while d[i] != 0 and d[i] in SPACES:
                    i += 1
                if d[i] != ord("="):
                    if d[i] == 0:
                        raise ParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
                    if tag == "blockquote" and attr == b"expandable":
                        argument = "1"
                    continue
                i += 1
                while d[i] != 0 and d[i] in SPACES:
                    i += 1
                if d[i] == 0:
                    raise ParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
                if d[i] not in b"'\"":
                    token_begin = i
                    while chr(d[i]).isascii() and (chr(d[i]).isalnum() or d[i] in b".-"):
                        i += 1
                    value = _ascii_lower(d[token_begin:i])
                    if d[i] not in SPACES and d[i] != ord(">"):
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
            while d[i] not in SPACES and d[i] != ord(">"):
                i += 1
            end_tag = _ascii_lower(d[begin + 2 : i])
            while d[i] in SPACES and d[i] != 0:
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
        link = link_entity(url, offset, length, users)
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
