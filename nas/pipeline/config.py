"""What a ``donna run`` is: its settings (:class:`RunConfig`) and the sizes of every stage
(:class:`Preset`). Defaults are defined here only; the CLI shows them."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from nas.bkd.config import DEFAULT_WORKERS
from nas.core.errors import PipelineError
from nas.core.files import check_writable
from nas.core.spaces import TASK_SPACES, SearchSpace, task_space
from nas.data.batches import DEFAULT_DATA_WORKERS
from nas.training.device import DEFAULT_PRECISION, DEFAULT_TRAIN_DEVICE, check_train_device

__all__ = ["DEFAULT_WORKERS", "PRESETS", "PipelineError", "Preset", "RunConfig", "parse_overrides"]


@dataclass(frozen=True)
class Preset:
    """Sizes of every stage; ``quick`` is the README's ≤10-minute demo on 2 cores."""

    train_limit: int | None
    val_limit: int | None
    mothernet_epochs: float
    bkd_epochs: float
    bkd_train_samples: int | None
    bkd_val_samples: int | None
    finetune_epochs: float
    finals: int  # architectures finetuned
    hil_models: int  # architectures measured whole (plus the mothernet)
    pop_size: int
    generations: int

    def __post_init__(self) -> None:
        """Every size is checked when a preset is made (``--set`` included), so a bad one
        fails before anything is written, not when its stage comes."""
        for f in fields(self):
            problem = _size_problem(f.name, str(f.type), getattr(self, f.name))
            if problem:
                raise PipelineError(
                    f"preset size {f.name} {problem}; change it with --set {f.name}=VALUE"
                )


# The smallest value of each size (epochs: anything > 0) and why, when it is not obvious.
_SMALLEST: dict[str, tuple[int, str]] = {
    "train_limit": (2, " (BatchNorm trains on batches of 2 or more)"),
    "val_limit": (1, ""),
    "bkd_train_samples": (2, " (BatchNorm)"),
    "bkd_val_samples": (2, ""),
    "finals": (1, ""),
    "hil_models": (0, ""),
    "pop_size": (2, " (NSGA-II needs a population)"),
    "generations": (1, ""),
}


def _size_problem(name: str, declared: str, value: Any) -> str | None:
    """Why ``value`` cannot be the preset size ``name``, or ``None``."""
    if value is None and "None" in declared:
        return None
    shown = "none" if value is None else value
    if name.endswith("_epochs"):
        ok = isinstance(value, numbers.Real) and math.isfinite(value) and value > 0
        rule = "must be a number of epochs > 0"
    else:
        low, why = _SMALLEST[name]
        ok = isinstance(value, numbers.Integral) and value >= low
        rule = f"must be a whole number >= {low}{why}"
        if "None" in declared:
            rule += " or none (no cap)"
    if ok and not isinstance(value, bool):
        return None
    return f"{rule}, got {shown}"


PRESETS: dict[str, Preset] = {
    "quick": Preset(
        train_limit=4000,
        val_limit=1000,
        mothernet_epochs=6.0,
        bkd_epochs=1.0,
        bkd_train_samples=3000,
        bkd_val_samples=500,
        finetune_epochs=2.0,
        finals=3,
        hil_models=3,
        pop_size=100,
        generations=50,
    ),
    "full": Preset(
        train_limit=None,
        val_limit=None,
        mothernet_epochs=30.0,
        bkd_epochs=1.0,
        bkd_train_samples=10_000,
        bkd_val_samples=1000,
        finetune_epochs=10.0,
        finals=5,
        hil_models=8,
        pop_size=100,
        generations=50,
    ),
}


# Image-to-image networks keep full resolution in every block, so a training step costs
# several times a classification step: the quick preset uses less data for those tasks.
QUICK_IMAGE = replace(
    PRESETS["quick"],
    train_limit=2000,
    val_limit=500,
    mothernet_epochs=2.0,
    bkd_train_samples=640,
    bkd_val_samples=256,
    finetune_epochs=1.0,
    finals=2,
    hil_models=2,
)


