"""A decoded frame and its clock."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


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
