"""``donna run``: the whole pipeline in one folder, resumable stage by stage.

Stages, in order (each writes its outputs atomically, then is marked done in ``run.json``):

1. ``mothernet``  train the mothernet on the task data (or use ``--mothernet FILE``)
2. ``lut``        profile every block of the space on the device (reuses an existing LUT)
3. ``bkd``        blockwise knowledge distillation of every option (resumable per option)
4. ``filter``     drop options that cost much for their loss level
5. ``search``     NSGA-II over the filtered space: summed BKD MSE vs LUT latency
6. ``hil``        convert chosen models whole and measure them on the device (LUT vs measured)
7. ``finetune``   finetune the chosen models with distillation from the mothernet
8. ``report``     ``report.md`` with tables and plots

A rerun with the same settings skips finished stages (and, inside ``lut`` and ``bkd``,
finished blocks and options). Settings that change results are recorded; a rerun with other
settings in the same folder is refused with the difference named.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from nas.core.errors import DonnaError
from nas.core.files import atomic_write_text
from nas.core.spaces import TASK_SPACES, SearchSpace, get_space

DEFAULT_WORKERS = 2
STAGES = ("mothernet", "lut", "bkd", "filter", "search", "hil", "finetune", "report")
RUN_FILE = "run.json"


class PipelineError(DonnaError):
    """The pipeline cannot run as configured."""


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
    mothernet: Path | None = None  # bring your own (skips training)
    budget_ms: float | None = None
    seed: int = 0
    preset: str = "quick"
    workers: int = DEFAULT_WORKERS  # BKD worker processes (1 torch thread each)
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

    @property
    def sizes(self) -> Preset:
        return replace(preset_for(self.preset, self.task), **dict(self.overrides))

    @property
    def space_name(self) -> str:
        return self.space or TASK_SPACES[self.task]

    @property
    def folder(self) -> Path:
        return Path(self.out) if self.out is not None else Path("runs") / self.task

    def lut_path(self) -> Path:
        if self.lut is not None:
            return Path(self.lut)
        from latency.android.run import safe_name

        res = f"-r{self.resolution}" if self.resolution else ""
        return Path("lut") / f"{safe_name(self.device)}-{self.space_name}{res}.json"

    def get_space(self) -> SearchSpace:
        sp = get_space(self.space_name, self.resolution)
        if sp.task != self.task:
            raise PipelineError(
                f"space {sp.name!r} is for {sp.task}, not {self.task}; use --space "
                f"{TASK_SPACES[self.task]} (or leave --space out)"
            )
        return sp

    def result_settings(self) -> dict[str, Any]:
        """What changes results (recorded in run.json, compared on resume)."""
        d = {
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
        return d


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


Echo = Callable[[str], None]


@dataclass
class Pipeline:
    config: RunConfig
    echo: Echo = print
    state: dict[str, Any] = field(default_factory=dict)
    _data: Any = None
    _space: SearchSpace | None = None

    # ---- paths --------------------------------------------------------------------------
    @property
    def folder(self) -> Path:
        return self.config.folder

    def path(self, name: str) -> Path:
        return self.folder / name

    @property
    def mothernet_path(self) -> Path:
        return Path(self.config.mothernet) if self.config.mothernet else self.path("mothernet.pt")

    @property
    def space(self) -> SearchSpace:
        if self._space is None:
            self._space = self.config.get_space()
        return self._space

    # ---- state --------------------------------------------------------------------------
    def load_state(self, restart: bool) -> None:
        f = self.path(RUN_FILE)
        settings = self.config.result_settings()
        if f.exists() and not restart:
            try:
                old = json.loads(f.read_text())
            except json.JSONDecodeError:
                raise PipelineError(
                    f"{f} is corrupt; pass --restart to start this run over"
                ) from None
            if old.get("settings") != settings:
                prev = old.get("settings") or {}
                diff = sorted(
                    k for k in set(prev) | set(settings) if prev.get(k) != settings.get(k)
                )
                raise PipelineError(
                    f"{self.folder} holds a run with other settings ({', '.join(diff)} "
                    "differ); use another --out, the same settings to resume, or --restart"
                )
            self.state = old
        else:
            self.state = {"settings": settings, "stages": {}}
        self.save_state()

    def save_state(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path(RUN_FILE), json.dumps(self.state, indent=1, default=str))

    def done(self, stage: str) -> bool:
        return bool(self.state["stages"].get(stage, {}).get("done"))

    def mark(self, stage: str, wall: float, info: dict[str, Any]) -> None:
        self.state["stages"][stage] = {**info, "done": True, "seconds": round(wall, 2)}
        self.save_state()

    # ---- shared inputs ------------------------------------------------------------------
    def data(self) -> Any:
        if self._data is None:
            from nas.data import load_task_data

            s = self.config.sizes
            self._data = load_task_data(
                self.config.task,
                self.config.data,
                resolution=self.space.resolution,
                seed=self.config.seed,
                train_limit=s.train_limit,
                val_limit=s.val_limit,
            )
        return self._data

    @contextlib.contextmanager
    def open_device(self) -> Iterator[Any]:
        """The run's device, closed (phone sessions cleaned up) when the block ends."""
        device = self.device()
        try:
            yield device
        finally:
            close = getattr(device, "close", None)
            if close is not None:
                close()

    def device(self) -> Any:
        from latency.devices import get_device
        from latency.host import MeasureConfig

        measure = MeasureConfig(seed=self.config.seed)
        if self.config.device == "host":
            return get_device("host", measure)
        from latency.android.device import AdbConfig

        adb = AdbConfig(binary=self.config.benchmark_binary)
        if self.config.cooldown_s is not None:
            adb = replace(adb, cooldown_s=self.config.cooldown_s)
        return get_device(self.config.device, measure, adb)

    def convert_config(self) -> Any:
        from latency.convert import ConvertConfig, default_cache_dir

        return ConvertConfig(default_cache_dir(), seed=self.config.seed)

    def table(self) -> Any:
        from lut.table import LatencyTable

        return LatencyTable.load(self.config.lut_path())

    # ---- stages -------------------------------------------------------------------------
    def stage_mothernet(self) -> dict[str, Any]:
        import torch

        from nas.mothernet import (
            MothernetConfig,
            build_mothernet,
            evaluate,
            load_checkpoint,
            save_checkpoint,
            train_mothernet,
        )

        if self.config.mothernet:
            net, _, meta = load_checkpoint(self.mothernet_path, self.space)
            metric = meta.metrics.get("value")
            if metric is None:
                metric = evaluate(net, self.data())
            return {"metric": metric, "source": str(self.mothernet_path)}
        torch.manual_seed(self.config.seed)
        mcfg = MothernetConfig.default(self.space, seed=self.config.seed)
        net = build_mothernet(mcfg)
        data = self.data()
        self.echo(
            f"training the mothernet ({', '.join(o.label() for o in mcfg.choices)}) on "
            f"{data.source}"
        )
        metrics = train_mothernet(
            net, data, epochs=self.config.sizes.mothernet_epochs, seed=self.config.seed
        )
        save_checkpoint(self.mothernet_path, net, mcfg, metrics, data.describe())
        return {"metric": metrics.get("value"), "metrics": metrics}

    def stage_lut(self) -> dict[str, Any]:
        from latency.profiler import open_table, profile_specs

        with self.open_device() as device:
            table = open_table(self.config.lut_path(), device, resume=True)
            report = profile_specs(self.space.block_specs(), device, table, self.convert_config())
            self.echo(report.summary())
            if "context" not in table.provenance:  # fit the cache-context model once per LUT
                from latency.context import calibrate

                cal = calibrate(self.space, device, table, self.convert_config(), n_nets=4)
                self.echo(
                    f"context model: alpha {cal.alpha:.2f} from {cal.nets} whole nets; mean "
                    f"abs error {cal.mape_before * 100:.1f}% -> {cal.mape_after * 100:.1f}%"
                )
        return {"lut": str(self.config.lut_path()), "summary": report.summary()}

    def stage_bkd(self) -> dict[str, Any]:
        from nas.bkd import BkdConfig, run_bkd

        s = self.config.sizes
        cfg = BkdConfig(
            epochs=s.bkd_epochs,
            seed=self.config.seed,
            train_samples=s.bkd_train_samples,
            val_samples=s.bkd_val_samples,
            workers=self.config.workers,
        )
        t0 = time.perf_counter()
        lib = run_bkd(self.mothernet_path, self.space, self.data(), self.path("bkd.json"), cfg)
        return {"options": len(lib), "train_seconds": time.perf_counter() - t0}

    def stage_filter(self) -> dict[str, Any]:
        from nas.filter import filter_space
        from nas.library import BkdLibrary

        lib = BkdLibrary.load(self.path("bkd.json"))
        report = filter_space(self.space, lib, self.table())
        report.save(self.path("space.json"))
        self.echo(report.summary())
        return {"log10_before": report.log10_before, "log10_after": report.log10_after}

    def stage_search(self) -> dict[str, Any]:
        from latency.estimator import LatencyEstimator
        from nas.filter import load_filtered_space
        from nas.library import BkdLibrary
        from nas.search import SearchConfig, run_search

        lib = BkdLibrary.load(self.path("bkd.json"))
        space = load_filtered_space(self.path("space.json"), lib)
        table = self.table()
        s = self.config.sizes
        cfg = SearchConfig(
            pop_size=s.pop_size,
            generations=s.generations,
            seed=self.config.seed,
            budget_ms=self.config.budget_ms,
        )
        from nas.mothernet import load_checkpoint

        _, mcfg, _ = load_checkpoint(self.mothernet_path, self.space)
        point = mothernet_point(self.space, lib, mcfg.choices, table.lookup)
        result = run_search(space, lib, LatencyEstimator(table, "lut"), cfg, point)
        result.provenance.update(
            {
                "mothernet": str(self.mothernet_path),
                "space_file": str(self.path("space.json")),
                "lut": str(self.config.lut_path()),
                "task": self.config.task,
                "data": self.config.data or "builtin",
                "device": self.config.device,
            }
        )
        result.save(self.path("search"))
        self.echo(result.summary())
        return {"front": len(result.front), "search_seconds": result.seconds}

    @staticmethod
    def chosen(result: Any, n: int) -> list[int]:
        """Front indices of ``n`` architectures spread over the front (by latency)."""
        from nas.validate import spread_indices

        lats = [e.latency_ms for e in result.front]
        return spread_indices(lats, max(2, n))[:n] if lats else []

    def stage_hil(self) -> dict[str, Any]:
        from latency.profiler import measure_architectures
        from nas.core.specs import Architecture
        from nas.mothernet import load_checkpoint
        from nas.search import load_pareto

        res = load_pareto(self.path("search/pareto.json"))
        s = self.config.sizes
        picks = sorted(set(self.chosen(res, s.hil_models)) | set(self.chosen(res, s.finals)))
        _, mcfg, _ = load_checkpoint(self.mothernet_path, self.space)
        archs = [Architecture.from_list(res.front[i].blocks) for i in picks]
        indices: list[int | None] = [*picks, None]  # None: the mothernet
        archs.append(self.space.architecture(mcfg.choices))
        table = self.table()
        with self.open_device() as device:
            measured = measure_architectures(archs, device, table, self.convert_config())
        rows = []
        for index, arch, m in zip(indices, archs, measured):
            est = table.lookup(arch) / 1000.0
            meas = m.warm.median_us / 1000.0  # whole nets run back to back, as deployed
            rows.append(
                {
                    "model": "mothernet" if index is None else f"front[{index}]",
                    "index": index,
                    "lut_ms": est,
                    "measured_ms": meas,
                    "error_pct": (est - meas) / meas * 100.0,
                }
            )
        atomic_write_text(self.path("hil.json"), json.dumps({"rows": rows}, indent=1))
        for r in rows:
            self.echo(
                f"  {r['model']:>10s}: LUT {r['lut_ms']:.3f} ms, measured "
                f"{r['measured_ms']:.3f} ms ({r['error_pct']:+.1f}%)"
            )
        return {"models": len(rows)}

    def stage_finetune(self) -> dict[str, Any]:
        from nas.search import load_pareto

        res = load_pareto(self.path("search/pareto.json"))
        picks = self.chosen(res, self.config.sizes.finals)
        rows = []
        for i in picks:
            r = finetune_pick(
                self.path("search/pareto.json"),
                i,
                self.path(f"final/{i}"),
                data=self.data(),
                epochs=self.config.sizes.finetune_epochs,
                seed=self.config.seed,
                echo=self.echo,
            )
            r["latency_ms"] = res.front[i].latency_ms
            rows.append(r)
        atomic_write_text(self.path("final/results.json"), json.dumps(rows, indent=1))
        return {"finals": len(rows)}

    def stage_report(self) -> dict[str, Any]:
        from nas.report import write_report

        path = write_report(self.folder, self.state, self.config)
        self.echo(f"report: {path}")
        return {"report": str(path)}

    # ---- driver -------------------------------------------------------------------------
    def run(self, restart: bool = False, only: tuple[str, ...] = ()) -> dict[str, Any]:
        self.load_state(restart)
        todo = [s for s in STAGES if not only or s in only]
        t_all = time.perf_counter()
        for i, stage in enumerate(todo, 1):
            if self.done(stage):
                self.echo(f"[{i}/{len(todo)}] {stage}: done earlier, skipped")
                continue
            self.echo(f"[{i}/{len(todo)}] {stage} ...")
            t0 = time.perf_counter()
            info = getattr(self, f"stage_{stage}")()
            dt = time.perf_counter() - t0
            self.mark(stage, dt, info)
            self.echo(f"[{i}/{len(todo)}] {stage}: {dt:.1f} s")
        self.state["total_seconds_last_invocation"] = round(time.perf_counter() - t_all, 2)
        self.save_state()
        return self.state


