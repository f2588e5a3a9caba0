"""Blockwise knowledge distillation (BKD): how well each option of each slot can imitate the
mothernet's slot.

1. **Teacher features, once.** The mothernet runs over a (capped, seeded) subset of the
   training images and the validation images in chunks; the input of every slot and the last
   slot's output are written to ``.npy`` files (``float16`` by default) in
   ``<library stem>.features/`` next to the library, so memory stays bounded by one chunk
   and every option of a slot reads the same files (memory-mapped). A manifest records what
   the files were computed from; they are reused while it matches.
2. **One student per option.** The slot's blocks for the option (built from
   ``space.slot_blocks(slot, option, teacher_in_chs)``), initialised with a seed derived from
   ``(config.seed, slot, option)`` so a result never depends on the worker count or the
   order, train for ``config.epochs`` (about one) epoch(s) with AdamW and a cosine learning
   rate to reproduce the teacher slot's output (MSE). When the option's width gives other
   output channels than the teacher's, a 1x1 conv *adapter* maps the student's output to the
   teacher's channels for the loss only; it is saved beside the student but the finetuned
   network does not use it.
3. **Scores.** After training, BatchNorm statistics are re-estimated on training features
   and the held-out MSE on the validation features is divided by the variance of the
   teacher's validation output: ``nmse`` (0 = perfect, 1 = no better than the mean), so
   slots are comparable and summing them over slots is DONNAv2's accuracy surrogate.
4. **Library.** Each result (nmse, raw mse, first/last train-loss means, steps, seconds) is
   added to the :class:`~nas.library.BkdLibrary` JSON, saved atomically as soon as the
   option finishes, with the student's weights in ``<library stem>.weights/``. Rerunning
   skips finished options (resume); a library from another mothernet, data set or setting is
   refused.

Options train through an :class:`~nas.executor.Executor` (in process, or ``workers``
spawned processes): tasks are frozen dataclasses of paths and specs.

This module imports torch: import it lazily from CLIs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from nas.core.errors import BkdError
from nas.core.files import atomic_write_text, file_sha256
from nas.core.spaces import SearchSpace, SlotOption
from nas.core.specs import spec_key
from nas.executor import Executor, InlineExecutor, ProcessExecutor
from nas.library import BkdEntry, BkdLibrary, LibraryError, option_key
from nas.mothernet import BlockNetwork, build_slot, load_checkpoint, recalibrate_bn

if TYPE_CHECKING:
    from nas.data import TaskData

FEATURE_DTYPES = ("float16", "float32")
MANIFEST = "manifest.json"
# The settings the teacher features depend on (besides the mothernet and the data).
FEATURE_KEYS = ("seed", "train_samples", "val_samples", "feature_dtype")


@dataclass(frozen=True)
class BkdConfig:
    """BKD settings; the defaults are defined here only.

    ``train_samples`` / ``val_samples`` cap the images whose teacher features are computed
    (``None``: all); ``workers`` and ``threads`` (torch threads per worker; ``None``: the
    cores divided among the workers) change speed, not results.
    """

    epochs: float = 1.0
    batch_size: int = 64
    lr: float = 5e-3
    weight_decay: float = 0.0
    seed: int = 0
    train_samples: int | None = 10_000
    val_samples: int | None = 1_000
    feature_dtype: str = "float16"
    bn_calib_samples: int = 512
    chunk_size: int = 256
    workers: int = 1
    threads: int | None = None

    def __post_init__(self) -> None:
        if not (self.epochs > 0 and math.isfinite(self.epochs)):
            raise BkdError(f"BKD epochs must be > 0, got {self.epochs}")
        if self.batch_size < 2:
            raise BkdError(f"BKD batch size must be >= 2 (BatchNorm), got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise BkdError(f"BKD learning rate must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise BkdError(f"weight decay must be >= 0, got {self.weight_decay}")
        for name in ("train_samples", "val_samples"):
            v = getattr(self, name)
            if v is not None and v < 2:
                raise BkdError(f"{name} must be >= 2 or None (all), got {v}")
        if self.feature_dtype not in FEATURE_DTYPES:
            raise BkdError(
                f"feature dtype must be one of {FEATURE_DTYPES}, got {self.feature_dtype!r}"
            )
        if self.bn_calib_samples < 0 or self.chunk_size < 1:
            raise BkdError("bn_calib_samples must be >= 0 and chunk_size >= 1")
        if self.workers < 1:
            raise BkdError(f"workers must be >= 1, got {self.workers}")
        if self.threads is not None and self.threads < 1:
            raise BkdError(f"threads per worker must be >= 1, got {self.threads}")

    def result_settings(self) -> dict[str, Any]:
        """The settings that change results (recorded as provenance, checked on resume)."""
        d = asdict(self)
        for k in ("workers", "threads", "chunk_size"):
            d.pop(k)
        return d

    def threads_per_worker(self) -> int:
        if self.threads is not None:
            return self.threads
        return max(1, (os.cpu_count() or 1) // self.workers)


# ---- teacher features -------------------------------------------------------------------


@dataclass(frozen=True)
class TeacherFeatures:
    """The teacher's features on disk: ``feat{k}_{split}.npy`` holds the input of slot ``k``
    (``k = n_slots``: the last slot's output) for split ``train`` or ``val``."""

    folder: Path
    n_slots: int
    n_train: int
    n_val: int
    var_train: tuple[float, ...]  # per feature index: variance of all its values
    var_val: tuple[float, ...]
    seconds: float  # teacher forward time when the files were computed

    def path(self, k: int, split: str) -> Path:
        return self.folder / f"feat{k}_{split}.npy"

    def open(self, k: int, split: str) -> np.ndarray:
        return np.load(self.path(k, split), mmap_mode="r")


def _subset(n: int, cap: int | None, seed: int) -> np.ndarray:
    if cap is None or cap >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:cap])


