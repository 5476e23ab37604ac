"""Photos and files: reading an image's size from its header, the PhotoSize ladder a sent
photo gets, where a photo comes from (upload, attach://, file_id, URL), and getFile.

Next: commands.py, the bot's own settings.
"""

from __future__ import annotations

import re
import struct
from typing import Any

from tests.doubles.telegram_server.core import ServerCore
from tests.doubles.telegram_server.protocol import MAX_PHOTO_BYTES, bad
from tests.doubles.telegram_server.state import BotState


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the header alone: all a PhotoSize needs (PNG, GIF, JPEG, WebP)."""
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


class FileApi(ServerCore):
    """Photo input and sizes; getFile."""

    # ---- photos -------------------------------------------------------------------------

    def _photo_sizes(self, data: bytes) -> list[dict[str, Any]]:
        size = image_size(data)
        if size is None:
            raise bad("IMAGE_PROCESS_FAILED")
        width, height = size
        if (
            width <= 0
            or height <= 0
            or width + height > 10000
            or max(width, height) > 20 * min(width, height)
        ):
            raise bad("PHOTO_INVALID_DIMENSIONS")
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
                raise bad("there is no photo in the request")  # nothing attached by that name
            data = files[raw[9:]][1]
        elif raw and raw in self._files:
            return self._files[raw]
        elif raw and re.match(r"(?i)https?://", raw):
            raise bad("failed to get HTTP URL content")  # this server is offline
        elif raw:
            raise bad("wrong file identifier/HTTP URL specified")
        else:
            raise bad("there is no photo in the request")
        if not data:
            raise bad("file must be non-empty")
        if len(data) > MAX_PHOTO_BYTES:
            raise bad("PHOTO_SAVE_FILE_INVALID")
        return data

    # ---- files --------------------------------------------------------------------------

    async def _api_getFile(
        self, state: BotState, params: dict[str, str], files: dict[str, Any]
    ) -> dict[str, Any]:
        file_id = params.get("file_id", "")
        if not file_id:
            raise bad("file_id not specified")
        data = self._files.get(file_id)
        if data is None:
            raise bad("invalid file_id")
        return {
            "file_id": file_id,
            "file_unique_id": file_id[-12:],
            "file_size": len(data),
            "file_path": f"photos/{file_id}.jpg",
        }
