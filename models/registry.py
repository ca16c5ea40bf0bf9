"""Known models: name, decoder format, input size, public URL and SHA-256."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ModelFormat(StrEnum):
    """How a model's raw output is decoded."""

    YOLOX = "yolox"
    """YOLOX raw grid ``[1, N, 5+classes]``, BGR 0-255 input, top-left letterbox."""
    YOLOV8 = "yolov8"
    """Ultralytics YOLOv8/YOLO11 export ``[1, 4+classes, N]``, RGB 0-1 input, centred letterbox."""
    REID = "reid"
    """Person re-identification embedder (NHWC BGR crop in, 1xD embedding out)."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    filename: str
    format: ModelFormat
    input_size: tuple[int, int]
    """(height, width) the network expects."""
    url: str
    sha256: str
    description: str = ""


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="yolox-nano",
            filename="yolox_nano.onnx",
            format=ModelFormat.YOLOX,
            input_size=(416, 416),
            url=(
                "https://github.com/Kazuhito00/YOLOX-ONNX-TFLite-Sample/raw/"
                "3d4f1119d0694200671c08069ecb847aa0d8495a/model/yolox_nano.onnx"
            ),
            sha256="695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14",
            description="YOLOX-Nano, COCO 80 classes (person = 0), Apache-2.0",
        ),
        ModelSpec(
            name="person-reid-0248",
            filename="person-reidentification-retail-0248.onnx",
            format=ModelFormat.REID,
            input_size=(256, 128),
            url=(
                "https://github.com/Kazuhito00/MOT-Tracking-by-Detection-Pipeline/raw/"
                "e50a76b8b430b778276e7fd04fd4cafd5d45eab2/Tracker/person_reid/model/"
                "person-reidentification-retail-0248.onnx"
            ),
            sha256="43891ce644ff6f4c70cce150028e44d6cf3d150cb5a3eb75bf69bfaef0ebe789",
            description="Intel OMZ person re-identification, 256-d embedding, Apache-2.0",
        ),
    )
}

DEFAULT_DETECTOR = "yolox-nano"


class UnknownModelError(KeyError):
    def __str__(self) -> str:
        known = ", ".join(sorted(REGISTRY))
        return f"unknown model {self.args[0]!r} (known: {known})"


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownModelError(name) from None
