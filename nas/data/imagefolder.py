"""``imagefolder:PATH``: a classification data set in the ImageNet layout, streamed from disk.

Layout: ``PATH/train/<class>/<image>`` and ``PATH/val/<class>/<image>`` (``PATH/test/`` is
taken as the validation split when there is no ``val/``), the same class folders in both.
Images are the files directly inside a class folder whose names end in ``.jpg``, ``.jpeg`` or
``.png`` (any case); hidden files (``.*``), other files and anything in subfolders of a class
folder are ignored. Classes are the class folders in sorted order (label = position), files
are in sorted order within a class.

Only the file lists are held in memory, compactly (:class:`FileList`: one byte array of the
names end to end, their offsets and the labels: 12 bytes a file plus its name, about 41 MB
for ImageNet's 1.28M training files); images are decoded lazily, batch by batch, by DataLoader
workers (:mod:`nas.data.imagestream`: transforms, determinism, the unreadable-image rule).

numpy only at import; torch and PIL are imported inside the functions. User guide:
``docs/data.md``.
"""

from __future__ import annotations

import hashlib
import os
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.core.errors import DataError
from nas.data.batches import subset_indices
from nas.data.classification import SALT_TRAIN, SALT_VAL, balanced_subset, rng
from nas.data.imagestream import Decoder, StreamBatches, Unreadable, chunks, stream

if TYPE_CHECKING:
    import torch

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
VAL_FOLDERS = ("val", "test")  # the first that exists is the validation split
LAYOUT = "the layout is PATH/train/<class>/*.jpg|png and PATH/val/<class>/*.jpg|png"
DEFAULT_RESOLUTION = 224


@dataclass(frozen=True, eq=False)
class FileList:
    """The image files of one split, in (class, name) order: ``folder/<class>/<name>``.

    ``names`` holds the file names' bytes (``os.fsencode``) end to end, ``offsets`` (n + 1)
    where each starts, ``labels`` (ascending) each file's class."""

    folder: str
    names: np.ndarray  # uint8
    offsets: np.ndarray  # int64, n + 1
    labels: np.ndarray  # int32, n, ascending

    def __len__(self) -> int:
        return len(self.labels)

    def name(self, i: int) -> str:
        return os.fsdecode(self.names[self.offsets[i] : self.offsets[i + 1]].tobytes())

    def relname(self, i: int, classes: tuple[str, ...]) -> str:
        """``<class>/<name>`` of file ``i``."""
        return f"{classes[int(self.labels[i])]}/{self.name(i)}"

    def path(self, i: int, classes: tuple[str, ...]) -> str:
        return os.path.join(self.folder, classes[int(self.labels[i])], self.name(i))

    def class_range(self, label: int) -> tuple[int, int]:
        """The files ``[lo, hi)`` of class ``label``."""
        lo, hi = np.searchsorted(self.labels, [label, label + 1])
        return int(lo), int(hi)

    def take(self, index: np.ndarray) -> FileList:
        """The files ``index`` (ascending) as a new list."""
        index = np.asarray(index, dtype=np.int64)
        starts = self.offsets[index]
        lengths = self.offsets[index + 1] - starts
        offsets = np.zeros(len(index) + 1, dtype="<i8")
        np.cumsum(lengths, out=offsets[1:])
        gather = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return FileList(self.folder, self.names[gather], offsets, self.labels[index])

    def digest(self, h: Any) -> None:
        """Feed the list (names, offsets, labels; not the folder) to the hash ``h``."""
        for a in (self.offsets, self.names, self.labels):
            h.update(np.ascontiguousarray(a).tobytes())

    @property
    def nbytes(self) -> int:
        return int(self.names.nbytes + self.offsets.nbytes + self.labels.nbytes)


def _is_image(entry: os.DirEntry[str]) -> bool:
    return (
        not entry.name.startswith(".")
        and entry.name.lower().endswith(IMAGE_SUFFIXES)
        and entry.is_file()
    )