def mothernet_point(
    space: SearchSpace, library: Any, choices: Sequence[Any], latency_us: Callable[[Any], float]
) -> tuple[float, float] | None:
    """(summed BKD nMSE, latency in ms) of the mothernet's own architecture, the marker on the
    Pareto plot; None when its options are not all in the library or the latency is unknown."""
    try:
        loss = sum(library.entry(i, o).nmse for i, o in enumerate(choices))
        return (loss, latency_us(space.architecture(choices)) / 1000.0)
    except DonnaError:
        return None


def checkpoint_data(meta: Any, task: str, resolution: int) -> Any:
    """The data a checkpoint was trained on (source, split sizes, seed), loaded again."""
    from nas.data import load_task_data

    d = meta.data or {}
    return load_task_data(
        task,
        d.get("data"),
        resolution=resolution,
        seed=int(d.get("seed", 0)),
        train_limit=d.get("train"),
        val_limit=d.get("val"),
    )


def finetune_pick(
    pareto: Path,
    index: int,
    out: Path,
    *,
    data: Any = None,
    mothernet: Path | None = None,
    library: Path | None = None,
    epochs: float | None = None,
    seed: int = 0,
    echo: Echo = print,
) -> dict[str, Any]:
    """Finetune front entry ``index`` of ``pareto``: initialise from BKD, distil from the
    mothernet, save ``out/model.pt`` and ``out/result.json``. The mothernet, library and data
    default to those recorded in the Pareto file's provenance and the mothernet checkpoint."""
    import torch

    from nas.core.files import file_sha256
    from nas.finetune import FinetuneConfig, finetune
    from nas.library import BkdLibrary
    from nas.mothernet import (
        MothernetConfig,
        build_network,
        init_from_bkd,
        load_checkpoint,
        save_checkpoint,
    )
    from nas.search import load_pareto

    result = load_pareto(pareto)
    entry = result.at(index, pareto)
    space, prov = result.space, result.provenance
    mpath = Path(mothernet or prov.get("mothernet") or "")
    if not str(mpath) or not mpath.exists():
        raise PipelineError(
            f"the mothernet of {pareto} ({mpath or 'not recorded'}) is not there; pass --mothernet"
        )
    lib = BkdLibrary.load(Path(library or prov.get("library") or ""))
    lib.check_mothernet(file_sha256(mpath))
    teacher, _, meta = load_checkpoint(mpath)
    if data is None:
        data = checkpoint_data(meta, space.task, space.resolution)
    choices = space.choices(entry.genome)
    torch.manual_seed(seed)
    student = build_network(space, choices, seed=seed)
    init = init_from_bkd(student, teacher, lib, choices)
    cfg = FinetuneConfig(seed=seed, **({"epochs": epochs} if epochs else {}))
    echo(f"finetuning front[{index}] ({', '.join(o.label() for o in choices)}): {init.summary()}")
    res = finetune(
        student, teacher, space.task, data.train_x, data.train_y, data.val_x, data.val_y, cfg
    )
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        out / "model.pt",
        student,
        MothernetConfig(space, tuple(choices), seed),
        res.to_dict(),
        data.describe(),
    )
    row = {
        "index": index,
        "genome": list(entry.genome),
        "options": [o.label() for o in choices],
        "surrogate": entry.surrogate,
        "lut_latency_ms": entry.latency_ms,
        **res.to_dict(),
        "mothernet_metric": meta.metrics.get("value"),
        "init": init.summary(),
    }
    atomic_write_text(out / "result.json", json.dumps(row, indent=1))
    echo(
        f"front[{index}]: {res.metric_name} {res.metric_before:.4f} -> {res.metric:.4f} after "
        f"{res.steps} steps ({res.seconds:.0f} s); mothernet {meta.metrics.get('value')}"
    )
    return row