def preset_for(name: str, task: str) -> Preset:
    if name == "quick" and task != "classification":
        return QUICK_IMAGE
    return PRESETS[name]


@dataclass(frozen=True)
class RunConfig:
    task: str = "classification"
    device: str = "host"
    data: str | None = None  # None: the task's built-in data
    out: Path | None = None  # None: runs/<task>
    space: str | None = None  # None: the task's quick space
    resolution: int | None = None
    lut: Path | None = None  # None: lut/<device>-<space>.json
    # bring your own (skips training): a checkpoint, or LIBRARY:MODEL:WEIGHTS (torchvision's or
    # timm's model with its weights file) imported once into the run folder, whose space is then
    # the run's unless --space names another
    mothernet: Path | str | None = None
    budget_ms: float | None = None
    seed: int = 0
    preset: str = "quick"
    workers: int = DEFAULT_WORKERS  # BKD worker processes (1 torch thread each)
    train_device: str = DEFAULT_TRAIN_DEVICE  # auto | cpu | cuda | cuda:N
    precision: str = DEFAULT_PRECISION  # 32 | bf16
    data_workers: int = DEFAULT_DATA_WORKERS  # DataLoader processes for streamed images
    benchmark_binary: Path | None = None  # phones: TFLite benchmark_model (default: cache)
    cooldown_s: float | None = None  # phones: rest between models (default: AdbConfig's)
    overrides: tuple[tuple[str, Any], ...] = ()  # preset fields changed by options

    def __post_init__(self) -> None:
        from nas.data import TASKS

        if self.task not in TASKS:
            raise PipelineError(f"unknown task {self.task!r}; choose one of: {', '.join(TASKS)}")
        if self.preset not in PRESETS:
            raise PipelineError(
                f"unknown preset {self.preset!r}; choose one of: {', '.join(PRESETS)}"
            )
        names = {f.name for f in fields(Preset)}
        for k, _ in self.overrides:
            if k not in names:
                raise PipelineError(f"unknown preset setting {k!r}")
        check_train_device(self.train_device, self.precision)
        if self.data_workers < 0:
            raise PipelineError(f"data workers must be >= 0, got {self.data_workers}")
        if self.imported_mothernet is not None and self.task != "classification":
            raise PipelineError(
                f"--mothernet {self.mothernet} is an ImageNet classifier; use it with --task "
                "classification"
            )
        self.stage_configs()  # every size and setting checked now, before anything is written

    def stage_configs(self) -> tuple[Any, Any]:
        """The BKD and search settings (:class:`~nas.bkd.config.BkdConfig`,
        :class:`~nas.search.config.SearchConfig`) the run's sizes give; made (so checked) when
        the run is configured. The sizes are checked by :class:`Preset`."""
        from nas.bkd.config import BkdConfig
        from nas.search.config import SearchConfig

        s = self.sizes
        bkd = BkdConfig(
            epochs=s.bkd_epochs, seed=self.seed, train_samples=s.bkd_train_samples,
            val_samples=s.bkd_val_samples, workers=self.workers,
        )  # fmt: skip
        search = SearchConfig(
            pop_size=s.pop_size, generations=s.generations, seed=self.seed,
            budget_ms=self.budget_ms,
        )  # fmt: skip
        return bkd, search

    def check_outputs(self) -> None:
        """Refuse, before any stage runs, a run folder that cannot be written, and a LUT that
        cannot be made (an existing LUT may be read-only: a complete one is only read)."""
        check_writable(self.folder, "run folder", folder=True)
        lut = self.lut_path()
        if not lut.exists():
            check_writable(lut, "LUT", fix="choose another --lut or fix the folder's permissions")

    @property
    def sizes(self) -> Preset:
        return replace(preset_for(self.preset, self.task), **dict(self.overrides))

    @property
    def space_name(self) -> str:
        imported = self.imported_mothernet
        return self.space or (imported.space_name if imported else TASK_SPACES[self.task])

    @property
    def imported_mothernet(self) -> Any:
        """The :class:`~nas.training.imported.MothernetSpec` of ``--mothernet
        LIBRARY:MODEL:WEIGHTS`` (unknown models raise), else ``None``."""
        from nas.training.imported import parse_mothernet_spec

        return parse_mothernet_spec(str(self.mothernet)) if self.mothernet else None

    @property
    def folder(self) -> Path:
        return Path(self.out) if self.out is not None else Path("runs") / self.task

    def lut_path(self) -> Path:
        if self.lut is not None:
            return Path(self.lut)
        from latency.devices import default_lut_path

        return default_lut_path(self.device, self.space_name, self.resolution)

    def get_space(self) -> SearchSpace:
        return task_space(self.task, self.space, self.resolution)

    def train_device_resolved(self) -> Any:
        """The :class:`~nas.training.device.TrainDevice` the training stages use (torch)."""
        from nas.training.device import resolve_train_device

        return resolve_train_device(self.train_device, self.precision)

    def device_configs(self) -> tuple[Any, Any]:
        """The measurement and phone settings of the run's device (:func:`open_device`)."""
        from latency.android.config import AdbConfig
        from latency.host import MeasureConfig

        adb = AdbConfig(binary=self.benchmark_binary)
        if self.cooldown_s is not None:
            adb = replace(adb, cooldown_s=self.cooldown_s)
        return MeasureConfig(seed=self.seed), adb

    @classmethod
    def from_settings(
        cls, settings: dict[str, Any], folder: Path, lut: Path | None = None
    ) -> RunConfig:
        """The configuration of a run folder again, from the settings its ``run.json``
        records (:meth:`result_settings`); ``lut``: the LUT its ``lut`` stage used."""
        try:
            sizes = dict(settings["sizes"])
            imported = None
            if settings.get("mothernet"):
                probe = cls(task=settings["task"], mothernet=settings["mothernet"])
                imported = probe.imported_mothernet
            own_space = imported is not None and settings["space"] == imported.space_name
            return cls(
                task=settings["task"],
                device=settings["device"],
                data=None if settings["data"] == "builtin" else settings["data"],
                out=Path(folder),
                space=None if own_space else settings["space"],
                resolution=settings.get("resolution"),
                lut=lut,
                mothernet=settings.get("mothernet"),
                budget_ms=settings.get("budget_ms"),
                seed=int(settings["seed"]),
                overrides=tuple(sizes.items()),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PipelineError(
                f"{Path(folder) / 'run.json'} does not hold the settings of a donna run "
                f"({type(exc).__name__}: {exc}); run `donna run --out {folder}` again"
            ) from None

    def result_settings(self) -> dict[str, Any]:
        """What changes results (recorded in run.json, compared on resume)."""
        return {
            "task": self.task,
            "device": self.device,
            "data": self.data or "builtin",
            "space": self.space_name,
            "resolution": self.resolution,
            "mothernet": str(self.mothernet) if self.mothernet else None,
            "seed": self.seed,
            "budget_ms": self.budget_ms,
            "sizes": asdict(self.sizes),
        }


def parse_overrides(items: Sequence[str]) -> tuple[tuple[str, Any], ...]:
    """``KEY=VALUE`` strings to typed preset overrides (``none`` = no cap)."""
    types = {f.name: f.type for f in fields(Preset)}
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in types:
            raise PipelineError(
                f"--set {item!r}: expected KEY=VALUE with KEY one of {', '.join(types)}"
            )
        text = value.strip().lower()
        try:
            if text in ("none", "all") and "None" in str(types[key]):
                parsed: Any = None
            elif "float" in str(types[key]):
                parsed = float(text)
            else:
                parsed = int(text)
        except ValueError:
            raise PipelineError(f"--set {item!r}: {value!r} is not a number") from None
        out.append((key, parsed))
    return tuple(out)
