"""Streaming image files through DataLoader workers: the transforms, the unreadable-image rule
and the :class:`~nas.data.batches.BatchSource` of :class:`~nas.data.imagefolder.ImageFolderData`.

* **Transforms** (PIL, one resampling step each, bilinear with PIL's antialiasing):
  training with ``augment``: a random resized crop (area 8-100 %, aspect 3/4-4/3, the
  torchvision ``RandomResizedCrop`` rule: ten tries, then a centre crop) to R×R and a
  horizontal flip with probability 1/2; otherwise (training without augment, validation,
  BatchNorm calibration): the short side resized to ``round(R·256/224)`` and the centre R×R.
  Large JPEGs are decoded at a reduced scale (``Image.draft``) that still gives the crop at
  least R pixels a side. Any mode (greyscale, palette, RGBA, CMYK) becomes RGB.
* **Determinism**: an example is a key ``(pass seed, round, index)``; its crop and flip come
  from ``numpy.random.default_rng([pass seed, round, index])`` in the worker that decodes it,
  so the batches do not depend on the number of workers.
* **Unreadable images** (:class:`Unreadable`): a file that fails to decode is replaced by the
  next file of its class (cyclically, up to :data:`SUBSTITUTE_TRIES` files in all), with the
  same key; an example with no readable substitute is dropped from its batch. Every failed
  read is counted. A warning (:class:`UnreadableImageWarning`, once per data set) when more
  than :data:`WARN_FILES` distinct files or more than :data:`WARN_SHARE` of the reads failed;
  :class:`~nas.core.errors.DataError` when a batch has no readable example, or when more than
  :data:`FAIL_SHARE` of at least :data:`FAIL_MIN_READS` reads failed.

numpy only at import; torch and PIL are imported inside the functions.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import sys
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.core.errors import DataError

if TYPE_CHECKING:
    import torch

    from nas.data.imagefolder import FileList

logger = logging.getLogger(__name__)

RESIZE_RATIO = 256 / 224  # validation: short side to round(R * 256 / 224), then centre crop R
CROP_SCALE = (0.08, 1.0)  # random resized crop: fraction of the image area
CROP_RATIO = (3 / 4, 4 / 3)  # ... and aspect ratio range
SUBSTITUTE_TRIES = 8  # files tried per example: the file itself and the next 7 of its class
WARN_FILES, WARN_SHARE = 10, 0.001  # warn past 10 distinct unreadable files or 0.1 % of reads
FAIL_SHARE, FAIL_MIN_READS = 0.05, 100  # DataError past 5 % of at least 100 reads
_KEEP_FILES = 10_000  # distinct unreadable files remembered (beyond: counted only)

Key = tuple[int, int, int]  # (pass seed, round, index into the file list)


class UnreadableImageWarning(UserWarning):
    """Some image files of an image folder could not be decoded (they were replaced)."""


# ---- transforms --------------------------------------------------------------------------


def random_box(w: int, h: int, gen: np.random.Generator) -> tuple[float, float, float, float]:
    """A random resized crop's box (left, top, right, bottom) in a w×h image: torchvision's
    ``RandomResizedCrop.get_params`` rule with :data:`CROP_SCALE` and :data:`CROP_RATIO`."""
    area = w * h
    log_lo, log_hi = math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])
    for _ in range(10):
        target = area * gen.uniform(*CROP_SCALE)
        aspect = math.exp(gen.uniform(log_lo, log_hi))
        cw = round(math.sqrt(target * aspect))
        ch = round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(gen.integers(0, h - ch + 1))
            left = int(gen.integers(0, w - cw + 1))
            return left, top, left + cw, top + ch
    ratio = w / h
    if ratio < CROP_RATIO[0]:
        cw, ch = w, round(w / CROP_RATIO[0])
    elif ratio > CROP_RATIO[1]:
        cw, ch = round(h * CROP_RATIO[1]), h
    else:
        cw, ch = w, h
    left, top = (w - cw) // 2, (h - ch) // 2
    return left, top, left + cw, top + ch


def centre_box(w: int, h: int, resolution: int) -> tuple[float, float, float, float]:
    """The box of a w×h image that becomes the centre R×R crop after resizing the short side
    to ``round(R·256/224)`` (torchvision's ``Resize`` + ``CenterCrop`` arithmetic)."""
    short = round(resolution * RESIZE_RATIO)
    nw, nh = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    top, left = round((nh - resolution) / 2), round((nw - resolution) / 2)
    sx, sy = w / nw, h / nh
    return left * sx, top * sy, (left + resolution) * sx, (top + resolution) * sy


def decode(path: str, resolution: int, gen: np.random.Generator | None) -> np.ndarray:
    """The image at ``path`` as uint8 R×R×3 RGB: the random resized crop and flip drawn from
    ``gen``, or the centre crop when ``gen`` is ``None``. Raises whatever PIL raises."""
    from PIL import Image

    with Image.open(path) as img:
        w, h = img.size
        box = centre_box(w, h, resolution) if gen is None else random_box(w, h, gen)
        flip = gen is not None and gen.random() < 0.5
        shrink = min(box[2] - box[0], box[3] - box[1]) / resolution
        if img.format == "JPEG" and shrink >= 2:
            want = (math.ceil(w / shrink), math.ceil(h / shrink))
            drafted = img.draft(None, want)
            if drafted is not None:
                scale = w / drafted[1][2]
                box = tuple(v / scale for v in box)  # type: ignore[assignment]
        if img.mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")
        if img.mode != "RGB":
            img = img.convert("RGB")
        out = img.resize((resolution, resolution), Image.Resampling.BILINEAR, box=box)
        if flip:
            out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return np.array(out, dtype=np.uint8)


# ---- the dataset the DataLoader reads -------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Decoder:
    """A map-style dataset over a file list: ``decoder[key]`` -> ``(pixels or None, label,
    failed)``, with ``failed`` the indices of the files that could not be decoded (see the
    module docstring for the substitution rule)."""

    files: FileList
    class_names: tuple[str, ...]
    resolution: int
    augment: bool

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: Key) -> tuple[np.ndarray | None, int, tuple[int, ...]]:
        seed, rnd, index = key
        lo, hi = self.files.class_range(int(self.files.labels[index]))
        failed: list[int] = []
        for k in range(min(SUBSTITUTE_TRIES, hi - lo)):
            i = lo + (index - lo + k) % (hi - lo)
            gen = np.random.default_rng([seed, rnd, index]) if self.augment else None
            try:
                pixels = decode(self.files.path(i, self.class_names), self.resolution, gen)
            except Exception as exc:  # a damaged file can raise almost anything in PIL
                logger.debug("cannot decode %s: %s", self.files.path(i, self.class_names), exc)
                failed.append(i)
                continue
            return pixels, int(self.files.labels[index]), tuple(failed)
        return None, int(self.files.labels[index]), tuple(failed)


