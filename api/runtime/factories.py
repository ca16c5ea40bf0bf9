"""What a camera run is built from: its source, its vision pipeline and its analytics."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from storesense.api import telemetry
from storesense.api.runtime.runner import CameraAnalyticsLike
from storesense.api.settings import ServiceSettings
from storesense.vision.detector import Detector
from storesense.vision.frames import Frame
from storesense.vision.inference import InferenceService
from storesense.vision.pipeline import CameraPipeline
from storesense.zones.config import CameraConfig, StoreLayout

PipelineFactory = Callable[[CameraConfig], CameraPipeline]
"""One :class:`CameraPipeline` (own tracker, the camera's masks) per camera run."""
EngineFactory = Callable[[StoreLayout, str, str, float], CameraAnalyticsLike]
"""``(layout, camera_id, identity, time_origin) -> analytics`` (zones, lines and shelves);
``identity`` goes into every event id
(:func:`~storesense.api.runtime.visits.event_identity_scope`)."""
SourceOpener = Callable[[CameraConfig, ServiceSettings], Iterable[Frame]]


def open_camera_source(camera: CameraConfig, settings: ServiceSettings) -> Iterable[Frame]:
    """The camera's frames through :func:`storesense.vision.sources.open_source`."""
    from storesense.vision.sources import open_source

    if camera.source is None:
        raise ValueError(f"camera {camera.id!r} has no source (it is a push camera)")
    return open_source(
        camera.source,
        camera_id=camera.id,
        fps=camera.fps,
        loop=settings.loop_sources,
        realtime=settings.realtime,
        max_lag=settings.source_max_lag_s if settings.realtime else None,
    )


def build_camera_analytics(
    layout: StoreLayout, camera_id: str, run_id: str, time_origin: float
) -> CameraAnalyticsLike:
    """The camera's zone, line and shelf analytics: the same object ``storesense count`` uses."""
    from storesense.zones.camera import CameraAnalytics

    return CameraAnalytics(layout, camera_id, run_id=run_id, time_origin=time_origin)


def pipeline_factory_for(detector: Detector | InferenceService) -> PipelineFactory:
    """Per camera run: a :class:`CameraPipeline` sharing ``detector``, with its own tracker
    (the camera's ``tracker`` settings), the camera's masks as ``detection_filter`` and
    stage times in ``/metrics``.

    The same detect → mask → (motion gate) → track path ``storesense count`` runs.
    """
    from storesense.zones.masks import MaskSet

    def make(camera: CameraConfig) -> CameraPipeline:
        masks = MaskSet(camera.masks)
        return CameraPipeline(
            detector,
            camera.tracker,
            stats=telemetry.PrometheusPipelineStats(camera.id),
            detection_filter=masks.apply if len(masks) else None,
            motion=camera.motion,
            input_size=camera.detector_input_size,
        )

    return make
