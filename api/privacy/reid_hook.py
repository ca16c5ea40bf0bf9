"""Opt-in re-identification: follow a consenting member across cameras during one visit.

When a member checks in and their track is linked, :class:`ReidHook` receives
crops of that track (it sets ``wants_crops``) and builds an appearance
*template*: the mean of up to ``template_size`` embeddings, one every
``template_stride`` crops. The template lives in memory for that visit only:
it is deleted when the visit ends or the member is erased.

While a member is being searched for (their track was lost, or they may come
into view of another camera), the :class:`~storesense.api.privacy.hooks.HookDispatcher`
asks :meth:`ReidHook.search` about new, unlinked tracks. Their embeddings are
computed in that call, compared with the templates and discarded when it
returns: nobody else's appearance is ever stored. Repeat visits are recognised
from check-ins, never from appearance: templates do not outlive a visit.

Example:
    >>> hook = ReidHook()                          # doctest: +SKIP
    >>> dispatcher = HookDispatcher([hook], reidentifier=hook)   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
from storesense.api.privacy.consent import TrackKey
from storesense.vision.reid import ReidEmbedder, crop_boxes, l2_normalise
from storesense.zones.events import Event

logger = logging.getLogger(__name__)

DEFAULT_MATCH_THRESHOLD = 0.8
"""Cosine similarity to accept a match: on PETS09-S2L1 (``benchmarks/reid.py``) 1% of
other people's crops score above 0.81 against an 8-crop template: a mislink would hand a
stranger's data to a member's hooks, so the threshold sits there and misses are accepted."""


class ReidHook:
    """Built-in hook: per-visit appearance templates of consenting members, and the search.

    ``model_path`` defaults to the registered ``person-reid-0248`` (fetched and
    verified). ``threshold`` is the cosine similarity a candidate must reach;
    ``min_crop_height`` skips crops too small to describe anyone.
    """

    wants_crops = True

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        threshold: float = DEFAULT_MATCH_THRESHOLD,
        template_size: int = 8,
        template_stride: int = 3,
        min_crop_height: int = 40,
        intra_op_threads: int | None = 1,
        embedder: ReidEmbedder | None = None,
    ) -> None:
        if not -1.0 <= threshold <= 1.0:
            raise ValueError(f"threshold is a cosine similarity in [-1, 1], got {threshold}")
        if template_size < 1 or template_stride < 1 or min_crop_height < 1:
            raise ValueError("template_size, template_stride and min_crop_height must be >= 1")
        if embedder is None:
            embedder = (
                ReidEmbedder.from_model(intra_op_threads=intra_op_threads)
                if model_path is None
                else ReidEmbedder(model_path, intra_op_threads=intra_op_threads)
            )
        self.embedder = embedder
        self.threshold = threshold
        self.template_size = template_size
        self.template_stride = template_stride
        self.min_crop_height = min_crop_height
        self._templates: dict[str, npt.NDArray[np.float32]] = {}
        """Member token → L2-normalised mean embedding (the only embeddings kept)."""
        self._template_counts: dict[str, int] = {}
        self._crops_seen: dict[str, int] = {}
        self._lock = threading.Lock()

    # RecognitionHook -----------------------------------------------------------------
    def on_member_event(self, member_token: str, event: Event) -> None:
        """Events are not needed to re-identify."""

    def on_member_crop(
        self, member_token: str, camera_id: str, crop: npt.NDArray[np.uint8]
    ) -> None:
        with self._lock:
            seen = self._crops_seen.get(member_token, 0)
            self._crops_seen[member_token] = seen + 1
            count = self._template_counts.get(member_token, 0)
            if (
                count >= self.template_size
                or seen % self.template_stride != 0
                or crop.shape[0] < self.min_crop_height
            ):
                return
        vector = self.embedder.embed_crops([crop])[0]
        with self._lock:
            if member_token not in self._crops_seen:
                return  # erased or ended while embedding
            previous = self._templates.get(member_token)
            total = vector if previous is None else previous * count + vector
            self._templates[member_token] = l2_normalise(total[None])[0]
            self._template_counts[member_token] = count + 1

    def on_visit_end(self, member_token: str, events: Sequence[Event]) -> None:
        self.forget(member_token)

    def on_member_erased(self, member_token: str) -> None:
        self.forget(member_token)

    def forget(self, member_token: str) -> None:
        """Delete the member's template (their visit ended or they were erased)."""
        with self._lock:
            self._templates.pop(member_token, None)
            self._template_counts.pop(member_token, None)
            self._crops_seen.pop(member_token, None)

    # Reidentifier ----------------------------------------------------------------------
    def can_search(self, member_token: str) -> bool:
        with self._lock:
            return member_token in self._templates

    def template_tokens(self) -> set[str]:
        with self._lock:
            return set(self._templates)

    def search(
        self,
        image: npt.NDArray[np.uint8],
        candidates: Mapping[TrackKey, npt.NDArray[np.float32]],
        member_tokens: Sequence[str],
    ) -> dict[str, TrackKey]:
        """Match candidate boxes to searched members, one-to-one, best similarity first.

        The candidates' embeddings exist only inside this call.
        """
        with self._lock:
            tokens = [t for t in member_tokens if t in self._templates]
            if not tokens:
                return {}
            templates = np.stack([self._templates[t] for t in tokens])
        keys = [k for k, box in candidates.items() if box[3] - box[1] >= self.min_crop_height]
        if not keys:
            return {}
        crops = crop_boxes(image, np.stack([candidates[k] for k in keys]))
        similarity = templates @ self.embedder.embed_crops(crops).T
        matches: dict[str, TrackKey] = {}
        used: set[int] = set()
        for flat in np.argsort(-similarity, axis=None):
            row, column = divmod(int(flat), len(keys))
            if similarity[row, column] < self.threshold:
                break
            if tokens[row] in matches or column in used:
                continue
            matches[tokens[row]] = keys[column]
            used.add(column)
        return matches
