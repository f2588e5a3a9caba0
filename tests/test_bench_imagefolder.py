"""bench/imagefolder_memory.py at toy size: its folder builder and its process-tree memory
poller (the benchmark itself, ``donna bkd`` on 2k and 20k images, is run by hand)."""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def _tarball(path: Path) -> Path:
    """A CIFAR-10-like JPEG tarball: train|test/<class>/NNNN.jpg, 32×32, 3 classes."""
    rng = np.random.default_rng(0)
    with tarfile.open(path, "w:gz") as tar:
        for split, n in (("train", 6), ("test", 3)):
            for cls in ("bird", "cat", "dog"):
                for i in range(n):
                    buf = io.BytesIO()
                    pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                    Image.fromarray(pixels).save(buf, format="JPEG")
                    info = tarfile.TarInfo(f"cifar/{split}/{cls}/{i:04d}.jpg")
                    info.size = len(buf.getvalue())
                    tar.addfile(info, io.BytesIO(buf.getvalue()))
    return path


def test_folder_builder(tmp_path: Path, bench_script) -> None:
    bench = bench_script("imagefolder_memory")
    tar = _tarball(tmp_path / "cifar.tar.gz")
    out = bench.build_folder(tar, tmp_path / "f", n_train=7, n_val=3, px=48)
    train = sorted(p.relative_to(out / "train").as_posix() for p in (out / "train").rglob("*.jpg"))
    assert train == ["bird/0000.jpg", "bird/0001.jpg", "bird/0002.jpg", "cat/0000.jpg",
                     "cat/0001.jpg", "dog/0000.jpg", "dog/0001.jpg"]  # fmt: skip
    assert len(list((out / "val").rglob("*.jpg"))) == 3
    with Image.open(out / "train" / "cat" / "0001.jpg") as img:
        assert img.size == (48, 48) and img.format == "JPEG"
    stamp = (out / "train" / "cat" / "0001.jpg").stat().st_mtime_ns
    bench.build_folder(tar, out, n_train=7, n_val=3, px=48)  # cached: not rebuilt
    assert (out / "train" / "cat" / "0001.jpg").stat().st_mtime_ns == stamp
    bench.build_folder(tar, out, n_train=3, n_val=3, px=40)  # other settings: rebuilt
    assert len(list((out / "train").rglob("*.jpg"))) == 3
    from nas.data.imagefolder import load_imagefolder

    data = load_imagefolder(out, resolution=32)
    assert (data.n_train, data.n_val, data.num_classes) == (3, 3, 3)


def test_tree_memory_poller_counts_children(bench_script) -> None:
    bench = bench_script("imagefolder_memory")
    child = "import time; x = b'x' * (150 * 2**20); time.sleep(1.5)"
    parent = (
        "import subprocess, sys; y = b'y' * (60 * 2**20); "
        f"subprocess.run([sys.executable, '-c', {child!r}], check=True)"
    )
    res = bench.run_measured([sys.executable, "-c", parent], interval=0.1)
    assert res["rc"] == 0 and res["samples"] >= 3
    assert res["peak_processes"] >= 2
    assert res["peak_rss_mb"] >= 200  # both processes' buffers, summed over the tree
    assert 60 <= res["peak_main_rss_mb"] < 150  # the parent alone
    assert res["peak_pss_mb"] is None or res["peak_pss_mb"] >= 200
