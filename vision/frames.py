"""A decoded frame and its clock."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MIN_FPS = 0.01
"""The slowest frame rate a source may declare: one frame every 100 s (a time-lapse camera)."""
MAX_FPS = 1_000.0
"""The fastest frame rate a source may declare."""


@dataclass(frozen=True)
class Frame:
    """One decoded image (BGR, HxWx3 uint8) from a camera.

    ``index`` is 1-based in decoded order (MOTChallenge numbering); ``timestamp``
    is seconds on the source's clock (or ``index-1 / fps`` where an fps is
    declared); ``camera_id`` names the source.
    """

    image: npt.NDArray[np.uint8]
    index: int
    timestamp: float
    camera_id: str = "cam"
