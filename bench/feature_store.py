"""The feature-store BKD design, kept here as the baseline of ``bench/bkd_throughput.py``.

This is the design the library used before the shared teacher (``nas.bkd.shared``), as it was:
the teacher runs once over the (capped, seeded) training and validation images in chunks of
256 and its slot features go into float16 ``.npy`` memmaps; then every option trains alone on
them (one :class:`BkdTask` per option through an executor): a fresh shuffle per pass with
sorted indices (:class:`~nas.data.batches.EpochShuffle`), AdamW, a cosine learning rate,
BatchNorm re-estimation on 512 training features, nmse on the validation features. It was
removed from ``nas.bkd`` because the shared teacher measured faster on the README demo's
sizes (``bench/results/bkd_throughput.json``) and needs no disk; this copy only measures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from nas.bkd.config import BkdConfig
from nas.bkd.executor import ProcessExecutor
from nas.bkd.library import BkdEntry
from nas.bkd.student import build_student, option_seed, save_student, weights_name
from nas.data.batches import EpochShuffle, TensorBatches, subset_indices
from nas.training.checkpoint import load_checkpoint
from nas.training.loop import cosine_schedule, first_last_tenth, fit, recalibrate_bn, total_steps

DTYPE = np.float16
CHUNK = 256


@dataclass(frozen=True)
class Features:
    folder: Path
    n_train: int
    n_val: int
    var_train: tuple[float, ...]
    var_val: tuple[float, ...]

    def open(self, k: int, split: str) -> np.ndarray:
        return np.load(self.folder / f"feat{k}_{split}.npy", mmap_mode="r")


def compute_features(net: Any, data: Any, folder: Path, cfg: BkdConfig) -> Features:
    """The teacher's slot features of the training and validation subsets, into memmaps."""
    folder.mkdir(parents=True, exist_ok=True)
    net.eval()
    idx = {
        "train": subset_indices(data.n_train, cfg.train_samples, cfg.seed),
        "val": subset_indices(data.n_val, cfg.val_samples, cfg.seed + 1),
    }
    images = {"train": data.train_x, "val": data.val_x}
    var = {s: _write(net, images[s], idx[s], folder, s) for s in ("train", "val")}
    return Features(folder, len(idx["train"]), len(idx["val"]), var["train"], var["val"])


def _write(net: Any, images: Any, idx: np.ndarray, folder: Path, split: str) -> tuple[float, ...]:
    mms: list[np.ndarray] = []
    sums = np.zeros((len(net.slots) + 1, 2), dtype=np.float64)
    for c in range(0, len(idx), CHUNK):
        sel = idx[c : c + CHUNK]
        with torch.no_grad():
            feats = net.slot_features(images[torch.from_numpy(sel)].float())
        if not mms:
            mms = [
                np.lib.format.open_memmap(
                    folder / f"feat{k}_{split}.npy", "w+", DTYPE, (len(idx), *f.shape[1:])
                )
                for k, f in enumerate(feats)
            ]
        for k, f in enumerate(feats):
            a = f.numpy().astype(DTYPE)
            mms[k][c : c + len(sel)] = a
            a64 = a.astype(np.float64)
            sums[k] += (a64.sum(), (a64 * a64).sum())
    for mm in mms:
        mm.flush()
    return tuple(float(s2 / mm.size - (s1 / mm.size) ** 2) for (s1, s2), mm in zip(sums, mms))


@dataclass(frozen=True)
class BkdTask:
    slot: int
    option: Any
    space: Any
    in_chs: int
    out_chs: int
    features: Features
    config: BkdConfig
    weights_file: Path


def _batch(mm: np.ndarray, idx: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(mm[idx], dtype=np.float32))
    return x.contiguous(memory_format=torch.channels_last)


def train_option(task: BkdTask) -> BkdEntry:
    """Train one option alone on the stored features and score it (run by workers)."""
    cfg, feats, k = task.config, task.features, task.slot
    seed = option_seed(cfg.seed, k, task.option)
    t0 = time.perf_counter()
    student, adapter = build_student(task.space, k, task.option, task.in_chs, task.out_chs, seed)
    model = nn.Sequential(student, adapter)
    x_tr, y_tr = feats.open(k, "train"), feats.open(k + 1, "train")
    n, bs = feats.n_train, min(cfg.batch_size, feats.n_train)
    state = fit(
        model,
        lambda xb, yb: F.mse_loss(model(xb), yb),
        TensorBatches(
            lambda idx: (_batch(x_tr, idx), _batch(y_tr, idx)), n, EpochShuffle(bs, sort=True)
        ),
        optimizer=torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay),
        schedule=cosine_schedule,
        total=total_steps(cfg.epochs, n, bs),
        generator=torch.Generator().manual_seed(seed),
        loss_norm=max(feats.var_train[k + 1], 1e-12),
    )
    n_cal = min(cfg.bn_calib_samples, n)
    recalibrate_bn(
        student,
        (_batch(x_tr, np.arange(c, min(c + CHUNK, n_cal))) for c in range(0, n_cal, CHUNK)),
    )
    model.eval()
    x_va, y_va = feats.open(k, "val"), feats.open(k + 1, "val")
    sq, count = 0.0, 0
    with torch.no_grad():
        for c in range(0, feats.n_val, CHUNK):
            idx = np.arange(c, min(c + CHUNK, feats.n_val))
            diff = model(_batch(x_va, idx)) - _batch(y_va, idx)
            sq += float(diff.double().pow(2).sum())
            count += diff.numel()
    mse = sq / max(count, 1)
    save_student(task.weights_file, task.space, k, task.option, task.in_chs, student, adapter)
    first, last = first_last_tenth(state.losses)
    return BkdEntry(
        k,
        task.option,
        mse / max(feats.var_val[k + 1], 1e-12),
        mse,
        first,
        last,
        state.step,
        round(time.perf_counter() - t0, 3),
        extra={"images": state.step * bs},  # steps x batch (a last short batch counted full)
    )


def run_feature_store(
    mothernet: Path, space: Any, data: Any, work: Path, cfg: BkdConfig
) -> tuple[list[BkdEntry], float]:
    """Features once, then every option of ``space`` alone through ``cfg.workers`` processes
    (one torch thread each); the entries and the teacher pass's seconds."""
    net, mcfg, _ = load_checkpoint(mothernet, space)
    t0 = time.perf_counter()
    feats = compute_features(net, data, work / "features", cfg)
    t_teacher = time.perf_counter() - t0
    chs = mcfg.slot_in_chs()
    tasks = [
        BkdTask(i, o, space, chs[i], chs[i + 1], feats, cfg, work / "w" / weights_name(i, o))
        for i, opts in enumerate(space.options)
        for o in opts
    ]
    executor = ProcessExecutor(cfg.workers, cfg.threads_per_worker())
    return [e for _, e in executor.map_unordered(train_option, tasks)], t_teacher
