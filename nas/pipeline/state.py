"""``run.json``: the settings a run folder was made with and the stages it has finished."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.core.errors import PipelineError
from nas.core.files import atomic_write_text

RUN_FILE = "run.json"


@dataclass
class RunState:
    """The content of ``run.json``: ``{"settings": ..., "stages": {name: info}}``."""

    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, folder: Path, settings: dict[str, Any], restart: bool) -> RunState:
        """The folder's state, refusing a folder made with other settings (unless
        ``restart``, which forgets its finished stages). Written at once."""
        path = Path(folder) / RUN_FILE
        data: dict[str, Any] = {"settings": settings, "stages": {}}
        if path.exists() and not restart:
            try:
                old = json.loads(path.read_text())
            except json.JSONDecodeError:
                raise PipelineError(
                    f"{path} is corrupt; pass --restart to start this run over"
                ) from None
            if old.get("settings") != settings:
                prev = old.get("settings") or {}
                diff = sorted(
                    k for k in set(prev) | set(settings) if prev.get(k) != settings.get(k)
                )
                raise PipelineError(
                    f"{folder} holds a run with other settings ({', '.join(diff)} "
                    "differ); use another --out, the same settings to resume, or --restart"
                )
            data = old
        state = cls(path, data)
        state.save()
        return state

    @property
    def stages(self) -> dict[str, Any]:
        return self.data["stages"]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(self.data, indent=1, default=str))

    def done(self, stage: str) -> bool:
        return bool(self.stages.get(stage, {}).get("done"))

    def mark(self, stage: str, wall: float, info: dict[str, Any]) -> None:
        self.stages[stage] = {**info, "done": True, "seconds": round(wall, 2)}
        self.save()