def _rows(images: Any, sel: np.ndarray) -> torch.Tensor:
    if isinstance(images, torch.Tensor):
        return images[torch.from_numpy(sel)].float()
    return torch.as_tensor(np.asarray(images[sel])).float()


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, sort_keys=True, default=str))


def compute_teacher_features(
    net: BlockNetwork,
    data: TaskData,
    folder: Path,
    config: BkdConfig,
    key: Mapping[str, Any],
    progress: bool = True,
) -> TeacherFeatures:
    """Write (or reuse, when ``folder``'s manifest has the same ``key``) the teacher's
    features. Memory: one chunk of images and its features at a time."""
    from nas.core.progress import progress_bar

    folder = Path(folder)
    n_slots = len(net.slots)
    idx_train = _subset(len(data.train_x), config.train_samples, config.seed)
    idx_val = _subset(len(data.val_x), config.val_samples, config.seed + 1)
    key = _jsonable({**key, "n_train": len(idx_train), "n_val": len(idx_val)})
    manifest = folder / MANIFEST
    if manifest.is_file():
        try:
            m = json.loads(manifest.read_text())
        except (OSError, json.JSONDecodeError):
            m = {}
        files_ok = all(
            (folder / f"feat{k}_{s}.npy").is_file()
            for k in range(n_slots + 1)
            for s in ("train", "val")
        )
        if m.get("key") == key and files_ok:
            return TeacherFeatures(
                folder,
                n_slots,
                len(idx_train),
                len(idx_val),
                tuple(m["var_train"]),
                tuple(m["var_val"]),
                float(m["seconds"]),
            )
        manifest.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    dtype = np.dtype(config.feature_dtype)
    net.eval()
    t0 = time.perf_counter()
    variances: dict[str, list[float]] = {}
    total = math.ceil(len(idx_train) / config.chunk_size) + math.ceil(
        len(idx_val) / config.chunk_size
    )
    bar = progress_bar(total, "teacher features", unit="chunk") if progress else None
    try:
        for split, images, idx in (
            ("train", data.train_x, idx_train),
            ("val", data.val_x, idx_val),
        ):
            mms: list[np.ndarray] = []
            sums = np.zeros((n_slots + 1, 2), dtype=np.float64)
            for c in range(0, len(idx), config.chunk_size):
                sel = idx[c : c + config.chunk_size]
                x = _rows(images, sel)
                with torch.no_grad():
                    feats = net.slot_features(x)
                if not mms:
                    mms = [
                        np.lib.format.open_memmap(
                            folder / f"feat{k}_{split}.npy",
                            mode="w+",
                            dtype=dtype,
                            shape=(len(idx), *f.shape[1:]),
                        )
                        for k, f in enumerate(feats)
                    ]
                for k, f in enumerate(feats):
                    a = f.numpy().astype(dtype)
                    if not np.isfinite(a).all():
                        raise BkdError(
                            f"the teacher's features before slot {k} are not finite in "
                            f"{config.feature_dtype} (overflow or a diverged mothernet); use "
                            "feature_dtype float32 or check the mothernet"
                        )
                    mms[k][c : c + len(sel)] = a
                    a64 = a.astype(np.float64)
                    sums[k] += (a64.sum(), (a64 * a64).sum())
                if bar is not None:
                    bar.update(1)
            for mm in mms:
                mm.flush()
            counts = [mm.size for mm in mms]
            variances[split] = [float(s2 / n - (s1 / n) ** 2) for (s1, s2), n in zip(sums, counts)]
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    atomic_write_text(
        manifest,
        json.dumps(
            {
                "key": key,
                "var_train": variances["train"],
                "var_val": variances["val"],
                "seconds": seconds,
            },
            indent=1,
        ),
    )
    return TeacherFeatures(
        folder,
        n_slots,
        len(idx_train),
        len(idx_val),
        tuple(variances["train"]),
        tuple(variances["val"]),
        seconds,
    )