def collate(items: list[tuple[np.ndarray | None, int, tuple[int, ...]]]) -> tuple[Any, ...]:
    """Readable examples stacked: ``(uint8 N×R×R×3 or None, int64 labels, failed indices,
    files read)``."""
    import torch

    ok = [(x, y) for x, y, _ in items if x is not None]
    failed = [i for _, _, f in items for i in f]
    reads = len(ok) + len(failed)
    if not ok:
        return None, None, failed, reads
    x = torch.from_numpy(np.stack([x for x, _ in ok]))
    y = torch.tensor([y for _, y in ok], dtype=torch.int64)
    return x, y, failed, reads


def worker_init(worker_id: int) -> None:
    """A DataLoader worker: dies with its parent, one torch thread."""
    import torch

    from nas.core.processes import die_with_parent

    die_with_parent()
    torch.set_num_threads(1)


def _context() -> Any:
    """``fork`` where it is safe (Linux: workers start in milliseconds, the file list is shared
    copy-on-write), else the platform's default."""
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return None


# ---- unreadable-image bookkeeping (main process) --------------------------------------------


@dataclass
class Unreadable:
    """Counts of the reads and failed reads of one data set, over all its batches."""

    where: str  # e.g. "imagefolder:/data/imagenet"
    reads: int = 0
    failures: int = 0
    files: dict[tuple[str, int], str] = field(default_factory=dict)  # (split, index) -> name
    warned: bool = False

    def record(
        self,
        split: str,
        files: FileList,
        classes: tuple[str, ...],
        failed: list[int],
        reads: int,
        empty: bool,
    ) -> None:
        """Count one batch's reads; warn or raise by the rule of the module docstring."""
        self.reads += reads
        self.failures += len(failed)
        for i in failed:
            if len(self.files) < _KEEP_FILES:
                self.files.setdefault((split, i), f"{split}/{files.relname(i, classes)}")
        if empty:
            raise DataError(
                f"{self.where}: no image of a batch could be read, nor a substitute from its "
                f"class (e.g. {self.examples()}): fix or remove the unreadable files"
            )
        if self.reads >= FAIL_MIN_READS and self.failures > FAIL_SHARE * self.reads:
            raise DataError(
                f"{self.where}: {self.failures} of {self.reads} image reads failed (more than "
                f"{FAIL_SHARE:.0%}; e.g. {self.examples()}): the folder looks damaged; fix or "
                "remove the unreadable files"
            )
        if not self.warned and (
            len(self.files) > WARN_FILES or self.failures > WARN_SHARE * self.reads
        ):
            self.warned = True
            warnings.warn(
                f"{self.where}: {len(self.files)} unreadable image files so far "
                f"({self.failures} of {self.reads} reads), each replaced by the next readable "
                f"image of its class (e.g. {self.examples()}): fix or remove them",
                UnreadableImageWarning,
                stacklevel=4,
            )

    def examples(self, k: int = 3) -> str:
        names = sorted(self.files.values())
        more = f" and {len(names) - k} more" if len(names) > k else ""
        return ", ".join(names[:k]) + more

    def summary(self) -> dict[str, Any]:
        """JSON-able counts: reads, failed reads, distinct unreadable files (a few named)."""
        return {
            "reads": self.reads,
            "failures": self.failures,
            "files": len(self.files),
            "examples": sorted(self.files.values())[:10],
        }


