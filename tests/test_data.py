"""Tasks and data (nas/data): real readers on real (or tiny real-format) files, no mocks."""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import pickle
import shutil
import socket
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nas.data import (
    TASKS,
    DataError,
    DataSpec,
    load_task_data,
    parse_data_spec,
    psnr,
    task_metric,
    top1,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CIFAR_JPG = SHARED / "cifar10-jpg.tar.gz"
BENCHMARKS = SHARED / "denoise-sr-benchmarks.tar.gz"
FASHION = Path("/usr/share/datasets/fashion-mnist")


def same(a, b) -> bool:
    return all(
        torch.equal(getattr(a, f), getattr(b, f)) for f in ("train_x", "train_y", "val_x", "val_y")
    )


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("data loading tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# --- built-in MNIST -------------------------------------------------------------------------------


def test_builtin_mnist_shapes_ranges_and_split(no_network) -> None:
    data = load_task_data("classification")
    assert data.train_x.shape == (4000, 3, 32, 32) and data.val_x.shape == (1000, 3, 32, 32)
    assert data.train_x.dtype == torch.float32 and data.train_y.dtype == torch.int64
    assert 0.0 <= float(data.train_x.min()) and float(data.train_x.max()) <= 1.0
    assert data.num_classes == 10 and data.task == "classification"
    assert torch.bincount(data.val_y).tolist() == [100] * 10  # class-balanced val
    assert torch.equal(data.train_x[:, 0], data.train_x[:, 2])  # greyscale repeated
    assert float(data.train_x[:, :, :2].abs().max()) == 0.0  # 28 -> 32 zero padding
    train_rows = {row.numpy().tobytes() for row in (data.train_x[:, 0] * 255).round().byte()}
    val_rows = {row.numpy().tobytes() for row in (data.val_x[:, 0] * 255).round().byte()}
    assert not train_rows & val_rows  # the split does not leak
    described = data.describe()
    json.dumps(described)
    assert described["train"] == 4000 and described["seed"] == 0 and "mnist" in described["source"]


def test_builtin_mnist_is_deterministic_and_limited() -> None:
    a = load_task_data("classification", "mnist", seed=3, train_limit=200, val_limit=50)
    b = load_task_data("classification", "builtin", seed=3, train_limit=200, val_limit=50)
    c = load_task_data("classification", None, seed=4, train_limit=200, val_limit=50)
    assert same(a, b) and not same(a, c)
    assert torch.bincount(a.train_y).tolist() == [20] * 10
    assert a.val_x.shape[0] == 50
    assert load_task_data("classification", resolution=28, train_limit=10).train_x.shape[-1] == 28
    big = load_task_data("classification", resolution=48, train_limit=10, val_limit=10)
    assert big.train_x.shape == (10, 3, 48, 48) and float(big.train_x.max()) <= 1.0


# --- CIFAR-10 -------------------------------------------------------------------------------------


def _jpeg(color: tuple[int, int, int], size: int = 32) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


COLORS = {"airplane": (250, 10, 10), "cat": (10, 10, 250), "truck": (10, 250, 10)}


def _jpg_tree(root: Path, classes=COLORS, n_train: int = 6, n_test: int = 3) -> Path:
    for split, n in (("train", n_train), ("test", n_test)):
        for cls, color in classes.items():
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                (root / split / cls / f"{i:04d}.jpg").write_bytes(_jpeg(color))
    return root


def _tar(source: Path, target: Path, arcname: str) -> Path:
    with tarfile.open(target, "w:gz") as archive:
        archive.add(source, arcname=arcname)
    return target


def test_cifar_jpg_tarball_and_folder_fake(tmp_path: Path, monkeypatch) -> None:
    tree = _jpg_tree(tmp_path / "CIFAR-10-images")
    tarball = _tar(tree, tmp_path / "cifar.tar.gz", "CIFAR-10-images")
    kwargs = dict(seed=1, train_limit=12, cache_dir=tmp_path / "cache")
    from_tar = load_task_data("classification", f"cifar10:{tarball}", **kwargs)
    from_dir = load_task_data("classification", f"cifar10:{tree}", **kwargs)
    assert same(from_tar, from_dir)
    assert "jpg tarball" in from_tar.source and "jpg folder" in from_dir.source
    assert from_tar.num_classes == 10  # CIFAR class names keep CIFAR's label numbers
    assert sorted(torch.bincount(from_tar.train_y, minlength=10).tolist()) == [0] * 7 + [4] * 3
    assert from_tar.val_x.shape == (9, 3, 32, 32)
    for x, y in zip(from_tar.train_x, from_tar.train_y):  # each image has its class's colour
        name = {0: "airplane", 3: "cat", 9: "truck"}[int(y)]
        assert torch.allclose(x[:, 16, 16] * 255, torch.tensor(COLORS[name]).float(), atol=12)
    # Without a cache the subset is decoded alone; a full decode (cached as .npy) gives the
    # same tensors, and a second load reads the cache.
    import nas.data.cifar as cifar

    monkeypatch.setattr(cifar, "SUBSET_MAX", 0)
    full = load_task_data("classification", f"cifar10:{tarball}", **kwargs)
    assert same(full, from_tar)
    assert len(list((tmp_path / "cache").glob("cifar10-*.npy"))) == 6
    assert same(load_task_data("classification", f"cifar10:{tarball}", **kwargs), from_tar)


def test_cifar_jpg_tree_with_other_class_names(tmp_path: Path) -> None:
    tree = _jpg_tree(tmp_path / "imgs", {"apples": (200, 0, 0), "pears": (0, 200, 0)}, 2, 1)
    data = load_task_data("classification", f"cifar10:{tree}", cache_dir=tmp_path / "c")
    assert data.num_classes == 2 and data.train_x.shape == (4, 3, 32, 32)


def _batch(data: np.ndarray, labels: list[int]) -> bytes:
    # Like the real files: bytes keys, a uint8 N×3072 array, a list of labels.
    return pickle.dumps({b"batch_label": b"x", b"data": data, b"labels": labels}, protocol=2)


def test_cifar_python_batches_folder_and_tarball(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rows = np.zeros((4, 3, 32, 32), dtype=np.uint8)
    rows[:, 0], rows[:, 1], rows[:, 2] = 10, 20, 30  # R, G, B planes
    rows[:, 0, 0, 1] = np.arange(4) * 50  # tells the images apart
    flat = rows.reshape(4, -1)
    (folder / "data_batch_1").write_bytes(_batch(flat[:2], [1, 2]))
    (folder / "data_batch_2").write_bytes(_batch(flat[2:], [3, 4]))
    (folder / "test_batch").write_bytes(_batch(flat[:1], [5]))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a"] * 10}))
    tarball = _tar(folder, tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py")
    results = [
        load_task_data("classification", f"cifar10:{path}", cache_dir=tmp_path / "cache")
        for path in (folder, tmp_path, tarball)
    ]
    assert same(results[0], results[1]) and same(results[0], results[2])
    assert "python tarball" in results[2].source and "python batches" in results[0].source
    data = results[0]
    order = torch.argsort(data.train_y)
    assert data.train_y[order].tolist() == [1, 2, 3, 4] and data.val_y.tolist() == [5]
    pixels = (data.train_x[order] * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(pixels, rows)  # layout (N, 3072) -> N×3×32×32, RGB planes


def test_cifar_python_batch_pickle_cannot_run_code(tmp_path: Path) -> None:
    class Exploit:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    folder = tmp_path / "batches"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": Exploit(), b"labels": [0]}))
    (folder / "test_batch").write_bytes(_batch(np.zeros((1, 3072), np.uint8), [0]))
    with pytest.raises(DataError, match="not a CIFAR-10 python batch"):
        load_task_data("classification", f"cifar10:{folder}", cache_dir=tmp_path / "c")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.skipif(not CIFAR_JPG.is_file(), reason="../shared/data/cifar10-jpg.tar.gz absent")
def test_cifar_real_jpg_tarball_subset(tmp_path: Path) -> None:
    kwargs = dict(train_limit=200, val_limit=100, seed=0, cache_dir=tmp_path / "cache")
    data = load_task_data("classification", f"cifar10:{CIFAR_JPG}", **kwargs)
    assert data.train_x.shape == (200, 3, 32, 32) and data.val_x.shape == (100, 3, 32, 32)
    assert torch.bincount(data.train_y).tolist() == [20] * 10
    assert torch.bincount(data.val_y).tolist() == [10] * 10
    assert 0.2 < float(data.train_x.mean()) < 0.7 and float(data.train_x.std()) > 0.1
    assert "jpg tarball" in data.source and "200 train / 100 val" in data.source
    assert not list((tmp_path / "cache").glob("*.npy"))  # a small subset is not cached


# --- Fashion-MNIST (IDX) --------------------------------------------------------------------------


def _idx(path: Path, array: np.ndarray) -> None:
    blob = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}i", *array.shape
    )
    blob += array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        blob = gzip.compress(blob)
    path.write_bytes(blob)


def _fashion(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir(exist_ok=True)
    gen = np.random.default_rng(0)
    images = gen.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    labels = np.arange(30) % 10
    _idx(folder / "train-images-idx3-ubyte.gz", images[:20])
    _idx(folder / "train-labels-idx1-ubyte.gz", labels[:20])
    _idx(folder / "t10k-images-idx3-ubyte", images[20:])  # uncompressed works too
    _idx(folder / "t10k-labels-idx1-ubyte", labels[20:])
    return images, labels


def test_fashion_mnist_idx_reader(tmp_path: Path) -> None:
    images, labels = _fashion(tmp_path / "fm")
    data = load_task_data("classification", f"fashion-mnist:{tmp_path / 'fm'}", val_limit=10)
    assert data.train_x.shape == (20, 3, 32, 32) and data.val_x.shape == (10, 3, 32, 32)
    assert "IDX" in data.source and data.num_classes == 10
    for x, y in zip(data.train_x, data.train_y):
        pixels = (x[0, 2:30, 2:30] * 255).round().to(torch.uint8).numpy()
        match = [i for i in range(20) if np.array_equal(images[i], pixels)]
        assert len(match) == 1 and labels[match[0]] == int(y)


def test_fashion_mnist_bad_files(tmp_path: Path) -> None:
    from nas.data.classification import read_idx

    _fashion(tmp_path / "fm")
    bad = tmp_path / "fm" / "t10k-labels-idx1-ubyte"
    bad.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x0a\x01\x02")  # says 10 labels, holds 2
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_idx(bad)
    bad.write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(DataError, match="not an IDX file"):
        load_task_data("classification", f"fashion-mnist:{tmp_path / 'fm'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_task_data("classification", f"fashion-mnist:{tmp_path / 'empty'}")


@pytest.mark.skipif(
    not (FASHION / "t10k-labels-idx1-ubyte.gz").is_file(), reason="Debian fashion-mnist absent"
)
def test_fashion_mnist_debian_files() -> None:
    data = load_task_data("classification", "fashion-mnist", train_limit=100, val_limit=50)
    assert data.train_x.shape == (100, 3, 32, 32) and data.val_x.shape == (50, 3, 32, 32)
    assert torch.bincount(data.train_y).tolist() == [10] * 10
    assert str(FASHION) in data.source


# --- denoising and super-resolution ---------------------------------------------------------------


def test_denoising_builtin_photos(no_network) -> None:
    data = load_task_data("denoising", train_limit=400, val_limit=100, seed=0)
    assert data.train_x.shape == data.train_y.shape == (400, 3, 32, 32)
    assert data.val_x.shape == (100, 3, 32, 32) and data.num_classes is None
    assert 0.0 <= float(data.train_x.min()) and float(data.train_x.max()) <= 1.0
    assert 20.3 < psnr(data.train_x, data.train_y) < 21.2  # σ=25, clipped: ≈20.7 dB
    assert 20.3 < psnr(data.val_x, data.val_y) < 21.2
    assert "coffee" in data.source.split("val:")[1] and "coffee" not in data.source.split("val:")[0]
    assert data.describe()["sigma"] == 25.0
    again = load_task_data("denoising", train_limit=400, val_limit=100, seed=0)
    other = load_task_data("denoising", train_limit=400, val_limit=100, seed=1)
    assert same(data, again) and not same(data, other)
    clean = load_task_data("denoising", train_limit=20, val_limit=5, sigma=0.0)
    assert torch.equal(clean.train_x, clean.train_y)
    stronger = load_task_data("denoising", train_limit=100, val_limit=5, sigma=50.0)
    assert psnr(stronger.train_x, stronger.train_y) < 16.0


def test_super_resolution_builtin_photos() -> None:
    data = load_task_data("super_resolution", train_limit=300, val_limit=100)
    assert data.train_x.shape == (300, 3, 32, 32) and data.train_y.shape == (300, 3, 64, 64)
    assert data.val_x.shape == (100, 3, 32, 32) and data.val_y.shape == (100, 3, 64, 64)
    assert data.describe()["scale"] == 2 and data.describe()["target_shape"] == [3, 64, 64]
    nearest = psnr(F.interpolate(data.val_x, scale_factor=2, mode="nearest"), data.val_y)
    bicubic = psnr(
        F.interpolate(data.val_x, scale_factor=2, mode="bicubic").clamp(0, 1), data.val_y
    )
    assert 26.0 < nearest < bicubic < 34.0  # plausible ×2 baselines (≈29 / ≈31 dB)
    # The low-res input is the high-res patch, bicubic-downsampled: close to 2×2 averages.
    assert psnr(data.train_x, F.avg_pool2d(data.train_y, 2)) > 35.0
    x3 = load_task_data("super_resolution", train_limit=10, val_limit=10, scale=3, resolution=16)
    assert x3.train_x.shape == (10, 3, 16, 16) and x3.train_y.shape == (10, 3, 48, 48)


needs_benchmarks = pytest.mark.skipif(
    not BENCHMARKS.is_file(), reason="../shared/data/denoise-sr-benchmarks.tar.gz absent"
)


@needs_benchmarks
def test_cbsd68_denoising_val_from_tarball() -> None:
    data = load_task_data("denoising", f"cbsd68:{BENCHMARKS}", train_limit=50)
    assert data.val_x.shape == (68 * 15 * 10, 3, 32, 32)  # 481×321 -> 15×10 grid patches
    assert 20.3 < psnr(data.val_x, data.val_y) < 21.2
    assert "68 images" in data.source and data.describe()["data"].startswith("cbsd68:")


@needs_benchmarks
def test_set5_set14_super_resolution_tarball_and_folder(tmp_path: Path) -> None:
    set5 = load_task_data("super_resolution", f"set5:{BENCHMARKS}", train_limit=20)
    assert set5.val_y.shape == (127, 3, 64, 64) and set5.val_x.shape == (127, 3, 32, 32)
    with tarfile.open(BENCHMARKS) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith("CSet5/")]
        archive.extractall(tmp_path, members=members, filter="data")
    for path in (tmp_path / "CSet5", tmp_path):
        again = load_task_data("super_resolution", f"set5:{path}", train_limit=20)
        assert torch.equal(again.val_y, set5.val_y) and "folder" in again.source
    set14 = load_task_data("super_resolution", f"set14:{BENCHMARKS}", train_limit=20)
    assert set14.val_x.shape[0] == 676  # 13 images; bridge.png is greyscale -> 3 channels
    limited = load_task_data("super_resolution", f"set14:{BENCHMARKS}", val_limit=64, train_limit=1)
    assert limited.val_x.shape[0] == 64
    assert any(torch.equal(limited.val_y[0], patch) for patch in set14.val_y)
    bicubic = F.interpolate(set14.val_x, scale_factor=2, mode="bicubic").clamp(0, 1)
    assert 27.0 < psnr(bicubic, set14.val_y) < 36.0
    with pytest.raises(DataError, match="no image is at least"):
        load_task_data("super_resolution", f"set5:{BENCHMARKS}", resolution=300, train_limit=1)


# --- metrics --------------------------------------------------------------------------------------


def test_metrics_known_values() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 1.0], [5.0, 0.0, 0.0]])
    assert top1(logits, torch.tensor([0, 1, 2, 1])) == 0.75
    target = torch.full((2, 3, 8, 8), 0.5, dtype=torch.float64)
    assert math.isclose(psnr(target + 0.1, target), 20.0, abs_tol=1e-6)  # MSE 0.01
    assert math.isclose(psnr(target[0] + 0.01, target[0]), 40.0, abs_tol=1e-6)
    mixed = torch.stack([target[0] + 0.1, target[0] + 0.01])
    assert math.isclose(psnr(mixed, target), 30.0, abs_tol=1e-6)  # mean of per-image dB
    assert psnr(target, target) == 100.0  # exact: capped, not infinite
    assert math.isclose(psnr(target * 255 + 25.5, target * 255, data_range=255.0), 20.0)
    assert task_metric("classification") == ("top1", True)
    assert task_metric("denoising") == task_metric("super_resolution") == ("psnr_db", True)
    with pytest.raises(DataError, match="one shape"):
        psnr(target, target[:, :, :4])
    with pytest.raises(DataError, match="N×C logits"):
        top1(logits, torch.tensor([0, 1]))


# --- bad input ------------------------------------------------------------------------------------


def test_unknown_task_and_source() -> None:
    with pytest.raises(DataError, match=r"unknown task 'segmentation'.*classification"):
        load_task_data("segmentation")
    with pytest.raises(DataError, match="unknown task"):
        task_metric("detection")
    with pytest.raises(DataError, match=r"unknown data source 'imagenet'.*cifar10:PATH"):
        parse_data_spec("imagenet:/x", "classification")
    with pytest.raises(DataError, match="'photos' is not for classification"):
        load_task_data("classification", "photos")
    with pytest.raises(DataError, match="is not for denoising"):
        parse_data_spec("cifar10:/x", "denoising")
    assert parse_data_spec(None, "super_resolution") == DataSpec("photos")
    assert set(TASKS) == {"classification", "denoising", "super_resolution"}


@pytest.mark.skipif(
    not FASHION.is_dir(), reason="Debian fashion-mnist absent (apt-get install "
    "dataset-fashion-mnist)"
)
def test_fashion_mnist_default_path() -> None:
    assert parse_data_spec("fashion-mnist", "classification").path == FASHION


def test_missing_paths_say_where_to_get_the_data(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"needs a path.*cifar-10-python.tar.gz"):
        load_task_data("classification", "cifar10")
    with pytest.raises(DataError, match=r"not found at .*nowhere.*cifar-10-python.tar.gz"):
        load_task_data("classification", f"cifar10:{tmp_path / 'nowhere'}")
    with pytest.raises(DataError, match=r"fashion-mnist data not found.*apt-get install"):
        load_task_data("classification", f"fashion-mnist:{tmp_path / 'nope'}")
    with pytest.raises(DataError, match=r"cbsd68 data not found.*CBSD68"):
        load_task_data("denoising", f"cbsd68:{tmp_path / 'CBSD68'}")
    with pytest.raises(DataError, match=r"set14.*needs a path"):
        parse_data_spec("set14", "super_resolution")


def test_wrong_format_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a dataset")
    with pytest.raises(DataError, match="neither a folder nor a tar archive"):
        load_task_data("classification", f"cifar10:{text}", cache_dir=tmp_path / "c")
    unrelated = _tar(text, tmp_path / "other.tar.gz", "docs/notes.txt")
    with pytest.raises(DataError, match=r"holds neither .*python batches"):
        load_task_data("classification", f"cifar10:{unrelated}", cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match="without python batches"):
        load_task_data("classification", f"cifar10:{tmp_path}", cache_dir=tmp_path / "c")
    broken = tmp_path / "broken"
    shutil.copytree(_jpg_tree(tmp_path / "tree", n_train=1, n_test=1), broken)
    (broken / "train" / "cat" / "0000.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"cannot decode image train/cat/0000.jpg"):
        load_task_data("classification", f"cifar10:{broken}", cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match=r"no Set5/CSet5 folder.*docs/notes.txt|no set5/cset5"):
        load_task_data("super_resolution", f"set5:{unrelated}", train_limit=1)
    with pytest.raises(DataError, match="holds no images"):
        load_task_data("denoising", f"cbsd68:{tmp_path / 'tree' / 'test'}", train_limit=1)


def test_bad_arguments() -> None:
    with pytest.raises(DataError, match="train_limit must be a positive integer"):
        load_task_data("classification", train_limit=0)
    with pytest.raises(DataError, match="resolution must be an integer >= 8"):
        load_task_data("denoising", resolution=4)
    with pytest.raises(DataError, match=r"scale .* >= 2"):
        load_task_data("super_resolution", scale=1)
    with pytest.raises(DataError, match="sigma"):
        load_task_data("denoising", sigma=-1.0)
    with pytest.raises(DataError, match="no built-in val photo is at least 800×800"):
        load_task_data("super_resolution", resolution=400, train_limit=1, val_limit=1)


def test_import_is_light() -> None:
    heavy = "{'torch', 'PIL', 'skimage', 'mlxtend'}"
    code = f"import sys, nas.data; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
