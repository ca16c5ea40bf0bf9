"""Frame sources: video files, image-sequence folders and network streams.

Every source yields :class:`~storesense.vision.frames.Frame` objects with a
1-based ``index`` in decoded order (MOTChallenge numbering) and a ``timestamp``
in seconds on the source clock, or ``(index - 1) / fps`` when ``fps`` is given.

Example:
    >>> from storesense.vision.sources import open_source
    >>> with open_source("PETS09-S2L1.avi", camera_id="plaza", fps=7) as source:  # doctest: +SKIP
    ...     for frame in source:
    ...         print(frame.index, frame.timestamp)
"""

from __future__ import annotations

import configparser
import logging
import math
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np
import numpy.typing as npt
import tenacity
from storesense.vision.frames import MAX_FPS, MIN_FPS, Frame

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
DEFAULT_IMAGE_FPS = 25.0
_URI_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
# A file's decoder may fail on a few damaged frames before the real end: retry this often.
_MAX_CONSECUTIVE_BAD_FRAMES = 8


class SourceError(RuntimeError):
    """A source is missing, unreadable, or a stream did not come back; one line."""


@dataclass(frozen=True)
class ReconnectPolicy:
    """Exponential back-off for a network stream that drops (run by ``tenacity``).

    The wait before reconnect attempt ``k`` (1-based) is ``initial_delay * factor**(k-1)``
    capped at ``max_delay``; after ``max_retries`` failed attempts in a row the source
    raises :class:`SourceError` (``None`` retries forever).

    Example:
        >>> list(ReconnectPolicy(initial_delay=0.5, factor=2, max_delay=3, max_retries=4).delays())
        [0.5, 1.0, 2.0, 3.0]
    """

    initial_delay: float = 0.5
    max_delay: float = 10.0
    factor: float = 2.0
    max_retries: int | None = 10
    open_timeout: float = 5.0
    """Seconds OpenCV may wait to open the stream or to read a frame."""

    def __post_init__(self) -> None:
        if self.initial_delay < 0 or self.max_delay < self.initial_delay:
            raise ValueError(
                f"need 0 <= initial_delay <= max_delay, got {self.initial_delay}, {self.max_delay}"
            )
        if self.factor < 1:
            raise ValueError(f"factor must be >= 1, got {self.factor}")
        if self.max_retries is not None and self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0 or None, got {self.max_retries}")
        if self.open_timeout <= 0:
            raise ValueError(f"open_timeout must be > 0, got {self.open_timeout}")

    @property
    def wait(self) -> tenacity.wait.wait_base:
        """The wait before an attempt, from its ``attempt_number`` (tenacity's strategy)."""
        return tenacity.wait_exponential(
            multiplier=self.initial_delay, exp_base=self.factor, max=self.max_delay
        )

    @property
    def stop(self) -> tenacity.stop.stop_base:
        """Stop after ``max_retries`` failed attempts in a row (never when ``None``)."""
        if self.max_retries is None:
            return tenacity.stop_never
        return tenacity.stop_after_attempt(self.max_retries)

    def delays(self) -> Iterator[float]:
        """The waits before the reconnect attempts, in order (endless without ``max_retries``)."""
        wait, attempt = self.wait, 1
        while self.max_retries is None or attempt <= self.max_retries:
            state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
            state.attempt_number = attempt
            yield float(wait(state))
            attempt += 1


class _Closed(Exception):
    """The source was closed while it waited to reconnect."""


def _check_rate(name: str, value: float | None) -> None:
    # The layout's fps bounds: at 1e-300 fps a frame's time step overflows the tracker.
    if value is not None and not (math.isfinite(value) and MIN_FPS <= value <= MAX_FPS):
        raise ValueError(
            f"{name} must be a positive number of frames per second "
            f"({MIN_FPS:g} to {MAX_FPS:g}), got {value}"
        )


