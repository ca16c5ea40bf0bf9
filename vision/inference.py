"""One inference service per process: every camera's frames, batched, scheduled fairly.

Camera threads hand their letterboxed input tensors to :meth:`InferenceService.infer`
and wait; ``workers`` service threads take requests from the cameras in round-robin
order (at most one request per camera per turn, so a busy camera cannot starve a
quiet one), stack up to ``max_batch`` requests for the same model into one
``session.run`` when the model's batch axis is dynamic, and hand each camera its row.

Threading, measured on a 2-core CPU box (``benchmarks/capacity.py``): a session with
one intra-op thread per service worker and one worker per core gives the lowest
CPU-ms a frame; more intra-op threads or more threads calling ``session.run`` than
cores only add hand-offs. On CPU a batch is no cheaper a frame than batch 1 (22-24
CPU-ms a frame at batch 1, 2, 4 and 8), so ``max_batch`` defaults to 1 there; on a
GPU provider it defaults to 8, which is what keeps the GPU busy.

Example:
    >>> from storesense.vision.detector import Detector
    >>> detector = Detector.from_model("yolox-nano", intra_op_threads=1)   # doctest: +SKIP
    >>> service = InferenceService(detector)                               # doctest: +SKIP
    >>> service.infer("door", tensor).shape        # one image's raw rows  # doctest: +SKIP
    (3549, 85)
    >>> service.close()                                                    # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from storesense.vision.detector import Detector

logger = logging.getLogger(__name__)

GPU_BATCH = 8


def default_workers() -> int:
    """Service threads: the CPUs this process may use, at most 4."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


@dataclass
class _Request:
    camera_id: str
    detector: Detector
    tensor: npt.NDArray[np.float32]
    future: Future[npt.NDArray[np.float32]] = field(default_factory=Future)


