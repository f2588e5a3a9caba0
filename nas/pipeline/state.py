"""``run.json``: the settings a run folder was made with and the stages it has finished."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.core.errors import PipelineError
from nas.core.files import atomic_write_text, check_writable

RUN_FILE = "run.json"


def setting_differences(
    old: dict[str, Any], new: dict[str, Any], prefix: str = ""
) -> list[tuple[str, str, str]]:
    """``(key, old value, new value)`` of every setting that differs; nested settings (the
    sizes) by their dotted key, e.g. ``sizes.pop_size``. Values as JSON (``null``: unset)."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += setting_differences(a, b, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", json.dumps(a, default=str), json.dumps(b, default=str)))
    return out


@dataclass
class RunState:
    """The content of ``run.json``: ``{"settings": ..., "stages": {name: info}}``."""

    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, folder: Path, settings: dict[str, Any], restart: bool) -> RunState:
        """The folder's state, refusing a folder made with other settings (unless
        ``restart``, which forgets its finished stages). Written at once."""
        check_writable(folder, "run folder", folder=True)
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
                diff = setting_differences(old.get("settings") or {}, settings)
                keys = ", ".join(k for k, _, _ in diff)
                values = "; ".join(f"{k}: {a} in {path}, {b} now" for k, a, b in diff)
                raise PipelineError(
                    f"{folder} holds a run with other settings ({keys} differ): {values}. "
                    "Use another --out, the same settings to resume, or --restart"
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
