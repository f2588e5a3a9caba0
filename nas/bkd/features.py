"""The teacher's features, computed once per BKD run and kept on disk.

The mothernet runs over a (capped, seeded) subset of the training images and the validation
images in chunks; the input of every slot and the last slot's output are written to ``.npy``
files (``float16`` by default) in ``<library stem>.features/`` next to the library, so memory
stays bounded by one chunk and every option of a slot reads the same files (memory-mapped).
A manifest, written last, records what the files were computed from (:func:`feature_key`);
they are reused while it matches.

This module imports torch: import it lazily from CLIs.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from nas.bkd.config import BkdConfig
from nas.core.errors import BkdError
from nas.core.files import atomic_write_text
from nas.core.progress import progress_bar

if TYPE_CHECKING:
    from nas.data import TaskData
    from nas.training.networks import BlockNetwork

MANIFEST = "manifest.json"
# The settings the teacher features depend on (besides the mothernet and the data).
FEATURE_KEYS = ("seed", "train_samples", "val_samples", "feature_dtype")
SPLITS = ("train", "val")


def jsonable(x: Any) -> Any:
    """A JSON-like copy of ``x`` (what a JSON file holding it reads back)."""
    return json.loads(json.dumps(x, sort_keys=True, default=str))


def feature_key(
    mothernet_sha256: str, data_desc: Mapping[str, Any], config: BkdConfig
) -> dict[str, Any]:
    """What the features are computed from: the mothernet file, the data and the settings
    :data:`FEATURE_KEYS` (a change in any of them means new features)."""
    return {
        "mothernet_sha256": mothernet_sha256,
        "data": data_desc,
        **{k: getattr(config, k) for k in FEATURE_KEYS},
    }


def feature_file(folder: Path, k: int, split: str) -> Path:
    """``feat{k}_{split}.npy``: the input of slot ``k`` (``k = n_slots``: the last slot's
    output) for split ``train`` or ``val``."""
    return folder / f"feat{k}_{split}.npy"


@dataclass(frozen=True)
class TeacherFeatures:
    """The teacher's features on disk (:func:`feature_file` names them)."""

    folder: Path
    n_slots: int
    n_train: int
    n_val: int
    var_train: tuple[float, ...]  # per feature index: variance of all its values
    var_val: tuple[float, ...]
    seconds: float  # teacher forward time when the files were computed

    @classmethod
    def from_manifest(
        cls, folder: Path, n_slots: int, manifest: Mapping[str, Any]
    ) -> TeacherFeatures:
        """The features a manifest (``key``, ``var_train``, ``var_val``, ``seconds``)
        describes."""
        return cls(
            folder,
            n_slots,
            int(manifest["key"]["n_train"]),
            int(manifest["key"]["n_val"]),
            tuple(manifest["var_train"]),
            tuple(manifest["var_val"]),
            float(manifest["seconds"]),
        )

    def path(self, k: int, split: str) -> Path:
        return feature_file(self.folder, k, split)

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


def compute_teacher_features(
    net: BlockNetwork,
    data: TaskData,
    folder: Path,
    config: BkdConfig,
    key: Mapping[str, Any],
    progress: bool = True,
) -> TeacherFeatures:
    """Write (or reuse, when ``folder``'s manifest has the same ``key``, e.g.
    :func:`feature_key`) the teacher's features. Memory: one chunk of images and its features
    at a time."""
    folder = Path(folder)
    n_slots = len(net.slots)
    idx = {
        "train": _subset(len(data.train_x), config.train_samples, config.seed),
        "val": _subset(len(data.val_x), config.val_samples, config.seed + 1),
    }
    key = jsonable({**key, "n_train": len(idx["train"]), "n_val": len(idx["val"])})
    manifest = folder / MANIFEST
    cached = _matching_manifest(folder, n_slots, key)
    if cached is not None:
        return TeacherFeatures.from_manifest(folder, n_slots, cached)
    folder.mkdir(parents=True, exist_ok=True)
    net.eval()
    t0 = time.perf_counter()
    chunks = sum(math.ceil(len(i) / config.chunk_size) for i in idx.values())
    bar = progress_bar(chunks, "teacher features", unit="chunk") if progress else None
    images = {"train": data.train_x, "val": data.val_x}
    try:
        variances = {
            split: _write_split(net, images[split], idx[split], folder, split, config, bar)
            for split in SPLITS
        }
    finally:
        if bar is not None:
            bar.close()
    m = {
        "key": key,
        "var_train": variances["train"],
        "var_val": variances["val"],
        "seconds": time.perf_counter() - t0,
    }
    atomic_write_text(manifest, json.dumps(m, indent=1))
    return TeacherFeatures.from_manifest(folder, n_slots, m)


def _matching_manifest(folder: Path, n_slots: int, key: Any) -> dict[str, Any] | None:
    """The manifest of ``folder`` when it has ``key`` and every feature file is there; a
    stale manifest is removed (its files are rewritten)."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return None
    try:
        m = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError):
        m = {}
    files_ok = all(feature_file(folder, k, s).is_file() for k in range(n_slots + 1) for s in SPLITS)
    if m.get("key") == key and files_ok:
        return m
    manifest.unlink()
    return None


def _write_split(
    net: BlockNetwork,
    images: Any,
    idx: np.ndarray,
    folder: Path,
    split: str,
    config: BkdConfig,
    bar: Any,
) -> list[float]:
    """Write the features of ``images[idx]`` chunk by chunk into memmaps; returns the
    variance of every feature index over all its values."""
    n_slots = len(net.slots)
    dtype = np.dtype(config.feature_dtype)
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
                    feature_file(folder, k, split),
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
    return [float(s2 / n - (s1 / n) ** 2) for (s1, s2), n in zip(sums, counts)]