class InferenceService:
    """Runs the detector for every camera of the process (see the module docstring).

    ``detector`` is the base model; :meth:`detector_for` gives per-camera input sizes
    (cached copies of the model). ``max_batch`` > 1 needs a dynamic batch axis: a
    fixed-batch model is replaced by its dynamic-batch copy. ``start=False`` leaves
    the service threads unstarted until :meth:`start` (tests queue requests first).
    ``served`` (when a list is given) receives each served request's camera id, in
    order. Thread-safe.
    """

    def __init__(
        self,
        detector: Detector,
        *,
        workers: int | None = None,
        max_batch: int | None = None,
        start: bool = True,
        served: list[str] | None = None,
    ) -> None:
        workers = default_workers() if workers is None else workers
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        on_cpu = detector.session.get_providers()[0] == "CPUExecutionProvider"
        max_batch = (1 if on_cpu else GPU_BATCH) if max_batch is None else max_batch
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.max_batch = max_batch
        self.detector = detector.variant(dynamic_batch=True) if max_batch > 1 else detector
        self._detectors: dict[tuple[int, int], Detector] = {self.detector.input_size: self.detector}
        self._queues: dict[str, deque[_Request]] = {}
        self._ring: list[str] = []
        """Cameras in round-robin order; the next turn starts at ``_cursor``."""
        self._cursor = 0
        self._pending = 0
        self._served = served
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._closed = False
        self.batches = 0
        """``session.run`` calls made."""
        self.frames = 0
        """Frames inferred."""
        self._threads = [
            threading.Thread(target=self._serve, name=f"inference-{i}", daemon=True)
            for i in range(workers)
        ]
        if start:
            self.start()

    def start(self) -> None:
        for thread in self._threads:
            if not thread.is_alive():
                thread.start()

    def detector_for(self, input_size: int | tuple[int, int] | None = None) -> Detector:
        """The detector for a camera's input size (``None``: the base model's)."""
        if input_size is None:
            return self.detector
        size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        key = (int(size[0]), int(size[1]))
        with self._lock:
            found = self._detectors.get(key)
        if found is not None:
            return found
        made = self.detector.variant(input_size=key, dynamic_batch=self.max_batch > 1)
        with self._lock:
            return self._detectors.setdefault(key, made)

    def submit(
        self,
        camera_id: str,
        tensor: npt.NDArray[np.float32],
        detector: Detector | None = None,
    ) -> Future[npt.NDArray[np.float32]]:
        """Queue one CHW input tensor; the future gives that image's raw output rows."""
        chosen = detector or self.detector
        if tensor.shape != (3, *chosen.input_size):
            raise ValueError(
                f"tensor shape {tensor.shape} does not fit the model input "
                f"(3, {chosen.input_size[0]}, {chosen.input_size[1]})"
            )
        request = _Request(camera_id, chosen, tensor)
        with self._work:
            if self._closed:
                raise RuntimeError("the inference service is closed")
            queue = self._queues.get(camera_id)
            if queue is None:
                queue = self._queues[camera_id] = deque()
                self._ring.append(camera_id)
            queue.append(request)
            self._pending += 1
            self._work.notify()
        return request.future

    def infer(
        self,
        camera_id: str,
        tensor: npt.NDArray[np.float32],
        detector: Detector | None = None,
        *,
        timeout: float | None = 60.0,
    ) -> npt.NDArray[np.float32]:
        """:meth:`submit` and wait for the result (errors of ``session.run`` re-raised;
        ``TimeoutError`` after ``timeout`` seconds, so a stuck service fails the camera's
        run, which then restarts, instead of hanging it)."""
        return self.submit(camera_id, tensor, detector).result(timeout=timeout)

    def close(self) -> None:
        """Stop the service threads; queued requests fail with ``RuntimeError``."""
        with self._work:
            self._closed = True
            left = [request for queue in self._queues.values() for request in queue]
            self._queues.clear()
            self._ring.clear()
            self._pending = 0
            self._work.notify_all()
        for request in left:
            request.future.set_exception(RuntimeError("the inference service is closed"))
        for thread in self._threads:
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout=10)

    def __enter__(self) -> InferenceService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _take_batch(self) -> list[_Request]:
        """Up to ``max_batch`` requests for one model, one per camera per turn (lock held)."""
        batch: list[_Request] = []
        model: Detector | None = None
        while len(batch) < self.max_batch:
            count = len(self._ring)
            last = -1
            for step in range(count):
                position = (self._cursor + step) % count
                queue = self._queues[self._ring[position]]
                if queue and (model is None or queue[0].detector is model):
                    request = queue.popleft()
                    model = request.detector
                    batch.append(request)
                    last = position
                    if len(batch) == self.max_batch:
                        break
            if last < 0:
                break
            self._cursor = (last + 1) % count
        self._pending -= len(batch)
        self._forget_idle_cameras()
        return batch

    def _forget_idle_cameras(self) -> None:
        if len(self._ring) <= 64:
            return
        # Many short-lived camera ids (pushed frames from ever-new ids): drop empty queues.
        keep = [camera for camera in self._ring if self._queues[camera]]
        for camera in set(self._ring) - set(keep):
            del self._queues[camera]
        self._ring = keep
        self._cursor = 0

    def _serve(self) -> None:
        while True:
            with self._work:
                while not self._pending and not self._closed:
                    self._work.wait()
                if self._closed:
                    return
                batch = self._take_batch()
                if self._served is not None:
                    self._served.extend(request.camera_id for request in batch)
            self._run(batch)

    def _run(self, batch: list[_Request]) -> None:
        live = [request for request in batch if request.future.set_running_or_notify_cancel()]
        if not live:
            return
        detector = live[0].detector
        try:
            if len(live) == 1:
                raw = detector.run(live[0].tensor[None])
            else:
                raw = detector.run(np.stack([request.tensor for request in live]))
        except Exception as exc:  # handed to every waiting camera
            for request in live:
                request.future.set_exception(exc)
            return
        self.batches += 1
        self.frames += len(live)
        for row, request in enumerate(live):
            request.future.set_result(raw[row])