class FrameSource(ABC):
    """An iterable of :class:`Frame`, usable as a context manager; ``close()`` releases it.

    ``fps`` overrides the source clock (``timestamp = (index - 1) / fps``);
    ``sample_fps`` keeps at most that many frames per second of source time
    (kept frames keep their decoded ``index``); ``loop`` restarts a finite
    source at its end (index and timestamp keep increasing); ``realtime``
    paces frames to their timestamps, as a live camera would deliver them;
    with ``max_lag`` set it also drops frames, as a live camera does, when the
    reader falls more than ``max_lag`` seconds behind (counted in ``dropped_late``;
    by default no frame is ever dropped).
    """

    def __init__(
        self,
        name: str,
        *,
        camera_id: str,
        fps: float | None = None,
        sample_fps: float | None = None,
        loop: bool = False,
        realtime: bool = False,
        max_lag: float | None = None,
    ) -> None:
        _check_rate("fps", fps)
        if max_lag is not None and not (math.isfinite(max_lag) and max_lag >= 0):
            raise ValueError(f"max_lag must be a number of seconds >= 0, got {max_lag}")
        _check_rate("sample_fps", sample_fps)
        if not camera_id:
            raise ValueError("camera_id must be a non-empty string")
        self.name = name
        self.camera_id = camera_id
        self.fps_override = fps
        self.sample_fps = sample_fps
        self.loop = loop
        self.realtime = realtime
        self.max_lag = max_lag
        self._closed = threading.Event()
        self.dropped_late = 0
        """Frames a ``realtime`` source dropped because the reader fell behind."""

    @property
    @abstractmethod
    def fps(self) -> float | None:
        """Frames per second of the source clock (the override when given), if known."""

    @property
    def frame_count(self) -> int | None:
        """Frames in one pass over a finite source, if known (for progress bars)."""
        return None

    @abstractmethod
    def _decoded(self) -> Iterator[tuple[Callable[[], npt.NDArray[np.uint8] | None], float | None]]:
        """One pass: per frame, a function that decodes its image (``None`` if corrupt)
        and its own clock time in seconds (``None`` if unknown)."""

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        loop_offset = 0.0
        last_bucket = -1
        wall_start: float | None = None
        source_start = due = 0.0
        while not self._closed.is_set():
            produced = False
            pass_end = loop_offset
            for decode, clock in self._decoded():
                if self._closed.is_set():
                    return
                index += 1
                produced = True
                if self.fps_override is not None:
                    timestamp = (index - 1) / self.fps_override
                elif clock is not None:
                    timestamp = loop_offset + clock
                else:
                    timestamp = (index - 1) / (self.fps or DEFAULT_IMAGE_FPS)
                pass_end = timestamp
                if self.sample_fps is not None:
                    bucket = math.floor(timestamp * self.sample_fps + 1e-6)
                    if bucket <= last_bucket:
                        continue
                if self.realtime:
                    now = time.monotonic()
                    if wall_start is None:
                        wall_start, source_start = now, timestamp
                    due = wall_start + (timestamp - source_start)
                    if self.max_lag is not None and now - due > self.max_lag:
                        # A live camera does not queue frames for a slow reader: drop.
                        self.dropped_late += 1
                        continue
                image = decode()
                if image is None:
                    logger.warning(
                        "%s: frame %d is corrupt or unreadable; skipped", self.name, index
                    )
                    continue
                if self.sample_fps is not None:
                    last_bucket = bucket
                if self.realtime:
                    delay = due - time.monotonic()
                    if delay > 0 and self._closed.wait(delay):
                        return
                yield Frame(image=image, index=index, timestamp=timestamp, camera_id=self.camera_id)
            if not (self.loop and produced):
                return
            period = 1.0 / self.fps if self.fps else 0.0
            loop_offset = pass_end + period

    def close(self) -> None:
        self._closed.set()
        self._release()

    def _release(self) -> None:  # noqa: B027 - optional hook
        """Free decoder resources."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class VideoFileSource(FrameSource):
    """A video file decoded by OpenCV (FFmpeg); timestamps from the container clock."""

    def __init__(self, path: str | Path, **kwargs: object) -> None:
        self.path = Path(path)
        super().__init__(str(self.path), **kwargs)  # type: ignore[arg-type]
        if not self.path.is_file():
            raise SourceError(f"video file not found: {self.path}")
        capture = self._open()
        self._header_fps = capture.get(cv2.CAP_PROP_FPS) or None
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self._frame_count = count if count > 0 else None
        self._capture: cv2.VideoCapture | None = capture

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"cannot open video {self.path}: not a readable video file")
        return capture

    @property
    def fps(self) -> float | None:
        return self.fps_override or self._header_fps

    @property
    def frame_count(self) -> int | None:
        return self._frame_count

    def _decoded(self) -> Iterator[tuple[Callable[[], npt.NDArray[np.uint8] | None], float | None]]:
        capture = self._capture if self._capture is not None else self._open()
        self._capture = None
        decoded_any = False
        bad_in_a_row = 0
        known_end = False
        grabbed = 0
        try:
            while not self._closed.is_set():
                if not capture.grab():
                    position = capture.get(cv2.CAP_PROP_POS_FRAMES)
                    known_end = self._frame_count is not None and position >= self._frame_count
                    bad_in_a_row += 1
                    if known_end or bad_in_a_row >= _MAX_CONSECUTIVE_BAD_FRAMES:
                        break
                    continue
                if bad_in_a_row and decoded_any:
                    logger.warning("%s: skipped %d undecodable frame(s)", self.name, bad_in_a_row)
                bad_in_a_row = 0
                grabbed += 1
                clock = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                decoded_any = True
                yield _retriever(capture), clock
        finally:
            capture.release()
        if not decoded_any and not self._closed.is_set():
            raise SourceError(f"no frame could be decoded from {self.path}")
        if not known_end and self._frame_count and not self._closed.is_set():
            logger.warning(
                "%s: video ends early (truncated or damaged): %d of %d frames decoded",
                self.name,
                grabbed,
                self._frame_count,
            )

    def _release(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class ImageFolderSource(FrameSource):
    """Images in a folder, in file-name order; a MOTChallenge ``seqinfo.ini`` next to
    the folder supplies the frame rate when ``fps`` is not given."""

    def __init__(self, folder: str | Path, **kwargs: object) -> None:
        self.folder = Path(folder)
        super().__init__(str(self.folder), **kwargs)  # type: ignore[arg-type]
        if not self.folder.is_dir():
            raise SourceError(f"image folder not found: {self.folder}")
        self.paths = sorted(
            p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        if not self.paths:
            raise SourceError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {self.folder}")
        self._seqinfo_fps = _seqinfo_fps(self.folder)
        if self.fps_override is None and self._seqinfo_fps is None:
            logger.warning(
                "%s: no fps given and no seqinfo.ini; assuming %g fps",
                self.name,
                DEFAULT_IMAGE_FPS,
            )

    @property
    def fps(self) -> float:
        return self.fps_override or self._seqinfo_fps or DEFAULT_IMAGE_FPS

    @property
    def frame_count(self) -> int:
        return len(self.paths)

    def _decoded(self) -> Iterator[tuple[Callable[[], npt.NDArray[np.uint8] | None], float | None]]:
        for path in self.paths:

            def read(path: Path = path) -> npt.NDArray[np.uint8] | None:
                return _as_image(cv2.imread(str(path), cv2.IMREAD_COLOR))

            yield read, None


def _retriever(capture: cv2.VideoCapture) -> Callable[[], npt.NDArray[np.uint8] | None]:
    """Decodes the frame ``capture`` grabbed last (``None`` if it is corrupt)."""

    def retrieve() -> npt.NDArray[np.uint8] | None:
        ok, image = capture.retrieve()
        return _as_image(image) if ok else None

    return retrieve


def _as_image(image: object) -> npt.NDArray[np.uint8] | None:
    """A decoded BGR image, or ``None`` for a failed or empty decode."""
    if not isinstance(image, np.ndarray) or image.size == 0 or image.ndim != 3:
        return None
    return image.astype(np.uint8, copy=False)


def _seqinfo_fps(folder: Path) -> float | None:
    for candidate in (folder / "seqinfo.ini", folder.parent / "seqinfo.ini"):
        if candidate.is_file():
            parser = configparser.ConfigParser()
            try:
                parser.read(candidate)
                rate = parser.getfloat("Sequence", "frameRate")
            except (configparser.Error, ValueError, OSError):  # a malformed ini is ignored
                logger.warning("%s has no usable frameRate; ignored", candidate)
                continue
            if rate > 0:
                return rate
    return None


class StreamSource(FrameSource):
    """A network stream (RTSP/HTTP/...) or a local camera device, reconnecting on drops.

    Timestamps are seconds since the source was opened, read from the local
    monotonic clock when each frame arrives (stream clocks restart on reconnect),
    unless ``fps`` is given.
    """

    def __init__(
        self, uri: str | int, *, reconnect: ReconnectPolicy | None = None, **kwargs: object
    ) -> None:
        self.uri = uri
        super().__init__(_redact(str(uri)), **kwargs)  # type: ignore[arg-type]
        self.reconnect = reconnect or ReconnectPolicy()
        self._origin = time.monotonic()
        self._capture: cv2.VideoCapture | None = self._try_open()
        if self._capture is None:
            raise SourceError(f"cannot open stream {self.name}")
        self._stream_fps = self._capture.get(cv2.CAP_PROP_FPS) or None
        self.reconnects = 0

    @property
    def fps(self) -> float | None:
        return self.fps_override or self._stream_fps

    def _try_open(self) -> cv2.VideoCapture | None:
        timeout_ms = int(self.reconnect.open_timeout * 1000)
        if isinstance(self.uri, int):
            capture = cv2.VideoCapture(self.uri)
        else:
            capture = cv2.VideoCapture(
                self.uri,
                cv2.CAP_FFMPEG,
                [
                    cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                    timeout_ms,
                    cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                    timeout_ms,
                ],
            )
        if capture.isOpened():
            return capture
        capture.release()
        return None

    def _reopen(self) -> cv2.VideoCapture | None:
        """A fresh capture, one frame already grabbed, after back-off; ``None`` if closed."""
        if self.reconnect.max_retries == 0:
            raise self._gave_up()
        retrying = tenacity.Retrying(
            # The policy's wait comes before every attempt, the first one included.
            before=self._wait_before_attempt,
            wait=tenacity.wait_none(),
            stop=self.reconnect.stop,
            retry=tenacity.retry_if_result(lambda capture: capture is None),
            retry_error_callback=self._give_up,
        )
        try:
            capture = retrying(self._reconnect_once)  # never None: tenacity retries or raises
        except _Closed:
            return None
        self.reconnects += 1
        attempts = retrying.statistics["attempt_number"]
        logger.warning("%s: reconnected after %d attempt(s)", self.name, attempts)
        return capture

    def _wait_before_attempt(self, state: tenacity.RetryCallState) -> None:
        delay = self.reconnect.wait(state)
        logger.warning(
            "%s: stream dropped; reconnect attempt %d in %.2f s",
            self.name,
            state.attempt_number,
            delay,
        )
        if self._closed.wait(delay):
            raise _Closed

    def _reconnect_once(self) -> cv2.VideoCapture | None:
        capture = self._try_open()
        if capture is None:
            return None
        if not capture.grab():
            capture.release()
            return None
        return capture

    def _gave_up(self) -> SourceError:
        return SourceError(
            f"stream {self.name} dropped and did not come back after "
            f"{self.reconnect.max_retries} reconnect attempts"
        )

    def _give_up(self, _state: tenacity.RetryCallState) -> None:
        raise self._gave_up()

    def _decoded(self) -> Iterator[tuple[Callable[[], npt.NDArray[np.uint8] | None], float | None]]:
        capture = self._capture if self._capture is not None else self._try_open()
        self._capture = None
        grabbed = False
        try:
            while not self._closed.is_set():
                if capture is None or not (grabbed or capture.grab()):
                    if self._closed.is_set():
                        return
                    if capture is not None:
                        capture.release()
                    capture = self._reopen()
                    if capture is None:
                        return
                    grabbed = True
                    continue
                grabbed = False
                yield _retriever(capture), time.monotonic() - self._origin
        finally:
            if capture is not None:
                capture.release()

    def _release(self) -> None:
        # Only a capture not yet handed to an iteration; an iteration releases its own.
        if self._capture is not None:
            self._capture.release()
            self._capture = None


def _redact(uri: str) -> str:
    """Hide a password in ``scheme://user:password@host`` for logs and errors."""
    return re.sub(r"(://[^/:@]+):[^/@]*@", r"\1:***@", uri)


