"""Image-restoration data: clean patches from the photographs inside the scikit-image and
scikit-learn wheels, the CBSD68 / Set5 / Set14 benchmark sets, and the degradations.

* Denoising: input = clip(clean + N(0, (σ/255)²), 0, 1), target = clean, both R×R.
* ×s super-resolution: target = clean (s·R)×(s·R) patch, input = its bicubic (antialiased)
  downsample to R×R, clipped to [0, 1].

Only photos that ship inside the wheels are used (other ``skimage.data`` images download).
"""

from __future__ import annotations

import functools
import io
import re
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nas.core.errors import DataError
from nas.data.sources import WHERE_TO_GET, DataSpec

if TYPE_CHECKING:
    import torch

SKIMAGE_PHOTOS = (
    "astronaut",
    "camera",
    "chelsea",
    "coffee",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "rocket",
    "stereo_motorcycle",
)
SKLEARN_PHOTOS = ("china", "flower")
# Held out whole (no val patch comes from a train photo); chosen near the median difficulty
# (×2 nearest-upsampling baseline ≈28–30 dB; "flower" and "retina" are much smoother).
VAL_PHOTOS = ("coffee", "china")
FLAT_STD = 0.02  # a patch whose pixel std (in [0, 1] units) is below this is "flat"
CANDIDATES = 4  # positions drawn per wanted patch, to prefer non-flat patches
BENCHMARK_DIRS = {
    "cbsd68": ("cbsd68", "original_png"),
    "set5": ("set5", "cset5"),
    "set14": ("set14", "cset14"),
}
_IMAGE_EXT = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")


@functools.lru_cache(maxsize=1)
def builtin_photos() -> tuple[tuple[str, np.ndarray], ...]:
    """The photos inside the wheels as read-only uint8 H×W×3 arrays (greyscale -> 3 channels)."""
    try:
        from skimage import data as skdata
    except ImportError as exc:
        raise DataError(f"the built-in photos need scikit-image: {WHERE_TO_GET['photos']}") from exc
    from sklearn.datasets import load_sample_images

    photos = []
    for name in SKIMAGE_PHOTOS:
        image = getattr(skdata, name)()
        if name == "stereo_motorcycle":
            image = image[0]  # (left, right, disparity): the right view is the same scene
        photos.append((name, image))
    sample = load_sample_images()
    for file, image in zip(sample.filenames, sample.images):
        photos.append((Path(file).stem, image))
    out = []
    for name, image in photos:
        array = np.ascontiguousarray(_rgb(np.asarray(image, dtype=np.uint8)))
        array.setflags(write=False)
        out.append((name, array))
    return tuple(out)


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    return image[:, :, :3]


def photo_patches(
    n: int, size: int, split: str, gen: np.random.Generator
) -> tuple[np.ndarray, list[str]]:
    """``n`` random ``size``×``size`` patches (uint8 N×3×S×S) from the train or val photos,
    spread evenly over the photos, non-flat ones preferred; and the photos used."""
    photos = [
        (name, image)
        for name, image in builtin_photos()
        if (name in VAL_PHOTOS) == (split == "val") and min(image.shape[:2]) >= size
    ]
    if not photos:
        raise DataError(
            f"no built-in {split} photo is at least {size}×{size} pixels: use a smaller "
            "resolution (or scale)"
        )
    counts = [n // len(photos) + (i < n % len(photos)) for i in range(len(photos))]
    patches = np.empty((n, 3, size, size), dtype=np.uint8)
    row = 0
    for (_, image), count in zip(photos, counts):
        h, w = image.shape[:2]
        tries = CANDIDATES * count
        ys = gen.integers(0, h - size + 1, tries)
        xs = gen.integers(0, w - size + 1, tries)
        good: list[int] = []
        flat: list[int] = []
        for i in range(tries):
            patch = image[ys[i] : ys[i] + size, xs[i] : xs[i] + size]
            (good if patch.std() >= FLAT_STD * 255 else flat).append(i)
            if len(good) == count:
                break
        for i in (good + flat)[:count]:
            patches[row] = image[ys[i] : ys[i] + size, xs[i] : xs[i] + size].transpose(2, 0, 1)
            row += 1
    return patches[gen.permutation(n)], [name for name, _ in photos]


# --- benchmark sets -----------------------------------------------------------------------------


def benchmark_images(spec: DataSpec) -> tuple[list[tuple[str, np.ndarray]], str]:
    """The images of a benchmark set (sorted by name, uint8 H×W×3) and a format description."""
    assert spec.path is not None
    path, names = spec.path, BENCHMARK_DIRS[spec.kind]
    if path.is_dir():
        files = _image_files(path)
        if not files:
            subdirs = [p for p in path.rglob("*") if p.is_dir() and p.name.lower() in names]
            files = _image_files(sorted(subdirs)[0]) if subdirs else []
        if not files:
            raise DataError(
                f"{spec.kind}:{path} holds no images (.png, .bmp, .jpg) nor a "
                f"{'/'.join(names)} folder of them: {WHERE_TO_GET[spec.kind]}"
            )
        blobs = {file.name: file.read_bytes() for file in files}
        fmt = "folder"
    elif tarfile.is_tarfile(path):
        blobs, fmt = _tar_images(spec, names), "tarball"
    else:
        raise DataError(
            f"{spec.kind}:{path} is neither a folder nor a tar archive: {WHERE_TO_GET[spec.kind]}"
        )
    return [
        (name, _decode(blob, f"{spec.kind}:{path}", name)) for name, blob in sorted(blobs.items())
    ], fmt


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_EXT)


