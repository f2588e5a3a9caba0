"""A finished ``donna run`` folder, opened for an experiment: its settings, stages and inputs
(:class:`FinishedRun`), and the two costly things every experiment does to the architectures
it picks: measure them whole on the run's device (:meth:`FinishedRun.measure`) and finetune
them (:meth:`FinishedRun.finetune`). Both are cached by architecture under the experiment's
folder, so an experiment that is killed or run again redoes nothing, and a model that two
fronts share is measured and finetuned once."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.core.errors import PipelineError
from nas.core.files import atomic_write_text, check_writable
from nas.core.spaces import SearchSpace, SlotOption
from nas.pipeline.config import RunConfig
from nas.pipeline.picks import Echo, choices_key
from nas.pipeline.stages import STAGES, RunContext
from nas.pipeline.state import RUN_FILE

EXPERIMENTS_DIR = "experiments"


class ExperimentError(PipelineError):
    """An experiment cannot run on this folder as asked."""


@dataclass
class FinishedRun:
    """A run folder whose stages up to ``needs`` are finished, opened read-only except for
    ``experiments/<name>/`` (checked writable when opened)."""

    folder: Path
    name: str
    context: RunContext
    echo: Echo = print
    _measured: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def open(
        cls,
        folder: Path,
        name: str,
        *,
        needs: str = "search",
        device: str | None = None,
        echo: Echo = print,
    ) -> FinishedRun:
        """Open ``folder`` for experiment ``name``. Refused with one line: a folder that is no
        run, one whose stages up to ``needs`` are not all finished (the first missing one
        named), and one made on another device than ``device`` (when given)."""
        folder = Path(folder)
        state_file = folder / RUN_FILE
        if not state_file.is_file():
            raise ExperimentError(
                f"{folder} is not a donna run folder (no {RUN_FILE}); make one with "
                f"`donna run --out {folder}`"
            )
        try:
            state = json.loads(state_file.read_text())
            settings, stages = state["settings"], state["stages"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ExperimentError(
                f"{state_file} is corrupt; run `donna run --out {folder}` to finish the run"
            ) from None
        order = list(STAGES)
        missing = [s for s in order[: order.index(needs) + 1] if not stages.get(s, {}).get("done")]
        if missing:
            raise ExperimentError(
                f"the run in {folder} is unfinished: stage {missing[0]!r} has not run (the "
                f"experiment needs every stage up to {needs!r}); finish it with `donna run "
                f"--out {folder}` and the same settings"
            )
        if device is not None and device != settings.get("device"):
            raise ExperimentError(
                f"the run in {folder} was measured on device {settings.get('device')!r}, not "
                f"{device!r}: its LUT and search hold that device's latencies; pass --device "
                f"{settings.get('device')} or make a run on {device} (donna run --device {device})"
            )
        lut = stages.get("lut", {}).get("lut")
        res = settings.get("resolution")
        space_arg = f"{settings.get('space')}" + (f" --resolution {res}" if res else "")
        if lut and not Path(lut).is_file():
            raise ExperimentError(
                f"the LUT of the run in {folder}, {lut}, is not there"
                + (
                    " (a relative path, read from the current folder: run the experiment from "
                    "the folder `donna run` was started in)"
                    if not Path(lut).is_absolute()
                    else f"; put it back, or profile it again: `latency-profile --device "
                    f"{settings.get('device')} --space {space_arg} --out {lut}`"
                )
            )
        config = RunConfig.from_settings(settings, folder, Path(lut) if lut else None)
        out = folder / EXPERIMENTS_DIR / name
        check_writable(out, f"{name} experiment folder", folder=True)
        return cls(folder, name, RunContext(config, echo, state), echo)

    @property
    def out(self) -> Path:
        return self.folder / EXPERIMENTS_DIR / self.name

    @property
    def config(self) -> RunConfig:
        return self.context.config

    @property
    def space(self) -> SearchSpace:
        """The run's unfiltered space."""
        return self.context.space

    def filtered_space(self) -> SearchSpace:
        from nas.filter import load_filtered_space

        return load_filtered_space(self.context.path("space.json"), self.library())

    def library(self) -> Any:
        from nas.bkd.library import BkdLibrary

        return BkdLibrary.load(self.context.path("bkd.json"))

    def measure(self, archs: Sequence[Any]) -> list[dict[str, Any]]:
        """Each architecture converted and timed whole on the run's device, as the ``hil``
        stage does: ``{"lut_ms", "measured_ms", "error_pct"}`` per architecture. Cached in
        ``measured.json`` of the experiment folder, keyed by architecture."""
        from latency.profiler import measure_architectures

        cache_file = self.out / "measured.json"
        if not self._measured and cache_file.exists():
            self._measured = json.loads(cache_file.read_text())
        keys = [_arch_digest(a) for a in archs]
        todo = list({k: a for k, a in zip(keys, archs) if k not in self._measured}.items())
        if todo:
            table = self.context.table()
            self.echo(f"measuring {len(todo)} model(s) whole on {self.config.device}")
            with self.context.open_device() as device:
                got = measure_architectures(
                    [a for _, a in todo], device, table, self.context.convert_config()
                )
            for (k, a), m in zip(todo, got):
                est = table.lookup(a) / 1000.0
                meas = m.warm.median_us / 1000.0
                self._measured[k] = {
                    "lut_ms": est,
                    "measured_ms": meas,
                    "error_pct": (est - meas) / meas * 100.0,
                }
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(cache_file, json.dumps(self._measured, indent=1))
        return [dict(self._measured[k]) for k in keys]

    def finetune(
        self,
        space: SearchSpace,
        choices: Sequence[SlotOption],
        *,
        epochs: float | None = None,
        device: Any = None,
        data_workers: int = 0,
    ) -> dict[str, Any]:
        """Finetune one architecture as the ``finetune`` stage does (the run's data, seed and
        finetune epochs unless ``epochs``), cached in ``finetune/<key>/result.json``."""
        from nas.pipeline.picks import FinetuneInputs, finetune_choices
        from nas.training.checkpoint import load_checkpoint

        epochs = epochs or self.config.sizes.finetune_epochs
        out = self.out / "finetune" / f"{choices_key(choices)}-e{epochs:g}"
        done = out / "result.json"
        if done.is_file() and (out / "model.pt").is_file():
            return json.loads(done.read_text())
        ctx = self.context
        teacher, _, meta = load_checkpoint(ctx.mothernet_path)
        inputs = FinetuneInputs(space, self.library(), teacher, meta, ctx.data())
        return finetune_choices(
            inputs, choices, out, label=f"[{choices_key(choices)}]", epochs=epochs,
            seed=self.config.seed, echo=self.echo, device=device or ctx.train_device,
            data_workers=data_workers or self.config.data_workers,
        )  # fmt: skip

    def write_json(self, name: str, payload: Any) -> Path:
        path = self.out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(payload, indent=1, default=str))
        return path

    def refresh_report(self) -> Path:
        """Write the run's ``report.md`` again, so it links this experiment's outputs."""
        from nas.pipeline.report import write_report

        return write_report(self.folder, self.context.state)


def _arch_digest(arch: Any) -> str:
    """The architecture's conversion-cache key (its flat block list), hashed."""
    return hashlib.sha256(arch.key().encode()).hexdigest()[:16]