def is_stream_uri(uri: str) -> bool:
    match = _URI_SCHEME.match(uri)
    return match is not None and match.group(1).lower() in STREAM_SCHEMES


def open_source(
    uri_or_path: str | Path,
    *,
    camera_id: str,
    fps: float | None = None,
    sample_fps: float | None = None,
    loop: bool = False,
    realtime: bool = False,
    max_lag: float | None = None,
    reconnect: ReconnectPolicy | None = None,
) -> FrameSource:
    """Open a video file, an image folder, a network stream URL or a camera device number.

    Raises :class:`SourceError` (one line) when the source is missing or unreadable
    and ``ValueError`` for bad parameters.

    Example:
        >>> open_source("/no/such/video.avi", camera_id="cam")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        ...
        storesense.vision.sources.SourceError: video file not found: /no/such/video.avi
    """
    options: dict[str, object] = {
        "camera_id": camera_id,
        "fps": fps,
        "sample_fps": sample_fps,
        "loop": loop,
        "realtime": realtime,
        "max_lag": max_lag,
    }
    text = str(uri_or_path)
    if isinstance(uri_or_path, str) and is_stream_uri(text):
        return StreamSource(text, reconnect=reconnect, **options)
    if isinstance(uri_or_path, str) and text.isdigit():
        return StreamSource(int(text), reconnect=reconnect, **options)
    if _URI_SCHEME.match(text) and not text.lower().startswith("file://"):
        raise SourceError(f"unsupported source scheme in {_redact(text)}")
    path = Path(text.removeprefix("file://"))
    if path.is_dir():
        return ImageFolderSource(path, **options)
    return VideoFileSource(path, **options)