def _listing(folder: Path, where: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError as exc:
        raise DataError(
            f"{where}: cannot list {folder} ({exc.strerror or exc}): check that it is readable"
        ) from exc


def _class_folders(folder: Path, where: str) -> list[str]:
    """The sorted class folder names of a split (hidden folders skipped)."""
    items = _listing(folder, where)
    classes = sorted(e.name for e in items if e.is_dir() and not e.name.startswith("."))
    if not classes:
        flat = sum(1 for e in items if _is_image(e))
        held = f" (it holds {flat} images directly)" if flat else ""
        hint = (
            " (ILSVRC2012's val images come flat: sort them into class folders, e.g. with "
            "the valprep.sh script)"
            if flat and folder.name != "train"
            else ""
        )
        raise DataError(
            f"{where}: {folder.name}/ has no class folders{held}: put each class's images in "
            f"{folder.name}/<class>/{hint}"
        )
    return classes


def _scan(folder: Path, classes: tuple[str, ...], where: str) -> FileList:
    """List the images of every class folder (one ``scandir`` a class; nothing decoded)."""
    names, offsets, labels = bytearray(), array("q", [0]), array("i")
    for label, cls in enumerate(classes):
        found = sorted(e.name for e in _listing(folder / cls, where) if _is_image(e))
        if not found:
            raise DataError(
                f"{where}: {folder.name}/{cls}/ holds no .jpg/.jpeg/.png images (files in its "
                "subfolders are not read): add its images or remove the folder"
            )
        for name in found:
            names += os.fsencode(name)
            offsets.append(len(names))
        labels.extend([label] * len(found))
    return FileList(
        str(folder),
        np.frombuffer(bytes(names), dtype=np.uint8).copy(),
        np.frombuffer(offsets, dtype=np.int64).astype("<i8"),
        np.frombuffer(labels, dtype=np.int32).astype("<i4"),
    )


def _differ(a: set[str], b: set[str], k: int = 3) -> str:
    names = sorted(a - b)
    return ", ".join(names[:k]) + (f" (+{len(names) - k} more)" if len(names) > k else "")


def _split_folders(root: Path, where: str) -> tuple[Path, Path]:
    if not root.exists():
        raise DataError(f"{where}: the folder does not exist: {LAYOUT}")
    if not root.is_dir():
        raise DataError(f"{where} is a file, not a folder: extract it; {LAYOUT}")
    if not (root / "train").is_dir():
        inner = sorted(p.name for p in root.iterdir() if (p / "train").is_dir())
        hint = f" (found one in {inner[0]}/: pass imagefolder:{root / inner[0]})" if inner else ""
        raise DataError(f"{where} has no train/ folder{hint}: {LAYOUT}")
    for name in VAL_FOLDERS:
        if (root / name).is_dir():
            return root / "train", root / name
    raise DataError(f"{where} has no val/ folder (nor test/): {LAYOUT}")


def _check(resolution: int, train_limit: int | None, val_limit: int | None) -> None:
    if not isinstance(resolution, int) or resolution < 8:
        raise DataError(f"resolution must be an integer >= 8, got {resolution!r}")
    for name, limit in (("train_limit", train_limit), ("val_limit", val_limit)):
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise DataError(f"{name} must be a positive integer or None, got {limit!r}")


def load_imagefolder(
    path: str | Path,
    *,
    resolution: int = DEFAULT_RESOLUTION,
    seed: int = 0,
    train_limit: int | None = None,
    val_limit: int | None = None,
) -> ImageFolderData:
    """List the ImageNet-layout folder at ``path`` (see the module docstring); decode nothing.

    ``train_limit``/``val_limit``: a seeded, class-balanced subset of that many files of the
    split (the same rule and seeds as the other classification sources), kept in file order.
    Raises :class:`DataError` for a missing folder, a wrong layout, an empty class folder,
    class sets that differ between the splits, or a resolution below 8."""
    _check(resolution, train_limit, val_limit)
    root = Path(os.path.abspath(Path(path).expanduser()))
    where = f"imagefolder:{root}"
    train_dir, val_dir = _split_folders(root, where)
    train_classes = _class_folders(train_dir, where)
    val_classes = _class_folders(val_dir, where)
    if train_classes != val_classes:
        a, b = set(train_classes), set(val_classes)
        only = [f"only in train/: {_differ(a, b)}"] if a - b else []
        only += [f"only in {val_dir.name}/: {_differ(b, a)}"] if b - a else []
        raise DataError(
            f"{where}: train/ and {val_dir.name}/ have different classes ({'; '.join(only)}): "
            "both must hold the same class folders"
        )
    classes = tuple(train_classes)
    train, val = _scan(train_dir, classes, where), _scan(val_dir, classes, where)
    found = (len(train), len(val))
    if train_limit is not None and train_limit < len(train):
        pick = balanced_subset(train.labels, train_limit, rng(seed, SALT_TRAIN))
        train = train.take(np.sort(pick))
    if val_limit is not None and val_limit < len(val):
        pick = balanced_subset(val.labels, val_limit, rng(seed, SALT_VAL))
        val = val.take(np.sort(pick))
    h = hashlib.sha256("\n".join(classes).encode("utf-8", "surrogateescape"))
    for files in (train, val):
        files.digest(h)
    return ImageFolderData(
        root=root,
        train_files=train,
        val_files=val,
        class_names=classes,
        resolution=resolution,
        seed=seed,
        found=found,
        fingerprint=h.hexdigest()[:16],
        unreadable=Unreadable(where),
    )


@dataclass(frozen=True, eq=False)
class ImageFolderData:
    """An ImageNet-layout folder as :class:`~nas.data.batches.TrainingData` (classification):
    file lists in memory, images decoded per batch (:func:`load_imagefolder` builds it).

    ``unreadable`` counts the failed reads of every batch so far (``unreadable.summary()``)."""

    root: Path
    train_files: FileList
    val_files: FileList
    class_names: tuple[str, ...]
    resolution: int
    seed: int
    found: tuple[int, int]  # files listed in train/ and val/ before any limit
    fingerprint: str  # sha256 (16 hex) of the class names and both file lists in use
    unreadable: Unreadable
    task: str = "classification"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_train(self) -> int:
        return len(self.train_files)

    @property
    def n_val(self) -> int:
        return len(self.val_files)

    @property
    def data(self) -> str:
        """The data spec, as parsed."""
        return f"imagefolder:{self.root}"

    @property
    def source(self) -> str:
        """Where the data comes from, in words (as :attr:`TaskData.source`)."""
        return (
            f"{self.data} (train/ and {self.val_files_split}/ class folders, decoded on the "
            f"fly), {self.n_train} train / {self.n_val} val"
        )

    def _decoder(self, files: FileList, augment: bool) -> Decoder:
        return Decoder(files, self.class_names, self.resolution, augment)

    def train_batches(
        self,
        batch_size: int,
        *,
        continuing: bool = False,
        augment: bool = False,
        limit: int | None = None,
        limit_seed: int = 0,
        workers: int = 0,
    ) -> StreamBatches:
        """See :meth:`nas.data.batches.TrainingData.train_batches` and
        :class:`~nas.data.imagestream.StreamBatches`: ``augment`` = random resized crop +
        flip, else the validation transform; ``workers`` DataLoader processes decode."""
        indices = subset_indices(self.n_train, limit, limit_seed)
        return StreamBatches(
            self._decoder(self.train_files, augment),
            indices,
            min(batch_size, len(indices)),
            continuing,
            workers,
            self.unreadable,
            "train",
        )

    def val_batches(
        self, batch_size: int, *, limit: int | None = None, limit_seed: int = 0, workers: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """See :meth:`nas.data.batches.TrainingData.val_batches`: file order, centre crops."""
        sel = subset_indices(self.n_val, limit, limit_seed)
        return stream(
            self._decoder(self.val_files, False),
            chunks(sel, batch_size),
            workers=workers,
            split=self.val_files_split,
            unreadable=self.unreadable,
        )

    def calib_batches(self, n: int, batch_size: int, *, workers: int = 0) -> Iterator[Any]:
        """BatchNorm re-estimation inputs: ``n`` training images, centre-cropped. The file
        list is sorted by class, so instead of its first ``n`` files (one class) these are a
        fixed seeded subset (:func:`subset_indices` with the data's seed), the same each call."""
        sel = subset_indices(self.n_train, n, self.seed)
        batches = stream(
            self._decoder(self.train_files, False),
            chunks(sel, batch_size),
            workers=workers,
            split="train",
            unreadable=self.unreadable,
        )
        return (x for x, _ in batches)

    @property
    def val_files_split(self) -> str:
        """The validation folder's name (``val`` or ``test``)."""
        return os.path.basename(self.val_files.folder)

    def describe(self) -> dict[str, Any]:
        """JSON-able, stable provenance: path, sizes (in use and found), classes, a
        fingerprint of the file lists (names only: no sizes or times), resolution, seed."""
        return {
            "task": self.task,
            "data": self.data,
            "source": self.source,
            "train": self.n_train,
            "val": self.n_val,
            "found": {"train": self.found[0], "val": self.found[1]},
            "val_folder": self.val_files_split,
            "num_classes": self.num_classes,
            "files_sha256": self.fingerprint,
            "input_shape": [3, self.resolution, self.resolution],
            "target_shape": [],
            "resolution": self.resolution,
            "seed": self.seed,
            "transforms": {
                "train": "random resized crop (area 0.08-1, aspect 3/4-4/3) + hflip",
                "val": "resize short side to round(R*256/224), centre crop R",
            },
        }