def _tar_images(spec: DataSpec, names: tuple[str, ...]) -> dict[str, bytes]:
    ext = "|".join(e.lstrip(".") for e in _IMAGE_EXT)
    pattern = re.compile(rf"(?:^|/)(?:{'|'.join(names)})/([^/]+\.(?:{ext}))$", re.IGNORECASE)
    blobs: dict[str, bytes] = {}
    tops: set[str] = set()
    try:
        with tarfile.open(spec.path) as archive:  # type: ignore[arg-type]
            for member in archive:
                tops.add(member.name.split("/", 1)[0])
                match = pattern.search(member.name)
                if member.isfile() and match:
                    blobs[match.group(1)] = archive.extractfile(member).read()  # type: ignore[union-attr]
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{spec}: cannot read the tar archive ({exc}); get it again") from exc
    if not blobs:
        raise DataError(
            f"{spec}: the tarball has no {'/'.join(names)} folder of images (it holds "
            f"{', '.join(sorted(tops)[:8]) or 'nothing'}): {WHERE_TO_GET[spec.kind]}"
        )
    return blobs


def _decode(blob: bytes, where: str, name: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(blob)) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{where}: cannot decode image {name}: {exc}") from exc


def grid_patches(images: list[tuple[str, np.ndarray]], size: int) -> np.ndarray:
    """Non-overlapping ``size``×``size`` patches from the top-left of each image, row-major,
    image by image (the right and bottom remainders are dropped): uint8 N×3×S×S."""
    patches = [
        image[y : y + size, x : x + size].transpose(2, 0, 1)
        for _, image in images
        for y in range(0, image.shape[0] - size + 1, size)
        for x in range(0, image.shape[1] - size + 1, size)
    ]
    if not patches:
        return np.empty((0, 3, size, size), dtype=np.uint8)
    return np.stack(patches)


# --- degradations -------------------------------------------------------------------------------


def to_float(patches: np.ndarray) -> torch.Tensor:
    import torch

    return torch.from_numpy(np.ascontiguousarray(patches)).float().div_(255.0)


def add_noise(clean: torch.Tensor, sigma: float, gen: np.random.Generator) -> torch.Tensor:
    """``clip(clean + N(0, (σ/255)²), 0, 1)`` with noise drawn from ``gen``."""
    import torch

    noise = gen.standard_normal(tuple(clean.shape), dtype=np.float32)
    return (clean + torch.from_numpy(noise) * (sigma / 255.0)).clamp_(0.0, 1.0)


def downsample(hr: torch.Tensor, scale: int, chunk: int = 1024) -> torch.Tensor:
    """Bicubic, antialiased ×1/scale (like MATLAB's ``imresize``), clipped to [0, 1]."""
    import torch
    import torch.nn.functional as F

    n, c, h, w = hr.shape
    out = torch.empty((n, c, h // scale, w // scale), dtype=torch.float32)
    for start in range(0, n, chunk):
        out[start : start + chunk] = F.interpolate(
            hr[start : start + chunk],
            size=(h // scale, w // scale),
            mode="bicubic",
            antialias=True,
            align_corners=False,
        ).clamp_(0.0, 1.0)
    return out
