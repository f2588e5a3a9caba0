"""CIFAR-10 from disk, in either of its two common offline forms:

* JPEG (or PNG) tree ``train|test/<class>/NNNN.jpg`` — a folder or a tarball;
* torchvision's python batches ``data_batch_1..5`` + ``test_batch`` — the
  ``cifar-10-batches-py`` folder or ``cifar-10-python.tar.gz``.

Fully decoded data is cached as ``.npy`` (the JPEG tree takes ≈23 s to decode). When only a
few images are wanted and nothing is cached, only those are decoded; the subset is chosen from
the labels alone, so it is the same images either way.
"""

from __future__ import annotations

import io
import pickle
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.core.errors import DataError
from nas.data.cache import load_arrays, progress, save_arrays, source_key
from nas.data.classification import (
    SALT_TRAIN,
    SALT_VAL,
    RawSplit,
    balanced_subset,
    rng,
    subset_split,
)
from nas.data.sources import WHERE_TO_GET

CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
SUBSET_MAX = 20_000  # decode at most this many images without caching the whole set
_IMAGE = re.compile(r"(?:^|/)(train|test)/([^/]+)/([^/]+\.(?:jpe?g|png))$", re.IGNORECASE)
_BATCH = re.compile(r"(?:^|/)(data_batch_\d+|test_batch)$")
_ARRAYS = ("train_x", "train_y", "val_x", "val_y", "num_classes", "format")


@dataclass(frozen=True)
class _ImageTree:
    """The images of a JPEG tree in canonical order (split, class, name) and a byte reader."""

    splits: np.ndarray  # 0 train, 1 test
    labels: np.ndarray
    names: list[str]
    read: Callable[[str], bytes]
    num_classes: int
    format: str


def load_cifar10(
    path: Path, *, train_limit: int | None, val_limit: int | None, seed: int, cache_dir: Path
) -> RawSplit:
    """CIFAR-10 train (50k) / test (10k, used as val) at ``path``, subset with the seed."""
    key = source_key("cifar10", path)
    cached = load_arrays(cache_dir, key, _ARRAYS)
    if cached is not None:
        return subset_split(_raw(cached, path), train_limit, val_limit, seed)
    found = _open(path)
    if isinstance(found, dict):  # python batches: already arrays
        save_arrays(cache_dir, key, found)
        return subset_split(_raw(found, path), train_limit, val_limit, seed)
    tree = found
    train_idx = np.flatnonzero(tree.splits == 0)
    val_idx = np.flatnonzero(tree.splits == 1)
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise DataError(
            f"cifar10:{path} ({tree.format}) has {len(train_idx)} train and {len(val_idx)} test "
            f"images: it needs both train/<class>/ and test/<class>/: {WHERE_TO_GET['cifar10']}"
        )
    wanted = min(train_limit or len(train_idx), len(train_idx))
    wanted += min(val_limit or len(val_idx), len(val_idx))
    if wanted <= SUBSET_MAX and wanted < len(tree.names):
        train = train_idx[
            balanced_subset(tree.labels[train_idx], train_limit, rng(seed, SALT_TRAIN))
        ]
        val = val_idx[balanced_subset(tree.labels[val_idx], val_limit, rng(seed, SALT_VAL))]
        images = _decode(tree, np.concatenate([train, val]), path)
        return RawSplit(
            images[: len(train)],
            tree.labels[train],
            images[len(train) :],
            tree.labels[val],
            tree.num_classes,
            f"cifar10:{path} ({tree.format})",
        )
    images = _decode(tree, np.arange(len(tree.names)), path)
    arrays = {
        "train_x": images[train_idx],
        "train_y": tree.labels[train_idx],
        "val_x": images[val_idx],
        "val_y": tree.labels[val_idx],
        "num_classes": np.array(tree.num_classes),
        "format": np.array(tree.format),
    }
    save_arrays(cache_dir, key, arrays)
    return subset_split(_raw(arrays, path), train_limit, val_limit, seed)


def _raw(arrays: dict[str, np.ndarray], path: Path) -> RawSplit:
    return RawSplit(
        arrays["train_x"],
        arrays["train_y"],
        arrays["val_x"],
        arrays["val_y"],
        int(arrays["num_classes"]),
        f"cifar10:{path} ({arrays['format']})",
    )


def _open(path: Path) -> _ImageTree | dict[str, np.ndarray]:
    if path.is_dir():
        for folder in (path, path / "cifar-10-batches-py"):
            if (folder / "data_batch_1").is_file():
                files = {p.name: p for p in folder.iterdir() if _BATCH.search(p.name)}
                return _batches({n: p.read_bytes for n, p in files.items()}, path, "python batches")
        return _tree_from_folder(path)
    if not tarfile.is_tarfile(path):
        raise DataError(
            f"cifar10:{path} is neither a folder nor a tar archive: {WHERE_TO_GET['cifar10']}"
        )
    blobs: dict[str, bytes] = {}
    batches: dict[str, bytes] = {}
    try:
        with tarfile.open(path) as archive:
            for member in archive:
                if not member.isfile():
                    continue
                if _IMAGE.search(member.name):
                    blobs[member.name] = archive.extractfile(member).read()  # type: ignore[union-attr]
                elif _BATCH.search(member.name):
                    name = _BATCH.search(member.name).group(1)  # type: ignore[union-attr]
                    batches[name] = archive.extractfile(member).read()  # type: ignore[union-attr]
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(
            f"cifar10:{path}: cannot read the tar archive ({exc}); get it again"
        ) from exc
    if batches:
        return _batches({n: (lambda b=b: b) for n, b in batches.items()}, path, "python tarball")
    if blobs:
        return _tree(list(blobs), blobs.__getitem__, path, "jpg tarball")
    raise DataError(
        f"cifar10:{path} holds neither train|test/<class>/*.jpg images nor python batches "
        f"(data_batch_1..5, test_batch): {WHERE_TO_GET['cifar10']}"
    )