def validate_surrogate(
    pareto: Path,
    k: int,
    epochs: float,
    predictor_archs: int,
    seed: int = 0,
    echo: Echo = print,
) -> Any:
    """Finetune ``k`` architectures spread over the front briefly; Kendall τ of the summed
    BKD MSE and of a leave-one-out DONNA-style linear predictor against the metric."""
    from nas.library import BkdLibrary
    from nas.mothernet import load_checkpoint
    from nas.search import load_pareto
    from nas.validate import ValidatedArch, spread_indices, summarise

    res = load_pareto(pareto)
    lib = BkdLibrary.load(Path(res.provenance.get("library") or ""))
    _, _, meta = load_checkpoint(Path(res.provenance.get("mothernet") or ""))
    data = checkpoint_data(meta, res.space.task, res.space.resolution)  # once for all K
    picks = spread_indices([e.latency_ms for e in res.front], k)
    if len(picks) < 3:
        raise PipelineError(
            f"the front of {pareto} has {len(res.front)} architecture(s); the ranking check "
            "needs at least 3 (search a larger space or with a looser budget)"
        )
    archs = []
    metric_name = "metric"
    for n, i in enumerate(picks, 1):
        echo(f"[{n}/{len(picks)}] finetuning front[{i}] for {epochs:g} epoch(s)")
        row = finetune_pick(
            pareto,
            i,
            Path(pareto).parent / "validation" / str(i),
            data=data,
            epochs=epochs,
            seed=seed,
            echo=echo,
        )
        metric_name = row["metric_name"]
        e = res.front[i]
        choices = res.space.choices(e.genome)
        archs.append(
            ValidatedArch(
                genome=tuple(e.genome),
                surrogate=e.surrogate,
                slot_losses=tuple(lib.entry(s, o).nmse for s, o in enumerate(choices)),
                latency_ms=e.latency_ms,
                metric=row["metric"],
                finetune_seconds=row["seconds"],
            )
        )
    bkd_seconds = sum(e.seconds for e in lib.entries())
    bkd_seconds += float((lib.provenance.get("teacher_features") or {}).get("seconds") or 0.0)
    return summarise(metric_name, archs, bkd_seconds, predictor_archs)
