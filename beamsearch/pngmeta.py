"""Add text chunks to a PNG file without decoding or re-encoding its pixels, and check a PNG's shape.

A PNG is a signature followed by chunks, the last of which is IEND; text chunks (iTXt, UTF-8) may sit
anywhere before IEND. We copy every chunk byte for byte, drop old chunks with the same keywords, and
insert the new ones before IEND, so the image data (IDAT) is untouched.

Answers and run folders are untrusted: a chunk that runs past the end of the data (a truncated file),
a file without IEND, or bytes after IEND are a `PngError` (a ValueError), never a crash further on.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

SIGNATURE = b"\x89PNG\r\n\x1a\n"
OURS = b"beamsearch:"  # the keyword prefix of the chunks beamsearch writes
TEXT_KINDS = (b"iTXt", b"tEXt", b"zTXt")


class PngError(ValueError):
    """The data is not a whole, well-formed PNG file."""


def is_png(data: bytes) -> bool:
    return data.startswith(SIGNATURE)


def _spans(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """Yield (type, start, end) of every chunk up to and including IEND, without copying any of it; a
    PngError if the file is cut short, has no IEND or holds anything after it."""
    if not is_png(data):
        raise PngError("not a PNG file")
    position = len(SIGNATURE)
    while True:
        if position + 12 > len(data):
            raise PngError("the PNG file is cut short (it has no IEND chunk)")
        (length,) = struct.unpack_from(">I", data, position)
        kind = bytes(data[position + 4:position + 8])
        end = position + 12 + length
        if end > len(data):
            raise PngError("the PNG file is cut short (a chunk runs past its end)")
        yield kind, position, end
        position = end
        if kind == b"IEND":
            if position != len(data):
                raise PngError(f"the PNG file has {len(data) - position} bytes after its IEND chunk")
            return


def _chunks(data: bytes) -> Iterator[tuple[bytes, bytes | memoryview, memoryview]]:
    """Yield (type, body, raw chunk bytes); text chunks' bodies as bytes, others as views (no copy of the
    pixels)."""
    view = memoryview(data)
    for kind, start, end in _spans(data):
        body = view[start + 8:end - 4]
        yield kind, bytes(body) if kind in TEXT_KINDS else body, view[start:end]


def check(data: bytes) -> None:
    """Raise PngError unless `data` is a PNG whose chunks run whole from the signature to a final IEND."""
    for _ in _spans(data):
        pass


def _itxt(keyword: str, text: str) -> bytes:
    body = keyword.encode("latin-1", "replace")[:79] + b"\x00\x00\x00\x00\x00" + text.encode("utf-8")
    return struct.pack(">I", len(body)) + b"iTXt" + body + struct.pack(">I", zlib.crc32(b"iTXt" + body) & 0xFFFFFFFF)


def with_text(data: bytes, entries: dict[str, str]) -> bytes:
    """Return the PNG `data` with `entries` stored as iTXt chunks, replacing same-named ones."""
    keys = {k.encode("latin-1", "replace")[:79] for k in entries}
    out: list[bytes | memoryview] = [SIGNATURE]
    for kind, body, raw in _chunks(data):
        if kind in (b"iTXt", b"tEXt") and bytes(body).split(b"\x00", 1)[0] in keys:
            continue
        if kind == b"IEND":
            out.extend(_itxt(k, v) for k, v in entries.items())
        out.append(raw)
    return b"".join(out)


def without_ours(data: bytes) -> bytes:
    """The PNG without the text chunks beamsearch writes (`beamsearch:*`): the bytes the image service
    sent, so a file in a run folder can be checked against the digest recorded when it arrived."""
    out: list[bytes | memoryview] = [SIGNATURE]
    out.extend(raw for kind, body, raw in _chunks(data) if not (kind in TEXT_KINDS and bytes(body).startswith(OURS)))
    return b"".join(out)


def read_text(data: bytes) -> dict[str, str]:
    found: dict[str, str] = {}
    for kind, body, _ in _chunks(data):
        body = bytes(body)
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