def _tree_from_folder(path: Path) -> _ImageTree:
    roots = [path, *sorted(p for p in path.iterdir() if p.is_dir())]
    for root in roots:
        if (root / "train").is_dir() and (root / "test").is_dir():
            names = [
                str(file.relative_to(root))
                for split in ("train", "test")
                for file in (root / split).glob("*/*")
                if _IMAGE.search(str(file.relative_to(root)))
            ]
            if names:
                return _tree(
                    names, lambda name, r=root: (r / name).read_bytes(), path, "jpg folder"
                )
    raise DataError(
        f"cifar10:{path} is a folder without python batches (data_batch_1, ...) or a "
        f"train|test/<class>/*.jpg tree: {WHERE_TO_GET['cifar10']}"
    )


def _tree(names: list[str], read: Callable[[str], bytes], path: Path, fmt: str) -> _ImageTree:
    parsed = []
    for name in names:
        match = _IMAGE.search(name)
        assert match is not None
        parsed.append((0 if match.group(1).lower() == "train" else 1, match.group(2), name))
    parsed.sort()
    found = sorted({cls for _, cls, _ in parsed})
    train_classes = {cls for split, cls, _ in parsed if split == 0}
    if set(found) - train_classes:
        raise DataError(
            f"cifar10:{path}: test classes {sorted(set(found) - train_classes)} have no train "
            "images; the tree must be train|test/<class>/ with the same classes in both"
        )
    classes = CLASSES if set(found) <= set(CLASSES) else tuple(found)
    index = {cls: i for i, cls in enumerate(classes)}
    return _ImageTree(
        splits=np.array([split for split, _, _ in parsed], dtype=np.int64),
        labels=np.array([index[cls] for _, cls, _ in parsed], dtype=np.int64),
        names=[name for _, _, name in parsed],
        read=read,
        num_classes=len(classes),
        format=fmt,
    )


def _decode(tree: _ImageTree, index: np.ndarray, path: Path) -> np.ndarray:
    """Decode images ``index`` of ``tree`` to uint8 N×3×H×W (all must have one size)."""
    from PIL import Image, UnidentifiedImageError

    out: np.ndarray | None = None
    with progress(len(index), f"decoding CIFAR-10 ({tree.format})") as bar:
        for row, i in enumerate(index):
            name = tree.names[i]
            try:
                with Image.open(io.BytesIO(tree.read(name))) as image:
                    pixels = np.asarray(image.convert("RGB"))
            except (UnidentifiedImageError, OSError) as exc:
                raise DataError(f"cifar10:{path}: cannot decode image {name}: {exc}") from exc
            if out is None:
                out = np.empty((len(index), *pixels.shape), dtype=np.uint8)
            if pixels.shape != out.shape[1:]:
                raise DataError(
                    f"cifar10:{path}: image {name} is {pixels.shape[1]}×{pixels.shape[0]}, the "
                    f"others {out.shape[2]}×{out.shape[1]}: all images must have one size"
                )
            out[row] = pixels
            bar.update(1)
    assert out is not None
    return out.transpose(0, 3, 1, 2)


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR batch holds (dicts, lists, bytes, numpy arrays)."""

    _ALLOWED = frozenset(
        (module, name)
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    ) | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a CIFAR batch")


def _batches(files: dict[str, Callable[[], bytes]], path: Path, fmt: str) -> dict[str, np.ndarray]:
    def load(name: str) -> tuple[np.ndarray, np.ndarray]:
        try:
            batch = _BatchUnpickler(io.BytesIO(files[name]()), encoding="bytes").load()
            batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
            data = np.asarray(batch["data"], dtype=np.uint8)
            labels = np.asarray(batch["labels"], dtype=np.int64)
        except (
            pickle.UnpicklingError,
            EOFError,
            AttributeError,
            KeyError,
            TypeError,
            ValueError,
        ) as exc:
            raise DataError(
                f"cifar10:{path}: {name} is not a CIFAR-10 python batch ({exc}): "
                f"{WHERE_TO_GET['cifar10']}"
            ) from exc
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
            raise DataError(
                f"cifar10:{path}: {name} holds data {data.shape} and {len(labels)} labels; "
                "a CIFAR-10 batch holds N×3072 uint8 rows and N labels"
            )
        return data.reshape(-1, 3, 32, 32), labels

    train_names = sorted(
        (n for n in files if n.startswith("data_batch_")), key=lambda n: int(n.rsplit("_", 1)[1])
    )
    if not train_names or "test_batch" not in files:
        raise DataError(
            f"cifar10:{path} ({fmt}) needs data_batch_1..5 and test_batch, found "
            f"{sorted(files) or 'none'}: {WHERE_TO_GET['cifar10']}"
        )
    train = [load(n) for n in train_names]
    train_y = np.concatenate([y for _, y in train])
    val_x, val_y = load("test_batch")
    return {
        "train_x": np.concatenate([x for x, _ in train]),
        "train_y": train_y,
        "val_x": val_x,
        "val_y": val_y,
        "num_classes": np.array(max(10, int(max(train_y.max(), val_y.max())) + 1)),
        "format": np.array(fmt),
    }