# ---- one option ----------------------------------------------------------------------------


def option_seed(seed: int, slot: int, option: SlotOption) -> int:
    """The student's seed: a function of the run seed, the slot and the option only."""
    h = hashlib.sha256(f"{seed}|{option_key(slot, option)}".encode()).hexdigest()
    return int(h[:8], 16)


def weights_name(slot: int, option: SlotOption) -> str:
    h = hashlib.sha256(option_key(slot, option).encode()).hexdigest()[:12]
    return f"slot{slot}-{h}.pt"


@dataclass(frozen=True)
class BkdTask:
    """Everything a worker needs to train one option (picklable: specs, numbers, paths)."""

    slot: int
    option: SlotOption
    space: SearchSpace
    in_chs: int  # the teacher's input channels of the slot
    out_chs: int  # the teacher's output channels of the slot
    features: TeacherFeatures
    config: BkdConfig
    weights_file: Path
    weights_rel: str  # the weights path as recorded in the library (relative to it)


def _batch(mm: np.ndarray, idx: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(mm[idx], dtype=np.float32))
    return x.contiguous(memory_format=torch.channels_last)  # ~2x faster convs on CPU


def train_option(task: BkdTask) -> BkdEntry:
    """Train one option's student on the teacher features and score it (run by workers)."""
    cfg = task.config
    feats = task.features
    k = task.slot
    x_tr, y_tr = feats.open(k, "train"), feats.open(k + 1, "train")
    x_va, y_va = feats.open(k, "val"), feats.open(k + 1, "val")
    var_tr = max(feats.var_train[k + 1], 1e-12)
    var_va = max(feats.var_val[k + 1], 1e-12)
    seed = option_seed(cfg.seed, task.slot, task.option)
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        student = build_slot(task.space, task.slot, task.option, task.in_chs)
        s_out = task.space.stage_chs(task.slot, task.option.width)
        adapter: nn.Module = (
            nn.Conv2d(s_out, task.out_chs, 1, bias=True) if s_out != task.out_chs else nn.Identity()
        )
    gen = torch.Generator().manual_seed(seed)
    n = feats.n_train
    bs = min(cfg.batch_size, n)
    per_epoch = math.ceil(n / bs)
    total = max(1, round(cfg.epochs * per_epoch))
    params = [*student.parameters(), *adapter.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    student.to(memory_format=torch.channels_last)
    adapter.to(memory_format=torch.channels_last)
    student.train()
    losses: list[float] = []
    step = 0
    while step < total:
        order = torch.randperm(n, generator=gen).numpy()
        for i in range(0, n - 1, bs):
            if step >= total:
                break
            idx = np.sort(order[i : i + bs])
            if len(idx) < 2:
                continue
            loss = F.mse_loss(adapter(student(_batch(x_tr, idx))), _batch(y_tr, idx))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item() / var_tr)
            step += 1
    n_cal = min(cfg.bn_calib_samples, n)
    recalibrate_bn(
        student,
        (
            _batch(x_tr, np.arange(c, min(c + cfg.chunk_size, n_cal)))
            for c in range(0, n_cal, cfg.chunk_size)
        ),
    )
    student.eval()
    adapter.eval()
    sq = 0.0
    count = 0
    with torch.no_grad():
        for c in range(0, feats.n_val, cfg.chunk_size):
            idx = np.arange(c, min(c + cfg.chunk_size, feats.n_val))
            diff = adapter(student(_batch(x_va, idx))) - _batch(y_va, idx)
            sq += float(diff.double().pow(2).sum())
            count += diff.numel()
    mse = sq / max(count, 1)
    tenth = max(1, len(losses) // 10)
    blob = {
        "blocks": student.state_dict(),
        "adapter": adapter.state_dict(),
        "specs": [spec_key(b) for b in task.space.slot_blocks(k, task.option, task.in_chs)],
        "slot": k,
        "in_chs": task.in_chs,
    }
    task.weights_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=task.weights_file.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(blob, f)
        os.replace(tmp, task.weights_file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return BkdEntry(
        slot=k,
        option=task.option,
        nmse=mse / var_va,
        mse=mse,
        train_loss_first=float(np.mean(losses[:tenth])),
        train_loss_last=float(np.mean(losses[-tenth:])),
        steps=step,
        seconds=round(time.perf_counter() - t0, 3),
        weights=task.weights_rel,
        extra={
            "seed": seed,
            "adapter": not isinstance(adapter, nn.Identity),
            "params": sum(p.numel() for p in student.parameters()),
            "threads": torch.get_num_threads(),
        },
    )


# ---- the run -----------------------------------------------------------------------------


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def _worker_death_is_bkd_error() -> Iterator[None]:
    from concurrent.futures.process import BrokenProcessPool

    try:
        yield
    except BrokenProcessPool as exc:
        raise BkdError(
            f"a BKD worker process died ({exc}); every finished option is saved: run again "
            "to resume, with fewer --workers if memory ran out"
        ) from None


def _merge_options(old: SearchSpace, new: SearchSpace) -> SearchSpace:
    """``old`` with each slot's options extended by those of ``new`` it lacks."""
    merged = []
    for a, b in zip(old.options, new.options):
        merged.append((*a, *(o for o in b if o not in a)))
    return old.with_options(merged)


RESUME_KEYS = ("mothernet_sha256", "task", "data", "bkd")


def check_resume(library: BkdLibrary, provenance: Mapping[str, Any]) -> None:
    """Raise :class:`~nas.library.LibraryError` unless ``library`` was made with the same
    mothernet, task, data and result-changing settings."""
    old = _jsonable({k: library.provenance.get(k) for k in RESUME_KEYS})
    new = _jsonable({k: provenance.get(k) for k in RESUME_KEYS})
    if old != new:
        diff = [k for k in RESUME_KEYS if old[k] != new[k]]
        details = []
        for k in diff:
            if isinstance(old[k], dict) and isinstance(new[k], dict):
                a, b = old[k], new[k]
                sub = sorted(j for j in set(a) | set(b) if a.get(j) != b.get(j))
                changes = ", ".join(f"{j}: {a.get(j)!r} -> {b.get(j)!r}" for j in sub)
                details.append(f"{k} ({changes})")
            elif k == "mothernet_sha256":
                details.append(f"mothernet ({str(old[k])[:12]} -> {str(new[k])[:12]})")
            else:
                details.append(f"{k} ({old[k]!r} -> {new[k]!r})")
        raise LibraryError(
            f"cannot resume BKD library {library.path}: it was made with another "
            f"{'; '.join(details)}; use a new --out, or the mothernet, data and settings it "
            "was made with"
        )


def run_bkd(
    mothernet_path: Path,
    space: SearchSpace,
    data: TaskData,
    out: Path,
    config: BkdConfig | None = None,
    executor: Executor | None = None,
    progress: bool = True,
    on_option: Callable[[BkdEntry, int, int], None] | None = None,
    limit: int | None = None,
) -> BkdLibrary:
    """Train every option of ``space`` (that ``out`` lacks) against the mothernet and save
    the library at ``out`` after each one. Returns the library.

    ``executor`` defaults to :class:`~nas.executor.InlineExecutor` for ``config.workers ==
    1``, else a :class:`~nas.executor.ProcessExecutor`. ``on_option(entry, done, total)`` is
    called after each saved option (progress; raising from it stops the run, and rerunning
    resumes). ``limit`` trains at most that many options in this run.
    """
    config = config or BkdConfig()
    mothernet_path = Path(mothernet_path)
    out = Path(out)
    if out.suffix != ".json":
        raise BkdError(f"the BKD library must be a .json file, got {out}")
    if limit is not None and limit < 0:
        raise BkdError(f"limit must be >= 0, got {limit}")
    net, mcfg, _ = load_checkpoint(mothernet_path, space)
    if data.task != space.task:
        raise BkdError(
            f"space {space.name!r} is for {space.task} but the data is for {data.task}; load "
            "the data of the space's task"
        )
    if len(data.train_x) < 2 or len(data.val_x) < 1:
        raise BkdError(
            "BKD needs at least 2 training and 1 validation images; got "
            f"{len(data.train_x)} and {len(data.val_x)}"
        )
    sha = file_sha256(mothernet_path)
    provenance: dict[str, Any] = {
        "mothernet_sha256": sha,
        "mothernet": str(mothernet_path),
        "teacher": [asdict(c) for c in mcfg.choices],
        "task": space.task,
        "data": _jsonable(data.describe()),
        "bkd": config.result_settings(),
    }
    if out.exists():
        library = BkdLibrary.load(out)
        check_resume(library, provenance)
        library.check_space(space)
        library.space = _merge_options(library.space, space)
    else:
        library = BkdLibrary(space, provenance, path=out)
        library.save()
    todo = library.missing(space)
    if limit is not None:
        todo = todo[:limit]
    if not todo:
        return library
    features = compute_teacher_features(
        net,
        data,
        out.with_name(out.stem + ".features"),
        config,
        {
            "mothernet_sha256": sha,
            "data": provenance["data"],
            **{k: getattr(config, k) for k in FEATURE_KEYS},
        },
        progress=progress,
    )
    library.provenance["teacher_features"] = {
        "seconds": round(features.seconds, 3),
        "n_train": features.n_train,
        "n_val": features.n_val,
        "var_val": list(features.var_val),
    }
    library.save()
    wdir = library.weights_dir()
    chs = mcfg.slot_in_chs()
    tasks = [
        BkdTask(
            slot=i,
            option=o,
            space=space,
            in_chs=chs[i],
            out_chs=chs[i + 1],
            features=features,
            config=config,
            weights_file=(wdir / weights_name(i, o)).resolve(),
            weights_rel=f"{wdir.name}/{weights_name(i, o)}",
        )
        for i, o in todo
    ]
    threads = config.threads_per_worker()
    if executor is None:
        executor = (
            InlineExecutor() if config.workers == 1 else ProcessExecutor(config.workers, threads)
        )
    from nas.core.progress import progress_bar

    bar = progress_bar(len(tasks), f"BKD {space.name}", unit="option") if progress else None
    inline = isinstance(executor, InlineExecutor)
    ctx = _torch_threads(threads) if inline else contextlib.nullcontext()
    done = 0
    try:
        with ctx, _worker_death_is_bkd_error():
            for _task, entry in executor.map_unordered(train_option, tasks):
                library.add(entry)
                library.save()
                done += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(slot=entry.slot, nmse=f"{entry.nmse:.3f}")
                if on_option is not None:
                    on_option(entry, done, len(tasks))
    finally:
        if bar is not None:
            bar.close()
    return library


def library_summary(library: BkdLibrary) -> list[dict[str, Any]]:
    """Per slot: options done, best and worst option by nmse, mean seconds per option."""
    rows = []
    for i in range(library.space.n_slots):
        es = sorted((e for e in library.entries() if e.slot == i), key=lambda e: e.nmse)
        if not es:
            continue
        rows.append(
            {
                "slot": i,
                "options": len(es),
                "best": (es[0].option.label(), es[0].nmse),
                "worst": (es[-1].option.label(), es[-1].nmse),
                "mean_seconds": sum(e.seconds for e in es) / len(es),
            }
        )
    return rows
