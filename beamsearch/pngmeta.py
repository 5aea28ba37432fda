"""Add text chunks to a PNG file without decoding or re-encoding its pixels.

A PNG is a signature followed by chunks; text chunks (iTXt, UTF-8) may sit anywhere before IEND. We
copy every chunk byte for byte, drop old chunks with the same keywords, and insert the new ones before
IEND, so the image data (IDAT) is untouched.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_png(data: bytes) -> bool:
    return data.startswith(SIGNATURE)


def _chunks(data: bytes) -> Iterator[tuple[bytes, bytes, bytes]]:
    """Yield (type, body, raw chunk bytes)."""
    position = len(SIGNATURE)
    while position + 8 <= len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        kind = data[position + 4:position + 8]
        end = position + 12 + length
        if end > len(data):
            raise ValueError("truncated PNG chunk")
        yield kind, data[position + 8:position + 8 + length], data[position:end]
        position = end


def _itxt(keyword: str, text: str) -> bytes:
    body = keyword.encode("latin-1", "replace")[:79] + b"\x00\x00\x00\x00\x00" + text.encode("utf-8")
    return struct.pack(">I", len(body)) + b"iTXt" + body + struct.pack(">I", zlib.crc32(b"iTXt" + body) & 0xFFFFFFFF)


def with_text(data: bytes, entries: dict[str, str]) -> bytes:
    """Return the PNG `data` with `entries` stored as iTXt chunks, replacing same-named ones."""
    if not is_png(data):
        raise ValueError("not a PNG file")
    keys = {k.encode("latin-1", "replace")[:79] for k in entries}
    out = [SIGNATURE]
    for kind, body, raw in _chunks(data):
        if kind in (b"iTXt", b"tEXt") and body.split(b"\x00", 1)[0] in keys:
            continue
        if kind == b"IEND":
            out.extend(_itxt(k, v) for k, v in entries.items())
        out.append(raw)
    return b"".join(out)


def read_text(data: bytes) -> dict[str, str]:
    found: dict[str, str] = {}
    for kind, body, _ in _chunks(data):
        if kind == b"iTXt":
            keyword, rest = body.split(b"\x00", 1)
            # compression flag, method, language tag \0, translated keyword \0, text
            _, _, tail = rest[0:1], rest[1:2], rest[2:]
            _, _, tail = tail.partition(b"\x00")
            _, _, text = tail.partition(b"\x00")
            found[keyword.decode("latin-1")] = text.decode("utf-8")
        elif kind == b"tEXt":
            keyword, text = body.split(b"\x00", 1)
            found[keyword.decode("latin-1")] = text.decode("latin-1")
    return found
