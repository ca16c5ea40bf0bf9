"""Frame sources on real video: clocks, fps override, sampling, image folders, damaged
input, looping in real time, and an HTTP stream that drops and comes back."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import islice, pairwise
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from storesense.vision.sources import (
    ImageFolderSource,
    ReconnectPolicy,
    SourceError,
    StreamSource,
    VideoFileSource,
    open_source,
)


@pytest.fixture(scope="module")
def pets_video(pets09: Path) -> Path:
    return pets09 / "PETS09-S2L1.avi"


@pytest.fixture(scope="module")
def first_frames(pets_video: Path) -> list[npt.NDArray[np.uint8]]:
    capture = cv2.VideoCapture(str(pets_video))
    frames = [np.asarray(capture.read()[1], np.uint8) for _ in range(12)]
    capture.release()
    return frames


def _image_folder(folder: Path, frames: list[npt.NDArray[np.uint8]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for number, image in enumerate(frames, start=1):
        cv2.imwrite(str(folder / f"{number:06d}.jpg"), cv2.resize(image, (192, 144)))
    return folder


@pytest.mark.parametrize(
    ("fps", "frame_8_timestamp"),
    [(7.0, 1.0), (None, 0.7)],  # the AVI header claims 10 fps
)
def test_video_timestamps_and_fps_override(
    pets_video: Path, fps: float | None, frame_8_timestamp: float
) -> None:
    with open_source(pets_video, camera_id="plaza", fps=fps) as source:
        assert isinstance(source, VideoFileSource)
        frames = list(islice(source, 10))
    assert [f.index for f in frames] == list(range(1, 11))
    assert frames[7].timestamp == pytest.approx(frame_8_timestamp)
    assert all(f.camera_id == "plaza" and f.image.shape == (576, 768, 3) for f in frames)


def test_whole_video_decodes_every_frame(pets_video: Path) -> None:
    with open_source(pets_video, camera_id="plaza", fps=7, sample_fps=1) as source:
        assert source.frame_count == 795
        frames = list(source)
    # 795 frames at 7 fps span 113.4 s: one frame per second of source time, 114 in all.
    assert len(frames) == 114
    assert [f.index for f in frames[:3]] == [1, 8, 15]


@pytest.mark.parametrize(
    ("sample_fps", "expected"), [(2.0, [1, 5, 8, 12, 15]), (7.0, [1, 2, 3, 4, 5])]
)
def test_sample_fps_keeps_decoded_indices(
    pets_video: Path, sample_fps: float, expected: list[int]
) -> None:
    with open_source(pets_video, camera_id="c", fps=7, sample_fps=sample_fps) as source:
        frames = list(islice(source, 5))
    assert [f.index for f in frames] == expected
    assert [f.timestamp for f in frames] == pytest.approx([(i - 1) / 7 for i in expected])


def test_image_folder_in_name_order_with_seqinfo_fps(
    tmp_path: Path, first_frames: list[npt.NDArray[np.uint8]]
) -> None:
    folder = _image_folder(tmp_path / "seq" / "img1", first_frames[:6])
    (tmp_path / "seq" / "seqinfo.ini").write_text("[Sequence]\nname=seq\nframeRate=5\n")
    (folder / "notes.txt").write_text("not an image")
    with open_source(folder, camera_id="c") as source:
        assert isinstance(source, ImageFolderSource)
        frames = list(source)
    assert [f.index for f in frames] == [1, 2, 3, 4, 5, 6]
    assert [f.timestamp for f in frames] == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    # Frames come in file-name order: frame 3 is the third image written.
    expected = cv2.imread(str(folder / "000003.jpg"))
    np.testing.assert_array_equal(frames[2].image, expected)


def test_corrupt_image_is_skipped_with_a_warning(
    tmp_path: Path, first_frames: list[npt.NDArray[np.uint8]], caplog: pytest.LogCaptureFixture
) -> None:
    folder = _image_folder(tmp_path / "img", first_frames[:5])
    (folder / "000003.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is no longer a jpeg")
    with caplog.at_level(logging.WARNING), open_source(folder, camera_id="c", fps=10) as source:
        frames = list(source)
    assert [f.index for f in frames] == [1, 2, 4, 5]
    assert "frame 3 is corrupt" in caplog.text


def test_truncated_video_ends_cleanly(
    tmp_path: Path, pets_video: Path, caplog: pytest.LogCaptureFixture
) -> None:
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(pets_video.read_bytes()[:1_500_000])
    with caplog.at_level(logging.WARNING), open_source(truncated, camera_id="c", fps=7) as source:
        frames = list(source)
    assert 50 < len(frames) < 795
    assert [f.index for f in frames] == list(range(1, len(frames) + 1))
    assert "ends early" in caplog.text


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing.avi", "not found"),
        (lambda tmp: tmp / "missing_folder/", "not found"),
        (lambda tmp: _write(tmp / "notes.avi", b"plain text, not a video"), "cannot open video"),
        (lambda tmp: _mkdir(tmp / "empty"), "no images"),
    ],
)
def test_missing_or_unreadable_source_raises_source_error(
    tmp_path: Path, make: object, message: str
) -> None:
    target = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(SourceError, match=message) as raised:
        open_source(target, camera_id="c")
    assert "\n" not in str(raised.value)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


@pytest.mark.parametrize(
    "kwargs",
    [{"fps": 0}, {"fps": float("nan")}, {"sample_fps": -1}, {"camera_id": ""}, {"max_lag": -1}],
)
def test_bad_parameters_raise_value_error(pets_video: Path, kwargs: dict[str, object]) -> None:
    options: dict[str, object] = {"camera_id": "c", **kwargs}
    with pytest.raises(ValueError):
        open_source(pets_video, **options)


def test_loop_in_real_time_paces_and_keeps_counting(
    tmp_path: Path, first_frames: list[npt.NDArray[np.uint8]]
) -> None:
    folder = _image_folder(tmp_path / "img", first_frames[:4])
    start = time.monotonic()
    with open_source(folder, camera_id="live", fps=20, loop=True, realtime=True) as source:
        frames = list(islice(source, 10))
    elapsed = time.monotonic() - start
    assert [f.index for f in frames] == list(range(1, 11))
    assert [f.timestamp for f in frames] == pytest.approx([i / 20 for i in range(10)])
    np.testing.assert_array_equal(frames[4].image, frames[0].image)  # wrapped around
    assert elapsed >= 9 / 20 - 0.02


def test_realtime_drops_frames_for_a_slow_reader(
    tmp_path: Path, first_frames: list[npt.NDArray[np.uint8]]
) -> None:
    folder = _image_folder(tmp_path / "img", first_frames[:4])
    with open_source(
        folder, camera_id="live", fps=20, loop=True, realtime=True, max_lag=0.5
    ) as source:
        indices = []
        for frame in source:
            indices.append(frame.index)
            if len(indices) == 1:
                time.sleep(1.0)  # the reader stalls for 20 frame periods
            if len(indices) == 5:
                break
        dropped = source.dropped_late
    # Frames more than 0.5 s late were dropped, not queued: the reader catches up.
    assert indices[0] == 1 and indices[1] >= 10
    assert indices[2:] == list(range(indices[1] + 1, indices[1] + 4))
    assert dropped == indices[1] - 2


def test_video_loop_continues_the_clock(
    tmp_path: Path, first_frames: list[npt.NDArray[np.uint8]]
) -> None:
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"MJPG"), 10, (192, 144))
    for image in first_frames[:3]:
        writer.write(cv2.resize(image, (192, 144)))
    writer.release()
    with open_source(clip, camera_id="c", loop=True) as source:
        frames = list(islice(source, 7))
    assert [f.index for f in frames] == list(range(1, 8))
    assert [f.timestamp for f in frames] == pytest.approx([i / 10 for i in range(7)])


class _MJPEGHandler(BaseHTTPRequestHandler):
    server: _MJPEGServer

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        count = 0
        try:
            while not self.server.stopping.is_set():
                jpeg = self.server.jpegs[count % len(self.server.jpegs)]
                count += 1
                header = (
                    f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                )
                self.wfile.write(header.encode() + jpeg + b"\r\n")
                time.sleep(0.02)
        except OSError:
            pass


class _MJPEGServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, jpegs: list[bytes]) -> None:
        super().__init__(("127.0.0.1", port), _MJPEGHandler)
        self.jpegs = jpegs
        self.stopping = threading.Event()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()


@pytest.fixture
def jpegs(first_frames: list[npt.NDArray[np.uint8]]) -> list[bytes]:
    return [cv2.imencode(".jpg", cv2.resize(f, (192, 144)))[1].tobytes() for f in first_frames]


@pytest.fixture
def mjpeg_server(jpegs: list[bytes]) -> Iterator[list[_MJPEGServer]]:
    servers = [_MJPEGServer(0, jpegs)]
    yield servers
    for server in servers:
        if not server.stopping.is_set():
            server.stop()


def test_stream_reconnects_with_back_off_after_a_drop(
    mjpeg_server: list[_MJPEGServer], jpegs: list[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    port = mjpeg_server[0].server_address[1]
    policy = ReconnectPolicy(initial_delay=0.1, max_delay=0.5, max_retries=20, open_timeout=2)
    restarted = threading.Timer(0.6, lambda: mjpeg_server.append(_MJPEGServer(port, jpegs)))
    with (
        caplog.at_level(logging.WARNING),
        open_source(
            f"http://127.0.0.1:{port}/stream.mjpg", camera_id="door", reconnect=policy
        ) as source,
    ):
        assert isinstance(source, StreamSource)
        frames = []
        for frame in source:
            frames.append(frame)
            if len(frames) == 10:
                mjpeg_server[0].stop()
                restarted.start()
            if len(frames) == 30:
                break
        assert source.reconnects >= 1
    restarted.join()
    assert [f.index for f in frames] == list(range(1, 31))
    assert all(b.timestamp > a.timestamp for a, b in pairwise(frames))
    assert frames[-1].image.shape == (144, 192, 3)
    retries = [r.getMessage() for r in caplog.records if "reconnect attempt" in r.getMessage()]
    assert retries and "attempt 1 in 0.10 s" in retries[0]
    if len(retries) > 1:
        assert "attempt 2 in 0.20 s" in retries[1]


def test_stream_that_never_returns_raises_source_error(mjpeg_server: list[_MJPEGServer]) -> None:
    port = mjpeg_server[0].server_address[1]
    policy = ReconnectPolicy(initial_delay=0.05, max_delay=0.1, max_retries=2, open_timeout=1)
    with open_source(f"http://127.0.0.1:{port}/s.mjpg", camera_id="c", reconnect=policy) as source:
        iterator = iter(source)
        next(iterator)
        mjpeg_server[0].stop()
        with pytest.raises(SourceError, match="did not come back after 2 reconnect attempts"):
            for _ in iterator:
                pass


def test_unreachable_stream_fails_to_open() -> None:
    policy = ReconnectPolicy(open_timeout=1)
    with pytest.raises(SourceError, match="cannot open stream"):
        open_source("http://127.0.0.1:9/none.mjpg", camera_id="c", reconnect=policy)


def test_reconnect_policy_validates() -> None:
    assert list(
        ReconnectPolicy(initial_delay=1, factor=3, max_delay=5, max_retries=3).delays()
    ) == [
        1,
        3,
        5,
    ]
    with pytest.raises(ValueError, match="factor"):
        ReconnectPolicy(factor=0.5)
    with pytest.raises(ValueError, match="max_retries"):
        ReconnectPolicy(max_retries=-1)


def test_reconnect_waits_grow_to_the_cap_and_stop_after_max_retries(
    mjpeg_server: list[_MJPEGServer], caplog: pytest.LogCaptureFixture
) -> None:
    port = mjpeg_server[0].server_address[1]
    policy = ReconnectPolicy(
        initial_delay=0.02, factor=3, max_delay=0.1, max_retries=4, open_timeout=1
    )
    with (
        caplog.at_level(logging.WARNING),
        open_source(f"http://127.0.0.1:{port}/s.mjpg", camera_id="c", reconnect=policy) as source,
    ):
        iterator = iter(source)
        next(iterator)
        mjpeg_server[0].stop()
        with pytest.raises(SourceError, match="after 4 reconnect attempts"):
            for _ in iterator:
                pass
        assert source.reconnects == 0
    retries = [r.getMessage() for r in caplog.records if "reconnect attempt" in r.getMessage()]
    assert [m.split("reconnect ")[1] for m in retries] == [
        "attempt 1 in 0.02 s",
        "attempt 2 in 0.06 s",
        "attempt 3 in 0.10 s",
        "attempt 4 in 0.10 s",
    ]


def test_closing_a_stream_during_its_back_off_ends_it_quietly(
    mjpeg_server: list[_MJPEGServer],
) -> None:
    port = mjpeg_server[0].server_address[1]
    policy = ReconnectPolicy(initial_delay=30, max_delay=30, max_retries=None, open_timeout=1)
    source = open_source(f"http://127.0.0.1:{port}/s.mjpg", camera_id="c", reconnect=policy)
    iterator = iter(source)
    next(iterator)
    mjpeg_server[0].stop()
    closer = threading.Timer(0.5, source.close)
    closer.start()
    started = time.monotonic()
    assert list(iterator) == []  # no SourceError: closed, not given up
    assert time.monotonic() - started < 10
    closer.join()


def test_reconnect_policy_delays_endless_or_none() -> None:
    policy = ReconnectPolicy(initial_delay=0.1, factor=2, max_delay=1, max_retries=None)
    assert list(islice(policy.delays(), 6)) == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert list(ReconnectPolicy(max_retries=0).delays()) == []
