"""What every input of a run is analysed with: the analyzer's settings and the service's options, as plain data
that travels to the Ray actors, and the key that tells whether an earlier result was made the same way.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from faceanalysis.pipeline.settings import Settings
from faceanalysis.service.contract import DEFAULT_FPS
from facecore.weights import load_manifest

# The tables' layout: part of the settings key, so that parts written with another layout are made again
# rather than merged into tables they do not fit.
TABLES_VERSION = 2


@dataclass(frozen=True)
class RunSpec:
    settings: dict          # Settings.to_json(): the actors build their FaceAnalyzer from it
    stride: int
    max_frames: int
    timeline: bool
    # The settings, the options that change an answer (stride, max_frames, fps), the model files' sha256s and
    # the tables' layout. --timeline is not part of it: it adds a table without changing any answer.
    settings_key: str
    fps: float = DEFAULT_FPS        # frames a second of inputs without a rate of their own (folders, zips)

    @classmethod
    def create(cls, settings: Settings, stride: int, max_frames: int, timeline: bool,
               fps: float = DEFAULT_FPS) -> "RunSpec":
        made_by = {"settings": settings.to_json(), "stride": stride, "max_frames": max_frames, "fps": fps,
                   "tables": TABLES_VERSION,
                   "models": {key: entry.get("sha256") for key, entry in load_manifest().items()}}
        key = hashlib.sha256(json.dumps(made_by, sort_keys=True).encode("utf-8")).hexdigest()[:16]
        return cls(settings.to_json(), stride, max_frames, timeline, key, fps)

    @property
    def options(self) -> dict:
        """The v2 request's options this run answers with (contract.Options' fields)."""
        return {"timeline": self.timeline, "max_frames": self.max_frames, "stride": self.stride, "fps": self.fps}

    def to_json(self) -> dict:
        return {"settings": self.settings, "stride": self.stride, "max_frames": self.max_frames,
                "timeline": self.timeline, "settings_key": self.settings_key, "fps": self.fps}
