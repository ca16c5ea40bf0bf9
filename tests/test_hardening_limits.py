"""Issue 9 item 5: request bodies are limited while they are read, and a pushed image's
size is checked from its header before decoding.

Real uvicorn and a real push camera: a chunked upload with no ``Content-Length`` sent
over a raw socket is cut off at the limit (413) long before the client has sent it
all; a tiny real PNG declaring 10000x10000 pixels is refused (413, with the reason)
without being decoded; a real PETS09 frame still goes through.
"""

from __future__ import annotations

import select
import socket
import struct
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from service_helpers import SETTINGS, LiveServer, jpeg_of, layout_dict
from storesense.api.app import create_app
from storesense.api.limits import image_size
from storesense.api.store import open_store
from storesense.zones.config import StoreLayout

pytest_plugins = ["service_helpers"]

LIMIT = 1_000_000


@dataclass
class Live:
    url: str
    port: int


@pytest.fixture()
def live(tmp_path: Path, detector_supervisor: Any) -> Iterator[Live]:
    store_id = f"t{uuid.uuid4().hex[:8]}"
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}", store_id)
    layout = StoreLayout.model_validate(layout_dict(store_id))
    settings = SETTINGS.model_copy(update={"max_frame_bytes": LIMIT, "max_frame_side": 4096})
    supervisor = detector_supervisor(layout, store, settings)
    with LiveServer(create_app(settings, store, layout, supervisor=supervisor)) as server:
        yield Live(server.url, server.port)
    store.close()


def png_declaring(width: int, height: int) -> bytes:
    """A real, valid grayscale PNG of ``width`` x ``height`` black pixels (it compresses to
    a few hundred KB: a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    compressor = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0 + black pixels
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def chunked_upload(port: int, path: str, content_type: str, total: int) -> tuple[bytes, int]:
    """POST ``total`` bytes chunked (no Content-Length) over a raw socket; stop as soon as
    the server answers. Returns the response bytes and how many body bytes were sent."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    sock.sendall(head.encode())
    piece = b"\xff\xd8\xff" + bytes(64 * 1024 - 3)
    sent, response = 0, b""
    deadline = time.monotonic() + 60
    try:
        while sent < total and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 1.0)
            if readable:
                break
            if writable:
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                sent += len(piece)
        else:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        sock.settimeout(10)
        while b"\r\n\r\n" not in response:
            data = sock.recv(65536)
            if not data:
                break
            response += data
        response += sock.recv(65536) if b'"detail"' not in response else b""
    except (ConnectionResetError, TimeoutError):
        pass
    finally:
        sock.close()
    return response, sent


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/v1/cameras/cam1/frames", "image/jpeg"), ("/v1/transactions", "application/json")],
)
def test_chunked_body_without_length_is_cut_off_at_the_limit(
    live: Live, path: str, content_type: str
) -> None:
    total = 200 * LIMIT  # 200 MB offered; the server must stop reading near 1 MB
    response, sent = chunked_upload(live.port, path, content_type, total)
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert b"limit" in response
    assert sent < total / 4, f"the client sent {sent} bytes before the 413"


def test_declared_length_over_the_limit_is_refused_before_reading(live: Live) -> None:
    response = httpx.post(
        f"{live.url}/v1/cameras/cam1/frames",
        content=b"\xff\xd8\xff" + bytes(LIMIT),
        headers={"Content-Type": "image/jpeg"},
        timeout=30,
    )
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


def test_png_declaring_huge_dimensions_is_refused_before_decoding(live: Live) -> None:
    bomb = png_declaring(10_000, 10_000)
    assert len(bomb) < LIMIT  # small on the wire ...
    assert image_size(bomb) == (10_000, 10_000)  # ... 100 megapixels once decoded
    response = httpx.post(
        f"{live.url}/v1/cameras/cam1/frames",
        content=bomb,
        headers={"Content-Type": "image/png"},
        timeout=30,
    )
    assert response.status_code == 413, response.text
    assert "10000x10000" in response.json()["detail"]
    assert "4096x4096" in response.json()["detail"]


def test_real_frames_within_the_limits_still_pass(live: Live, pets_frames: list[Any]) -> None:
    png = cv2.imencode(".png", pets_frames[0])[1].tobytes()
    for body, kind in ((jpeg_of(pets_frames[0]), "image/jpeg"), (png, "image/png")):
        response = httpx.post(
            f"{live.url}/v1/cameras/cam1/frames",
            content=body,
            headers={"Content-Type": kind},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        assert (response.json()["width"], response.json()["height"]) == (768, 576)
    small = png_declaring(64, 48)
    assert image_size(small) == (64, 48)
    assert np.asarray(cv2.imdecode(np.frombuffer(small, np.uint8), cv2.IMREAD_GRAYSCALE)).shape == (
        48,
        64,
    )
