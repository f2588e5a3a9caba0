"""The one entry point: :func:`load_task_data` builds a task's train and val tensors offline."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.core.errors import DataError
from nas.data.batches import (
    BatchSource,
    ContinuingShuffle,
    EpochShuffle,
    TensorBatches,
    random_hflip,
    subset_indices,
)
from nas.data.cache import default_cache_dir
from nas.data.classification import (
    SALT_TRAIN,
    SALT_VAL,
    load_fashion_mnist,
    load_mnist_builtin,
    rng,
    subset_split,
    to_tensor,
)
from nas.data.sources import DataSpec, check_task, parse_data_spec

if TYPE_CHECKING:
    import torch

    from nas.data.imagefolder import ImageFolderData

DEFAULT_TRAIN_PATCHES = 4000
DEFAULT_VAL_PATCHES = 500  # built-in photos only; a benchmark set gives all its patches
SALT_NOISE_TRAIN, SALT_NOISE_VAL = 201, 202


@dataclass(frozen=True, eq=False)
class TaskData:
    """A task's data as tensors: inputs ``*_x`` are float32 N×3×R×R in [0, 1]; targets ``*_y``
    are int64 labels (classification), the clean R×R image (denoising) or the clean
    (scale·R)×(scale·R) image (super-resolution)."""

    task: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    num_classes: int | None
    source: str
    seed: int = 0
    sigma: float | None = None  # denoising: noise std on the 0..255 scale
    scale: int | None = None  # super-resolution factor
    data: str = "builtin"  # the data spec, as parsed

    @property
    def n_train(self) -> int:
        return int(self.train_x.shape[0])

    @property
    def n_val(self) -> int:
        return int(self.val_x.shape[0])

    @property
    def resolution(self) -> int:
        return int(self.train_x.shape[-1])

    def _targets(self, y: torch.Tensor) -> torch.Tensor:
        return y if self.task == "classification" else y.float()

    def train_batches(
        self,
        batch_size: int,
        *,
        continuing: bool = False,
        augment: bool = False,
        limit: int | None = None,
        limit_seed: int = 0,
        workers: int = 0,
    ) -> BatchSource:
        """See :meth:`nas.data.batches.TrainingData.train_batches` (``workers`` is ignored:
        the tensors are in memory). Flips move the target images too for image tasks."""
        import torch

        x, y = self.train_x.float(), self._targets(self.train_y)
        if limit is not None and limit < len(x):
            sel = torch.from_numpy(subset_indices(len(x), limit, limit_seed))
            x, y = x[sel], y[sel]
        bs = min(batch_size, len(x))
        order = ContinuingShuffle(bs) if continuing else EpochShuffle(bs)
        flip = random_hflip(flip_targets=self.task != "classification") if augment else None
        return TensorBatches(lambda idx: (x[idx], y[idx]), len(x), order, flip)

    def val_batches(
        self, batch_size: int, *, limit: int | None = None, limit_seed: int = 0, workers: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """See :meth:`nas.data.batches.TrainingData.val_batches`."""
        sel = subset_indices(self.n_val, limit, limit_seed)
        for i in range(0, len(sel), batch_size):
            idx = torch_index(sel[i : i + batch_size])
            yield self.val_x[idx].float(), self._targets(self.val_y[idx])

    def calib_batches(self, n: int, batch_size: int, *, workers: int = 0) -> Iterator[torch.Tensor]:
        """See :meth:`nas.data.batches.TrainingData.calib_batches`."""
        n = min(n, self.n_train)
        for i in range(0, n, batch_size):
            yield self.train_x[i : min(i + batch_size, n)].float()

    def describe(self) -> dict[str, Any]:
        """JSON-able provenance: task, data spec, source, sizes, shapes, σ / scale, seed."""
        out: dict[str, Any] = {
            "task": self.task,
            "data": self.data,
            "source": self.source,
            "train": int(self.train_x.shape[0]),
            "val": int(self.val_x.shape[0]),
            "input_shape": [int(s) for s in self.train_x.shape[1:]],
            "target_shape": [int(s) for s in self.train_y.shape[1:]],
            "resolution": int(self.train_x.shape[-1]),
            "seed": self.seed,
        }
        if self.num_classes is not None:
            out["num_classes"] = self.num_classes
        if self.sigma is not None:
            out["sigma"] = self.sigma
        if self.scale is not None:
            out["scale"] = self.scale
        return out


def torch_index(idx: np.ndarray) -> torch.Tensor:
    """``idx`` as a tensor for indexing (torch imported here)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(idx))