def stream(
    decoder: Decoder,
    keys: Iterable[list[Key]],
    *,
    workers: int,
    split: str,
    unreadable: Unreadable,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Decode the batches of ``keys`` (lists of keys) with ``workers`` DataLoader processes
    (0: in this process; also inside a daemonic process, which may not have children) and
    yield float32 N×3×R×R in [0, 1] and int64 labels, in the order of ``keys``."""
    import torch
    from torch.utils.data import DataLoader

    if workers > 0 and multiprocessing.current_process().daemon:
        workers = 0
    loader = DataLoader(
        decoder,  # type: ignore[arg-type]
        batch_sampler=keys,  # type: ignore[arg-type]
        num_workers=workers,
        collate_fn=collate,
        worker_init_fn=worker_init if workers > 0 else None,
        multiprocessing_context=_context() if workers > 0 else None,
        persistent_workers=False,
        pin_memory=False,
    )
    batches = iter(loader)
    try:
        for x, y, failed, reads in batches:
            unreadable.record(
                split, decoder.files, decoder.class_names, failed, reads, empty=x is None
            )
            xb = torch.empty((len(x), 3, x.shape[1], x.shape[2]), dtype=torch.float32)
            xb.copy_(x.permute(0, 3, 1, 2)).div_(255.0)
            yield xb, y
    finally:
        shutdown = getattr(batches, "_shutdown_workers", None)
        if shutdown is not None:  # a pass cut short: end its workers now
            shutdown()


def chunks(
    indices: np.ndarray, batch_size: int, seed: int = 0, rnd: int = 0, min_batch: int = 1
) -> Iterator[list[Key]]:
    """Consecutive ``batch_size`` slices of ``indices`` as key lists (a slice of fewer than
    ``min_batch`` examples is skipped)."""
    for i in range(0, len(indices), batch_size):
        part = indices[i : i + batch_size]
        if len(part) >= min_batch:
            yield [(seed, rnd, int(k)) for k in part]


@dataclass(frozen=True, eq=False)
class StreamBatches:
    """A :class:`~nas.data.batches.BatchSource` over image files: ``indices`` (into the
    decoder's file list) in a fresh order per pass, decoded by ``workers`` processes.

    Each pass draws one seed from the generator (``torch.randint(2**62)``) when it starts; the
    pass's order is ``numpy.random.default_rng([seed, round]).permutation`` and each example's
    augmentation is seeded by ``(seed, round, index)``. Epoch mode (round 0): slices of
    ``batch_size``, a slice of fewer than 2 skipped (BatchNorm), like
    :class:`~nas.data.batches.EpochShuffle`. ``continuing``: one endless pass, a new round
    (and order) when the next slice would run past the end, like
    :class:`~nas.data.batches.ContinuingShuffle`."""

    decoder: Decoder
    indices: np.ndarray
    batch_size: int
    continuing: bool
    workers: int
    unreadable: Unreadable
    split: str = "train"

    @property
    def n(self) -> int:
        return len(self.indices)

    def passes(self, generator: torch.Generator, skip: int = 0) -> Iterator[Iterator[Any]]:
        """The passes (see the class docstring); ``skip``: the first pass starts after its
        first ``skip`` batches, which are not decoded (resuming mid-pass costs nothing)."""
        import itertools

        import torch

        while True:
            seed = int(torch.randint(2**62, (1,), generator=generator))
            keys = self._stream_keys(seed) if self.continuing else self._epoch_keys(seed)
            if skip:
                keys, skip = itertools.islice(keys, skip, None), 0
            yield stream(
                self.decoder,
                keys,
                workers=self.workers,
                split=self.split,
                unreadable=self.unreadable,
            )
            if self.continuing:
                return

    def _order(self, seed: int, rnd: int) -> np.ndarray:
        return self.indices[np.random.default_rng([seed, rnd]).permutation(self.n)]

    def _epoch_keys(self, seed: int) -> Iterator[list[Key]]:
        return chunks(self._order(seed, 0), self.batch_size, seed, 0, min_batch=2)

    def _stream_keys(self, seed: int) -> Iterator[list[Key]]:
        rnd, order, pos = 0, self._order(seed, 0), 0
        while True:
            if pos + self.batch_size > self.n and pos > 0:
                rnd, pos = rnd + 1, 0
                order = self._order(seed, rnd)
            yield [(seed, rnd, int(k)) for k in order[pos : pos + self.batch_size]]
            pos += self.batch_size
