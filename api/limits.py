"""Limits on what a client can make the service hold in memory.

- :class:`BodySizeLimit`: every request body is counted while it is read, so a chunked
  upload without ``Content-Length`` is cut off at the limit (413) instead of being
  read whole first; a declared ``Content-Length`` over the limit is refused at once.
- :func:`image_size`: a JPEG/PNG's width and height from its header (Pillow opens
  images lazily: nothing is decoded), so a small file declaring 10000x10000 pixels is
  refused before a gigabyte of pixels is allocated.

Example:
    >>> import cv2, numpy as np
    >>> png = cv2.imencode(".png", np.zeros((48, 64, 3), np.uint8))[1].tobytes()
    >>> image_size(png)
    (64, 48)
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Callable

from fastapi import HTTPException
from PIL import Image
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLargeError(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds the {limit}-byte limit")


class BodySizeLimit:
    """Pure ASGI middleware: at most ``limit()`` bytes of body per request (else 413)."""

    def __init__(self, app: ASGIApp, limit: Callable[[], int]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit()
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _send_413(
                send, f"request body of {int(declared)} bytes exceeds the {limit}-byte limit"
            )
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        await self.app(scope, limited, send)


async def _send_413(send: Send, detail: str) -> None:
    body = json.dumps({"detail": detail, "errors": []}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def image_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` that a JPEG/PNG declares in its header, without decoding it;
    ``ValueError`` when the header cannot be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=("JPEG", "PNG")) as image:
                width, height = image.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        if isinstance(exc, Image.DecompressionBombError):
            raise ImageTooLargeError(str(exc)) from None
        raise ValueError(f"image header unreadable ({type(exc).__name__})") from None
    return int(width), int(height)


class ImageTooLargeError(ValueError):
    """The image declares more pixels than allowed (413)."""


def check_image_size(data: bytes, max_side: int) -> tuple[int, int]:
    """The declared size, or :class:`ImageTooLargeError` when a side exceeds ``max_side``.

    >>> import cv2, numpy as np
    >>> png = cv2.imencode(".png", np.zeros((48, 64, 3), np.uint8))[1].tobytes()
    >>> check_image_size(png, 32)
    Traceback (most recent call last):
    storesense.api.limits.ImageTooLargeError: image declares 64x48 pixels; the limit is 32x32 ...
    """
    width, height = image_size(data)
    if width > max_side or height > max_side:
        raise ImageTooLargeError(
            f"image declares {width}x{height} pixels; the limit is {max_side}x{max_side} "
            "(max_frame_side)"
        )
    return width, height
