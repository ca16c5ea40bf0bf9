"""ONNX person detector: letterbox, one ``session.run``, decode, class-wise NMS.

Example:
    >>> from storesense.vision.detector import Detector
    >>> detector = Detector.from_model("yolox-nano")   # doctest: +SKIP
    >>> detections = detector.detect(frame_bgr)          # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt

# onnxruntime's 1DS telemetry writes a queue (exe path, OS, CPU, a device id) under
# ~/.cache/Microsoft at import time; only this variable, set before the import, stops it.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"
import onnxruntime as ort
from storesense.models.registry import ModelFormat
from storesense.vision.detections import Detections

logger = logging.getLogger(__name__)

PERSON_CLASS = 0
_DETECTOR_FORMATS = (ModelFormat.YOLOX, ModelFormat.YOLOV8)
_PROVIDER_PREFERENCE = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "OpenVINOExecutionProvider",
    "CoreMLExecutionProvider",
    "CPUExecutionProvider",
)

Image = npt.NDArray[np.uint8]


def choose_providers(requested: Sequence[str] | str | None = None) -> list[str]:
    """Execution providers to use: ``None``/``"cpu"`` → CPU; ``"auto"`` → the best available.

    Raises ``ValueError`` naming what is available when a requested provider is not.
    """
    available = ort.get_available_providers()
    if requested is None or requested == "cpu":
        return ["CPUExecutionProvider"]
    if requested == "auto":
        return [p for p in _PROVIDER_PREFERENCE if p in available]
    wanted = [requested] if isinstance(requested, str) else list(requested)
    missing = [p for p in wanted if p not in available]
    if missing:
        raise ValueError(f"execution providers {missing} not available (have {available})")
    return wanted


@dataclass(frozen=True)
class Letterbox:
    """How a frame was resized and padded into the network input."""

    scale: float
    pad_x: float
    pad_y: float

    def to_frame(self, boxes: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Network-input xyxy boxes → frame pixels."""
        offset = np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y], np.float32)
        return ((boxes - offset) * np.float32(1.0 / self.scale)).astype(np.float32)

    def to_network(self, boxes: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Frame-pixel xyxy boxes → network-input pixels (the inverse of :meth:`to_frame`)."""
        offset = np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y], np.float32)
        return (boxes * np.float32(self.scale) + offset).astype(np.float32)


def letterbox(
    image: Image, size: tuple[int, int], *, centre: bool, pad_value: int = 114
) -> tuple[Image, Letterbox]:
    """Resize keeping aspect ratio into ``size`` (h, w), padding with ``pad_value``.

    ``centre=False`` puts the image in the top-left corner (YOLOX); ``True`` centres it.

    Example:
        >>> import numpy as np
        >>> padded, box = letterbox(np.zeros((576, 768, 3), np.uint8), (416, 416), centre=False)
        >>> padded.shape, round(box.scale, 4), box.pad_x, box.pad_y
        ((416, 416, 3), 0.5417, 0.0, 0.0)
    """
    height, width = size
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"cannot letterbox an empty image of shape {image.shape}")
    scale = min(height / image.shape[0], width / image.shape[1])
    new_w = min(width, max(1, round(image.shape[1] * scale)))
    new_h = min(height, max(1, round(image.shape[0] * scale)))
    canvas = np.full((height, width, 3), pad_value, dtype=np.uint8)
    pad_x = (width - new_w) // 2 if centre else 0
    pad_y = (height - new_h) // 2 if centre else 0
    # Resize straight into the canvas region: no intermediate image.
    cv2.resize(
        image,
        (new_w, new_h),
        dst=canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w],
        interpolation=cv2.INTER_LINEAR,
    )
    return canvas, Letterbox(scale, float(pad_x), float(pad_y))


def yolox_grid(
    size: tuple[int, int], strides: Sequence[int] = (8, 16, 32)
) -> npt.NDArray[np.float32]:
    """Per-anchor (grid_x, grid_y, stride) rows in YOLOX output order."""
    rows = []
    for stride in strides:
        gh, gw = size[0] // stride, size[1] // stride
        ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        rows.append(np.stack([xs.ravel(), ys.ravel(), np.full(gh * gw, stride)], axis=1))
    return np.concatenate(rows).astype(np.float32)


def decode_yolox(
    output: npt.NDArray[np.float32], grid: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """YOLOX raw rows ``[N, >=4]`` (box offsets first) → xyxy in network pixels.

    Scores (objectness times class score) are read by :meth:`Detector.postprocess`.
    """
    stride = grid[:, 2:3]
    centre = (output[:, :2] + grid[:, :2]) * stride
    half = np.exp(output[:, 2:4]) * stride * 0.5
    return np.concatenate([centre - half, centre + half], axis=1)


def decode_yolov8(output: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Ultralytics columns ``[>=4, N]`` (cx, cy, w, h first) → xyxy in network pixels.

    Class scores (the rows after the box) are read by :meth:`Detector.postprocess`.
    """
    rows = output[:4].T
    centre, half = rows[:, :2], rows[:, 2:4] * 0.5
    return np.concatenate([centre - half, centre + half], axis=1)


def nms(
    boxes: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
    class_ids: npt.NDArray[np.int64],
    iou_threshold: float,
) -> npt.NDArray[np.int64]:
    """Class-wise non-maximum suppression; indices kept, best score first.

    Example:
        >>> import numpy as np
        >>> boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [1, 1, 10, 10]], np.float32)
        >>> nms(boxes, np.array([0.9, 0.8, 0.7], np.float32), np.array([0, 0, 1]), 0.5).tolist()
        [0, 2]
    """
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    xywh = np.empty_like(boxes, dtype=np.float32)
    xywh[:, :2] = boxes[:, :2]
    xywh[:, 2:] = boxes[:, 2:] - boxes[:, :2]
    kept = cv2.dnn.NMSBoxesBatched(
        cast(Any, xywh),
        cast(Any, scores.astype(np.float32, copy=False)),
        cast(Any, class_ids.astype(np.int32)),
        0.0,
        iou_threshold,
    )
    keep = np.asarray(kept, dtype=np.int64).reshape(-1)
    return keep[np.argsort(-scores[keep], kind="stable")]


def default_intra_op_threads() -> int:
    """onnxruntime intra-op threads: the CPUs this process may use, at most 4."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


def onnx_session(
    model_path: str | os.PathLike[str],
    *,
    providers: Sequence[str] | str | None = None,
    intra_op_threads: int | None = None,
    what: str = "model",
) -> ort.InferenceSession:
    """An onnxruntime session that shares the CPU politely (the detector and re-id use it).

    ``intra_op_threads=None`` means :func:`default_intra_op_threads`. Raises
    ``FileNotFoundError`` for a missing file (``what`` names it) and ``ValueError``
    (one line) for bad parameters or a file onnxruntime cannot load.
    """
    path = Path(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    if intra_op_threads is not None and intra_op_threads < 0:
        raise ValueError(f"intra_op_threads must be >= 0, got {intra_op_threads}")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = (
        intra_op_threads if intra_op_threads is not None else default_intra_op_threads()
    )
    # Spinning intra-op threads would steal the cores the decode thread and tracker need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    chosen = choose_providers(providers)
    ort.disable_telemetry_events()  # no usage events either, whatever the build
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=chosen)
    except Exception as exc:  # onnxruntime raises its own untyped errors
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"cannot load ONNX model {path}: {reason}") from None


def _network_input_size(shape: Sequence[object], requested: int | None) -> tuple[int, int]:
    """(H, W) of an NCHW model input: its fixed size, or ``requested`` (square) when dynamic.

    >>> _network_input_size([1, 3, 416, 416], None), _network_input_size([1, 3, "h", "w"], 640)
    ((416, 416), (640, 640))
    """
    if len(shape) != 4:
        raise ValueError(f"expected an NCHW model input; got {list(shape)}")
    dims = shape[2:]
    if all(isinstance(d, int) and d > 0 for d in dims):
        fixed = (int(dims[0]), int(dims[1]))  # type: ignore[call-overload]
        if requested is not None and (requested, requested) != fixed:
            raise ValueError(
                f"the model takes a fixed {fixed[0]}x{fixed[1]} input, not input size {requested}"
            )
        return fixed
    if requested is None:
        raise ValueError(f"the model's input size is not fixed ({list(shape)}): give input_size")
    if requested < 32 or requested % 32:
        raise ValueError(f"input_size must be a multiple of 32, at least 32; got {requested}")
    return (requested, requested)


def model_variant(
    model_path: str | os.PathLike[str],
    *,
    dynamic_batch: bool = False,
    input_size: tuple[int, int] | None = None,
    cache: str | os.PathLike[str] | None = None,
) -> Path:
    """A copy of an NCHW detector with a dynamic batch axis and/or another input size.

    Made once with the ``onnx`` package and cached (``cache``, default the model cache
    under ``storesense.models.fetch.cache_dir()``, named by the source's SHA-256), so a
    restart loads the copy directly. Reshape targets that pin the batch to 1 become 0
    (copy the batch of their input); the input's height and width are set to
    ``input_size`` (the YOLOX graph has no other size-dependent constants). The copy
    is loaded and run once before it is kept: a graph this cannot rewrite raises
    ``ValueError`` with the reason.
    """
    from storesense.models.fetch import cache_dir, sha256_of

    source = Path(model_path)
    if not source.is_file():
        raise FileNotFoundError(f"model file not found: {source}")
    if input_size is not None and (
        len(input_size) != 2 or any(side < 32 or side % 32 for side in input_size)
    ):
        raise ValueError(f"input_size must be two multiples of 32 (>= 32), got {input_size}")
    folder = Path(cache) if cache is not None else cache_dir() / "models" / "variants"
    size_tag = "native" if input_size is None else f"{input_size[0]}x{input_size[1]}"
    batch_tag = "dynbatch" if dynamic_batch else "batch1"
    target = folder / f"{source.stem}-{sha256_of(source)[:12]}-{batch_tag}-{size_tag}.onnx"
    if target.is_file():
        return target
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:  # pragma: no cover - onnx is a dependency
        raise ValueError("a model variant needs the onnx package: pip install onnx") from None
    model = onnx.load(str(source))
    graph = model.graph
    dims = graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise ValueError(f"{source}: expected an NCHW input, got {len(dims)} dimensions")
    if dynamic_batch:
        dims[0].ClearField("dim_value")
        dims[0].dim_param = "batch"
        shape_inputs = {node.input[1] for node in graph.node if node.op_type == "Reshape"}
        for initializer in graph.initializer:
            if initializer.name in shape_inputs:
                shape = numpy_helper.to_array(initializer).copy()
                if shape.ndim == 1 and len(shape) and shape[0] == 1:
                    shape[0] = 0
                    initializer.CopyFrom(numpy_helper.from_array(shape, initializer.name))
    if input_size is not None:
        dims[2].dim_value, dims[3].dim_value = input_size
    # Intermediate and output shapes were inferred for the old input: let onnxruntime redo them.
    del graph.value_info[:]
    for output in graph.output:
        for dim in output.type.tensor_type.shape.dim:
            dim.Clear()
    folder.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}-{threading.get_ident()}.part")
    onnx.save_model(model, str(partial))
    try:
        session = onnx_session(partial, intra_op_threads=1, what="model variant")
        model_input = session.get_inputs()[0]
        height, width = (int(d) for d in model_input.shape[2:])
        batch = 2 if dynamic_batch else 1
        session.run(None, {model_input.name: np.zeros((batch, 3, height, width), np.float32)})
    except Exception as exc:
        partial.unlink(missing_ok=True)
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        what = f"a {batch_tag} {size_tag} copy of {source}"
        raise ValueError(f"cannot make {what}: {reason}") from None
    partial.replace(target)
    logger.info("made %s", target)
    return target


class Detector:
    """An onnxruntime object detector for one of the :class:`ModelFormat` decoders.

    ``classes`` keeps only those class ids (person only by default; ``None``
    keeps all). Frames are BGR uint8 as OpenCV decodes them.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        model_format: ModelFormat | str = ModelFormat.YOLOX,
        *,
        score_threshold: float = 0.1,
        iou_threshold: float = 0.65,
        classes: Sequence[int] | None = (PERSON_CLASS,),
        providers: Sequence[str] | str | None = None,
        intra_op_threads: int | None = None,
        input_size: int | None = None,
    ) -> None:
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        self.format = ModelFormat(model_format)
        if self.format not in _DETECTOR_FORMATS:
            raise ValueError(f"{self.format} is not a detector format")
        self.model_path = Path(model_path)
        self._options: dict[str, Any] = {
            "score_threshold": score_threshold,
            "iou_threshold": iou_threshold,
            "classes": classes,
            "providers": providers,
            "intra_op_threads": intra_op_threads,
        }
        self.session = onnx_session(
            model_path, providers=providers, intra_op_threads=intra_op_threads
        )
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        shape = model_input.shape
        self.input_size: tuple[int, int] = _network_input_size(shape, input_size)
        self.batchable = not isinstance(shape[0], int)
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.classes = None if classes is None else np.asarray(classes, np.int64)
        self._grid = yolox_grid(self.input_size) if self.format == ModelFormat.YOLOX else None

    @classmethod
    def from_model(
        cls, name_or_path: str, model_format: ModelFormat | str | None = None, **kwargs: object
    ) -> Detector:
        """A registered model name (fetched if needed) or an ONNX path plus its format."""
        from storesense.models.fetch import fetch
        from storesense.models.registry import REGISTRY

        if name_or_path in REGISTRY:
            spec = REGISTRY[name_or_path]
            if spec.format not in _DETECTOR_FORMATS:
                # Checked before fetching: no download of a model that cannot be used.
                raise ValueError(f"{name_or_path} is a {spec.format.value} model, not a detector")
            return cls(fetch(name_or_path), model_format or spec.format, **kwargs)  # type: ignore[arg-type]
        return cls(name_or_path, model_format or ModelFormat.YOLOX, **kwargs)  # type: ignore[arg-type]

    def variant(
        self, *, input_size: int | tuple[int, int] | None = None, dynamic_batch: bool = False
    ) -> Detector:
        """This detector with another (square if one number) input size and/or a dynamic
        batch axis (a cached copy of the model, :func:`model_variant`); ``self`` when
        nothing changes. Same format, thresholds, providers and threads.

        Example:
            >>> detector.variant(input_size=320).input_size            # doctest: +SKIP
            (320, 320)
        """
        size = (input_size, input_size) if isinstance(input_size, int) else input_size
        if (size is None or tuple(size) == self.input_size) and (
            self.batchable or not dynamic_batch
        ):
            return self
        native = self.input_size if size is None else (int(size[0]), int(size[1]))
        path = model_variant(
            self.model_path,
            dynamic_batch=dynamic_batch or self.batchable,
            input_size=native,
        )
        return Detector(path, self.format, **self._options)

    def preprocess(self, image: Image) -> tuple[npt.NDArray[np.float32], Letterbox]:
        """One frame → a CHW float32 tensor and its letterbox."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 BGR image, got {image.shape} {image.dtype}")
        if self.format == ModelFormat.YOLOX:
            padded, box = letterbox(image, self.input_size, centre=False)
            return padded.transpose(2, 0, 1).astype(np.float32), box
        padded, box = letterbox(image, self.input_size, centre=True)
        tensor = padded[:, :, ::-1].transpose(2, 0, 1).astype(np.float32)
        tensor *= np.float32(1 / 255)
        return tensor, box

    def postprocess(self, raw: npt.NDArray[np.float32], box: Letterbox) -> Detections:
        """One image's raw output → filtered, NMS-ed detections in frame pixels.

        Rows under ``score_threshold`` are dropped before any decoding, so the cost
        follows the number of candidates, not the size of the output grid.
        """
        if self.format == ModelFormat.YOLOX:
            # score = objectness * class score <= objectness: filter on objectness first.
            rows = np.flatnonzero(raw[:, 4] >= self.score_threshold)
            if self.classes is None:
                class_scores = raw[rows, 5:]
            else:  # only the kept classes' columns of the candidate rows
                class_scores = raw[rows[:, None], 5 + self.classes]
            class_scores = class_scores * raw[rows, 4:5]
        else:
            scores_t = raw[4:] if self.classes is None else raw[4 + self.classes]
            rows = np.flatnonzero(scores_t.max(axis=0) >= self.score_threshold)
            class_scores = scores_t[:, rows].T
        if len(rows) == 0:
            return Detections.empty()
        best = class_scores.argmax(axis=1)
        scores = class_scores[np.arange(len(best)), best]
        keep = scores >= self.score_threshold
        rows, scores, best = rows[keep], scores[keep], best[keep]
        if self.format == ModelFormat.YOLOX:
            assert self._grid is not None
            boxes = decode_yolox(raw[rows, :4], self._grid[rows])
        else:
            boxes = decode_yolov8(raw[:4, rows])
        class_ids = self.classes[best] if self.classes is not None else best.astype(np.int64)
        order = nms(boxes, scores, class_ids, self.iou_threshold)
        return Detections(box.to_frame(boxes[order]), scores[order], class_ids[order])

    def run(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The bare ``session.run`` on an NCHW batch."""
        outputs = self.session.run(None, {self.input_name: batch})
        return np.asarray(outputs[0], dtype=np.float32)

    def detect(self, image: Image) -> Detections:
        tensor, box = self.preprocess(image)
        return self.postprocess(self.run(tensor[None])[0], box)

    def detect_batch(self, images: Sequence[Image]) -> list[Detections]:
        """Several frames (one per camera, say); one ``session.run`` if the batch is dynamic."""
        if not images:
            return []
        prepared = [self.preprocess(image) for image in images]
        if self.batchable:
            raw = self.run(np.stack([tensor for tensor, _ in prepared]))
        else:
            raw = np.concatenate([self.run(tensor[None]) for tensor, _ in prepared])
        return [self.postprocess(raw[i], box) for i, (_, box) in enumerate(prepared)]
