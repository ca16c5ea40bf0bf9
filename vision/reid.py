"""Person re-identification embeddings (opt-in recognition only).

StoreSense is anonymous by default: this module is used only by the opt-in
re-id hook (``storesense.api.privacy.reid_hook``) to follow a consenting member
across cameras during one visit. It turns person crops into unit-length
256-d appearance vectors; compare two with a dot product (cosine similarity).

The bundled model (Intel OMZ ``person-reidentification-retail-0248``, registry
name ``person-reid-0248``) takes ``inputs:0`` float32 ``1x256x128x3`` NHWC,
BGR 0-255. Its graph hard-codes batch 1 in internal reshapes, so crops run one
``session.run`` each; a model with a free batch axis is run in one batch.

Example:
    >>> from storesense.models.fetch import fetch
    >>> embedder = ReidEmbedder(fetch("person-reid-0248"))        # doctest: +SKIP
    >>> vectors = embedder.embed(frame_bgr, tracks.xyxy)          # doctest: +SKIP
    >>> float(vectors[0] @ vectors[1])                            # doctest: +SKIP
    0.42
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt
from storesense.vision.detector import onnx_session

Image = npt.NDArray[np.uint8]
Embeddings = npt.NDArray[np.float32]

EMBEDDING_EPSILON = 1e-12


def crop_boxes(image: Image, boxes: npt.ArrayLike) -> list[Image]:
    """The pixels of each ``xyxy`` box, clipped to the image (views, not copies).

    Raises ``ValueError`` for a box with no pixels inside the image.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 BGR image, got {image.shape} {image.dtype}")
    xyxy = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not np.isfinite(xyxy).all():
        raise ValueError("boxes must be finite numbers")
    height, width = image.shape[:2]
    crops: list[Image] = []
    for left, top, right, bottom in xyxy:
        x0, y0 = max(0, int(np.floor(left))), max(0, int(np.floor(top)))
        x1, y1 = min(width, int(np.ceil(right))), min(height, int(np.ceil(bottom)))
        if x1 <= x0 or y1 <= y0:
            raise ValueError(
                f"box {[float(left), float(top), float(right), float(bottom)]} has no pixels "
                f"inside the {width}x{height} image"
            )
        crops.append(image[y0:y1, x0:x1])
    return crops


def l2_normalise(vectors: npt.NDArray[np.float32]) -> Embeddings:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, EMBEDDING_EPSILON)).astype(np.float32)


class ReidEmbedder:
    """An ONNX re-id model: person crops in, L2-normalised embeddings out.

    ``model_path`` is an NHWC BGR 0-255 embedder like ``person-reid-0248``.
    ``intra_op_threads`` bounds onnxruntime's threads (the detector shares the CPU;
    default :func:`~storesense.vision.detector.default_intra_op_threads`).
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        providers: Sequence[str] | str | None = None,
        intra_op_threads: int | None = None,
    ) -> None:
        self.session = onnx_session(
            model_path,
            providers=providers,
            intra_op_threads=intra_op_threads,
            what="re-id model",
        )
        model_input = self.session.get_inputs()[0]
        shape = model_input.shape
        if len(shape) != 4 or shape[3] != 3 or not all(isinstance(d, int) for d in shape[1:3]):
            raise ValueError(f"expected an NHWC input with fixed H, W and 3 channels; got {shape}")
        self.input_name: str = model_input.name
        self.input_size: tuple[int, int] = (int(shape[1]), int(shape[2]))
        """(height, width) of one crop as the network sees it."""
        self.batchable = not isinstance(shape[0], int) or shape[0] != 1
        output_shape = self.session.get_outputs()[0].shape
        self.dimension: int = int(output_shape[-1]) if isinstance(output_shape[-1], int) else -1

    @classmethod
    def from_model(cls, name: str = "person-reid-0248", **kwargs: object) -> ReidEmbedder:
        """A registered re-id model, fetched (and checksum-verified) if needed."""
        from storesense.models.fetch import fetch

        return cls(fetch(name), **kwargs)  # type: ignore[arg-type]

    def preprocess(self, crop: Image) -> npt.NDArray[np.float32]:
        """One BGR crop → an HxWx3 float32 tensor (BGR, 0-255, stretched to the input size)."""
        height, width = self.input_size
        resized = cv2.resize(crop, (width, height), interpolation=cv2.INTER_LINEAR)
        return resized.astype(np.float32)

    def embed_crops(self, crops: Sequence[Image]) -> Embeddings:
        """Embeddings (N, D) of BGR uint8 crops, each L2-normalised."""
        if not crops:
            return np.zeros((0, max(self.dimension, 0)), np.float32)
        for crop in crops:
            if crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8 or crop.size == 0:
                raise ValueError(
                    f"expected non-empty HxWx3 uint8 BGR crops, got {crop.shape} {crop.dtype}"
                )
        batch = np.stack([self.preprocess(crop) for crop in crops])
        if self.batchable:
            raw = self.session.run(None, {self.input_name: batch})[0]
        else:
            raw = np.concatenate(
                [
                    self.session.run(None, {self.input_name: batch[i : i + 1]})[0]
                    for i in range(len(batch))
                ]
            )
        return l2_normalise(np.asarray(raw, np.float32).reshape(len(crops), -1))

    def embed(self, image: Image, boxes: npt.ArrayLike) -> Embeddings:
        """Embeddings (N, D) of the ``xyxy`` boxes of one BGR frame, L2-normalised.

        A box is clipped to the frame; one with no pixels inside it raises ``ValueError``.
        """
        return self.embed_crops(crop_boxes(image, boxes))