def load_task_data(
    task: str,
    data: str | DataSpec | None = None,
    *,
    resolution: int = 32,
    seed: int = 0,
    train_limit: int | None = None,
    val_limit: int | None = None,
    sigma: float = 25.0,
    scale: int = 2,
    cache_dir: Path | None = None,
) -> TaskData | ImageFolderData:
    """Load ``task``'s train and val data from ``data`` (see :func:`parse_data_spec`).

    Same arguments -> identical tensors; nothing is downloaded. ``train_limit``/``val_limit``
    take a seeded, class-balanced subset (classification) or set the number of patches
    (image tasks: default 4000 train / 500 val from the built-in photos, every grid patch of a
    benchmark set). ``cache_dir`` holds decoded CIFAR-10 (default ``$DONNA_CACHE_DIR/data``).
    ``imagefolder:PATH`` gives an :class:`~nas.data.imagefolder.ImageFolderData` instead: the
    file lists only (limits: seeded class-balanced subsets of them), images decoded per batch.
    """
    check_task(task)
    _check_args(resolution, train_limit, val_limit, sigma, scale)
    spec = parse_data_spec(data, task)
    if spec.kind == "imagefolder":
        from nas.data.imagefolder import load_imagefolder

        assert spec.path is not None
        return load_imagefolder(
            spec.path, resolution=resolution, seed=seed, train_limit=train_limit,
            val_limit=val_limit,
        )  # fmt: skip
    if task == "classification":
        return _classification(spec, resolution, seed, train_limit, val_limit, cache_dir)
    return _restoration(task, spec, resolution, seed, train_limit, val_limit, sigma, scale)


def _check_args(
    resolution: int, train_limit: int | None, val_limit: int | None, sigma: float, scale: int
) -> None:
    if not isinstance(resolution, int) or resolution < 8:
        raise DataError(f"resolution must be an integer >= 8, got {resolution!r}")
    for name, limit in (("train_limit", train_limit), ("val_limit", val_limit)):
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise DataError(f"{name} must be a positive integer or None, got {limit!r}")
    if not sigma >= 0:
        raise DataError(f"sigma (noise std on the 0..255 scale) must be >= 0, got {sigma!r}")
    if not isinstance(scale, int) or scale < 2:
        raise DataError(f"scale (super-resolution factor) must be an integer >= 2, got {scale!r}")


def _classification(
    spec: DataSpec,
    resolution: int,
    seed: int,
    train_limit: int | None,
    val_limit: int | None,
    cache_dir: Path | None,
) -> TaskData:
    assert spec.kind == "mnist" or spec.path is not None
    if spec.kind == "cifar10":
        from nas.data.cifar import load_cifar10

        raw = load_cifar10(
            spec.path,  # type: ignore[arg-type]
            train_limit=train_limit,
            val_limit=val_limit,
            seed=seed,
            cache_dir=cache_dir or default_cache_dir(),
        )
    else:
        full = load_mnist_builtin(seed) if spec.kind == "mnist" else load_fashion_mnist(spec.path)  # type: ignore[arg-type]
        raw = subset_split(full, train_limit, val_limit, seed)
    import torch

    return TaskData(
        task="classification",
        train_x=to_tensor(raw.train_x, resolution),
        train_y=torch.from_numpy(np.ascontiguousarray(raw.train_y, dtype=np.int64)),
        val_x=to_tensor(raw.val_x, resolution),
        val_y=torch.from_numpy(np.ascontiguousarray(raw.val_y, dtype=np.int64)),
        num_classes=raw.num_classes,
        source=f"{raw.source}, {len(raw.train_y)} train / {len(raw.val_y)} val",
        seed=seed,
        data=str(spec),
    )


def _restoration(
    task: str,
    spec: DataSpec,
    resolution: int,
    seed: int,
    train_limit: int | None,
    val_limit: int | None,
    sigma: float,
    scale: int,
) -> TaskData:
    from nas.data import images

    size = resolution if task == "denoising" else scale * resolution
    n_train = train_limit or DEFAULT_TRAIN_PATCHES
    train, train_photos = images.photo_patches(n_train, size, "train", rng(seed, SALT_TRAIN))
    train_desc = f"photos {'+'.join(train_photos)} ({len(train)} patches)"
    if spec.kind == "photos":
        n_val = val_limit or DEFAULT_VAL_PATCHES
        val, val_photos = images.photo_patches(n_val, size, "val", rng(seed, SALT_VAL))
        val_desc = f"photos {'+'.join(val_photos)} ({len(val)} patches)"
    else:
        found, fmt = images.benchmark_images(spec)
        val = images.grid_patches(found, size)
        if len(val) == 0:
            raise DataError(
                f"{spec}: no image is at least {size}×{size} pixels, so it gives no val patch: "
                "use a smaller resolution (or scale)"
            )
        if val_limit is not None and val_limit < len(val):
            val = val[np.sort(rng(seed, SALT_VAL).choice(len(val), val_limit, replace=False))]
        val_desc = f"{spec} ({fmt}, {len(found)} images, {len(val)} grid patches)"
    clean_train, clean_val = images.to_float(train), images.to_float(val)
    if task == "denoising":
        train_x = images.add_noise(clean_train, sigma, rng(seed, SALT_NOISE_TRAIN))
        val_x = images.add_noise(clean_val, sigma, rng(seed, SALT_NOISE_VAL))
        what = f"σ={sigma:g}"
    else:
        train_x, val_x = images.downsample(clean_train, scale), images.downsample(clean_val, scale)
        what = f"×{scale} bicubic"
    return TaskData(
        task=task,
        train_x=train_x,
        train_y=clean_train,
        val_x=val_x,
        val_y=clean_val,
        num_classes=None,
        source=(f"train: {train_desc}; val: {val_desc}; clean patches {size}×{size}, {what}"),
        seed=seed,
        sigma=float(sigma) if task == "denoising" else None,
        scale=scale if task == "super_resolution" else None,
        data=str(spec),
    )
