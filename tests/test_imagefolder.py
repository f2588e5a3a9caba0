"""``imagefolder:PATH``: an ImageNet-layout folder streamed through DataLoader workers."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nas.core.errors import DataError
from nas.data import load_task_data
from nas.data.imagefolder import FileList, ImageFolderData, load_imagefolder
from nas.data.imagestream import UnreadableImageWarning, decode

CLASSES = ("ant", "bee", "cow")
MODES = ("RGB", "L", "RGBA", "P")  # what the writer cycles through (RGB output from all)


def _image(label: int, i: int, rng: np.random.Generator, mode: str) -> Image.Image:
    """A textured image whose colour names its class: channel ``label`` is the bright one."""
    h, w = 20 + 3 * (i % 5), 24 + 2 * (i % 4)
    a = rng.integers(0, 90, size=(h, w, 3), dtype=np.uint8)
    a[..., label] = rng.integers(170, 256, size=(h, w), dtype=np.uint8)
    img = Image.fromarray(a)
    if mode == "L":  # grey: the class is not visible, but it still decodes to RGB
        return img.convert("L")
    if mode == "P":
        return img.convert("P", palette=Image.Palette.ADAPTIVE)
    return img.convert(mode)


def write_folder(
    root: Path, n_train: int = 8, n_val: int = 3, val: str = "val", grey: bool = False
) -> Path:
    """A tiny ImageFolder: 3 classes, PNG and JPEG files with mixed-case extensions."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), (val, n_val)):
        for label, cls in enumerate(CLASSES):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                mode = MODES[i % len(MODES)] if grey else ("RGBA" if i % 2 else "RGB")
                img = _image(label, i, rng, mode)
                if i % 3 == 0:
                    img = img.convert("L" if img.mode == "L" else "RGB")
                    img.save(folder / f"{i:03d}.{'JPG' if i % 2 else 'jpeg'}", quality=95)
                else:
                    img.save(folder / f"{i:03d}.{'PNG' if i % 4 == 1 else 'png'}")
    return root


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = write_folder(tmp_path / "imgs")
    # ignored: a hidden file, another extension, a nested file
    (root / "train" / "ant" / ".003.png").write_bytes(b"not read")
    (root / "train" / "ant" / "notes.txt").write_text("not an image")
    (root / "train" / "ant" / "sub").mkdir()
    Image.new("RGB", (8, 8)).save(root / "train" / "ant" / "sub" / "nested.png")
    return root


def load(root: Path, **kw) -> ImageFolderData:
    data = load_task_data("classification", f"imagefolder:{root}", resolution=16, **kw)
    assert isinstance(data, ImageFolderData)
    return data


def one_pass(data, seed: int, **kw) -> list[tuple[torch.Tensor, torch.Tensor]]:
    src = data.train_batches(kw.pop("batch_size", 5), **kw)
    return [
        (x.clone(), y.clone()) for x, y in next(src.passes(torch.Generator().manual_seed(seed)))
    ]


def same(a, b) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b)
    )


def class_of(x: torch.Tensor) -> torch.Tensor:
    """The bright channel of each image (its class for colour images)."""
    return x.mean(dim=(2, 3)).argmax(dim=1)


# ---- layout and listing ---------------------------------------------------------------------


def test_counts_classes_describe(folder: Path) -> None:
    data = load(folder, seed=3)
    assert (data.n_train, data.n_val, data.num_classes) == (24, 9, 3)
    assert data.class_names == CLASSES and data.task == "classification"
    assert data.resolution == 16 and data.seed == 3
    assert [data.train_files.name(i) for i in range(8)] == [
        "000.jpeg", "001.PNG", "002.png", "003.JPG", "004.png", "005.PNG", "006.jpeg", "007.png",
    ]  # fmt: skip
    desc = data.describe()
    assert json.loads(json.dumps(desc)) == desc
    assert desc["data"] == f"imagefolder:{folder}" and desc["num_classes"] == 3
    assert (desc["train"], desc["val"], desc["found"]) == (24, 9, {"train": 24, "val": 9})
    assert desc["resolution"] == 16 and desc["seed"] == 3 and desc["val_folder"] == "val"
    assert desc["source"] == data.source and "24 train / 9 val" in data.source
    assert load(folder, seed=3).describe() == desc  # stable
    Image.new("RGB", (8, 8)).save(folder / "val" / "cow" / "zzz.png")
    changed = load(folder, seed=3).describe()
    assert changed["files_sha256"] != desc["files_sha256"] and changed["val"] == 10


def test_test_folder_is_val_and_loads_through_parse(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "cifar-like", val="test")
    data = load(root)
    assert data.n_val == 9 and data.describe()["val_folder"] == "test"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda r: r.mkdir(), "has no train/ folder"),
        (lambda r: (r / "train" / "ant").mkdir(parents=True), "has no val/ folder"),
        (lambda r: [(r / s).mkdir(parents=True) for s in ("train", "val")], "no class folders"),
        (lambda r: r.write_bytes(b"x"), "is a file, not a folder"),
    ],
)
def test_layout_errors(tmp_path: Path, make, message: str) -> None:
    root = tmp_path / "d"
    make(root)
    with pytest.raises(DataError, match=message) as err:
        load_imagefolder(root)
    assert "\n" not in str(err.value)


def test_missing_path_and_no_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"imagefolder data not found at .*ImageNet layout"):
        load(tmp_path / "nowhere")
    with pytest.raises(DataError, match="needs a path"):
        load_task_data("classification", "imagefolder")
    with pytest.raises(DataError, match="does not exist"):
        load_imagefolder(tmp_path / "nowhere")
    with pytest.raises(DataError, match="is not for denoising"):
        load_task_data("denoising", f"imagefolder:{tmp_path}")


def test_content_errors(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "a", n_train=2, n_val=1)
    (root / "val" / "elk").mkdir()
    Image.new("RGB", (8, 8)).save(root / "val" / "elk" / "0.png")
    (root / "val" / "yak").mkdir()
    with pytest.raises(DataError, match=r"only in val/: elk, yak\)"):
        load(root)
    (root / "train" / "yak").mkdir()
    (root / "train" / "elk").mkdir()
    with pytest.raises(DataError, match=r"train/elk/ holds no \.jpg/\.jpeg/\.png images"):
        load(root)
    flat = tmp_path / "flat"
    (flat / "train" / "ant").mkdir(parents=True)
    (flat / "val").mkdir()
    for split in ("train/ant", "val"):
        Image.new("RGB", (8, 8)).save(flat / split / "0.jpg")
    with pytest.raises(DataError, match=r"val/ has no class folders .*holds 1 images.*valprep"):
        load(flat)
    nested = tmp_path / "outer"
    write_folder(nested / "imagenet", n_train=1, n_val=1)
    with pytest.raises(DataError, match=r"found one in imagenet/: pass imagefolder:"):
        load(nested)
    with pytest.raises(DataError, match="resolution must be an integer >= 8"):
        load_imagefolder(root, resolution=4)
    with pytest.raises(DataError, match="resolution must be an integer >= 8"):
        load_task_data("classification", f"imagefolder:{root}", resolution=7)


# ---- batches --------------------------------------------------------------------------------


def test_batches_shapes_labels_and_modes(tmp_path: Path) -> None:
    data = load(write_folder(tmp_path / "g", grey=True))
    batches = one_pass(data, 0, augment=True)
    assert [len(y) for _, y in batches] == [5, 5, 5, 5, 4]
    seen = torch.cat([y for _, y in batches])
    assert sorted(seen.tolist()) == sorted(data.train_files.labels.tolist())
    for x, y in batches:
        assert x.shape[1:] == (3, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.is_contiguous() and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    x, y = torch.cat([b[0] for b in batches]), seen
    colour = x.std(dim=1).mean(dim=(1, 2)) > 0.05  # the grey ("L") images are flat in colour
    assert 0 < int(colour.sum()) < len(x)
    assert torch.equal(class_of(x)[colour], y[colour])  # every colour image is of its class


def test_determinism_across_workers_and_runs(folder: Path) -> None:
    data = load(folder)
    a = one_pass(data, 7, augment=True, workers=0)
    assert same(a, one_pass(data, 7, augment=True, workers=2))
    assert same(a, one_pass(load(folder), 7, augment=True, workers=0))
    b = one_pass(data, 8, augment=True)
    assert not torch.equal(torch.cat([y for _, y in a]), torch.cat([y for _, y in b]))
    # the augmentation differs too, not only the order: compare each file's crops
    src = data.train_batches(24, augment=True)
    x1 = next(next(src.passes(torch.Generator().manual_seed(7))))[0]
    x2 = next(next(src.passes(torch.Generator().manual_seed(8))))[0]
    assert not torch.equal(x1.sort(dim=0).values, x2.sort(dim=0).values)
    # consecutive passes of one generator differ; without augment only the order moves
    passes = data.train_batches(24, augment=False).passes(torch.Generator().manual_seed(7))
    p1, p2 = next(next(passes)), next(next(passes))
    assert not torch.equal(p1[1], p2[1])
    key = lambda x, y: sorted(zip(y.tolist(), x.flatten(1).sum(1).tolist()))  # noqa: E731
    assert key(*p1) == key(*p2)
    # resuming mid-pass: skip=2 starts the first pass at its third batch, the rest unchanged
    src = data.train_batches(5, augment=True, workers=2)
    skipped = [next(src.passes(torch.Generator().manual_seed(7), skip=2))]
    assert same(a[2:], list(skipped[0]))


def test_continuing_stream(folder: Path) -> None:
    data = load(folder)
    src = data.train_batches(10, continuing=True, augment=True)
    assert src.n == 24
    passes = src.passes(torch.Generator().manual_seed(1))
    stream = next(passes)
    batches = [next(stream) for _ in range(6)]  # 3 rounds: 2 full batches from each order
    assert [len(y) for _, y in batches] == [10] * 6
    assert next(passes, None) is None  # one endless pass
    again = next(data.train_batches(10, continuing=True, augment=True, workers=2).passes(
        torch.Generator().manual_seed(1)))  # fmt: skip
    assert same(batches, [next(again) for _ in range(6)])


def test_val_and_calib_are_fixed_centre_crops(folder: Path) -> None:
    data = load(folder)
    val = [(x.clone(), y) for x, y in data.val_batches(4)]
    assert [len(y) for _, y in val] == [4, 4, 1]
    assert same(val, list(data.val_batches(4, workers=2)))
    assert torch.equal(torch.cat([y for _, y in val]), torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2]))
    first = torch.from_numpy(decode(data.val_files.path(0, data.class_names), 16, None))
    assert torch.equal(val[0][0][0], first.permute(2, 0, 1).float() / 255)
    plain = one_pass(data, 3, augment=False, batch_size=24)[0]  # no augment: the centre crops
    crops = torch.cat([b[0] for b in one_pass(data, 4)])
    for x, y in zip(*plain):
        assert any(torch.equal(x, z) for z in crops) and int(class_of(x[None])) == int(y)
    calib = list(data.calib_batches(9, 4))
    assert [len(x) for x in calib] == [4, 4, 1]
    assert all(torch.equal(a, b) for a, b in zip(calib, data.calib_batches(9, 4, workers=2)))
    assert len(set(class_of(torch.cat(calib)).tolist())) == 3  # spread over the classes


def test_limits(folder: Path) -> None:
    data = load(folder, train_limit=9, val_limit=4, seed=2)
    assert (data.n_train, data.n_val) == (9, 4)
    assert np.bincount(data.train_files.labels).tolist() == [3, 3, 3]  # class-balanced
    assert data.describe()["found"] == {"train": 24, "val": 9}
    assert load(folder, train_limit=9, seed=2).train_files.names.tobytes() == (
        data.train_files.names.tobytes()
    )
    other = load(folder, train_limit=9, seed=5)
    assert other.train_files.names.tobytes() != data.train_files.names.tobytes()
    full = load(folder)
    src = full.train_batches(4, limit=7, limit_seed=1)
    got = torch.cat([x for x, _ in next(src.passes(torch.Generator().manual_seed(0)))])
    assert src.n == 7 and len(got) == 7
    again = torch.cat([x for x, _ in next(full.train_batches(7, limit=7, limit_seed=1).passes(
        torch.Generator().manual_seed(5)))])  # fmt: skip
    assert sorted(got.sum(dim=(1, 2, 3)).tolist()) == sorted(again.sum(dim=(1, 2, 3)).tolist())
    assert sum(len(y) for _, y in full.val_batches(2, limit=5, limit_seed=3)) == 5
    with pytest.raises(DataError, match="train_limit must be a positive integer"):
        load_imagefolder(folder, train_limit=0)


# ---- unreadable images ----------------------------------------------------------------------


def corrupt(path: Path, how: str) -> None:
    data = path.read_bytes()
    path.write_bytes({"junk": b"\x00garbage" * 9, "cut": data[: len(data) // 3], "empty": b""}[how])


def test_unreadable_images_are_replaced_and_counted(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "c", n_train=30, n_val=2)
    bad = [next((root / "train" / c).glob(f"{i:03d}.*")) for c, i in zip(CLASSES, (1, 3, 5))]
    for path, how in zip(bad, ("junk", "cut", "empty")):
        corrupt(path, how)
    data = load(root)
    with pytest.warns(UnreadableImageWarning, match=r"unreadable image files so far \(\d of"):
        batches = one_pass(data, 0, augment=True, batch_size=30, workers=2)
    assert [len(y) for _, y in batches] == [30, 30, 30]  # every bad file was replaced
    x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    assert torch.equal(class_of(x), y)  # ... by an image of its own class
    summary = data.unreadable.summary()
    assert summary["files"] == 3 and summary["failures"] == 3 and summary["reads"] == 93
    assert summary["examples"] == [f"train/{p.parent.name}/{p.name}" for p in bad]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per data set
        one_pass(data, 1, batch_size=30)
    assert data.unreadable.summary()["failures"] == 6


def test_too_many_unreadable_images_raise(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "d", n_train=12, n_val=2)
    for i in range(0, 12, 3):  # a third of every class
        for cls in CLASSES:
            corrupt(next((root / "train" / cls).glob(f"{i:03d}.*")), "junk")
    data = load(root)
    passes = data.train_batches(6).passes(torch.Generator().manual_seed(0))
    with pytest.raises(DataError, match=r"of \d+ image reads failed \(more than 5%") as err:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnreadableImageWarning)
            for _ in range(10):
                for _ in next(passes):
                    pass
    assert "\n" not in str(err.value)
    for path in (root / "val" / "ant").iterdir():
        corrupt(path, "cut")
    with pytest.raises(DataError, match=r"no image of a batch could be read.*val/ant/000"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnreadableImageWarning)
            list(load(root).val_batches(2))


# ---- end to end and memory ------------------------------------------------------------------


def test_train_mothernet_end_to_end(folder: Path) -> None:
    from nas.core.spaces import quick_space
    from nas.training.mothernet import MothernetConfig, build_mothernet, evaluate, train_mothernet

    data = load_task_data("classification", f"imagefolder:{folder}", resolution=32, seed=0)
    net = build_mothernet(MothernetConfig.default(quick_space(resolution=32, num_classes=3)))
    metrics = train_mothernet(net, data, epochs=1, batch_size=8, progress=False, data_workers=2)
    assert metrics["steps"] == 3 and 0.0 <= metrics["value"] <= 1.0
    assert evaluate(net, data, batch_size=4) == pytest.approx(metrics["value"])


def test_memory_holds_file_lists_only(folder: Path) -> None:
    data = load(folder)
    decoded = (data.n_train + data.n_val) * 3 * 16 * 16  # bytes of uint8 decoded images
    size = len(pickle.dumps(data))
    assert size < 3000 and size < decoded / 3
    # ImageNet-sized lists: 1.28M names of 28 characters cost about 44 bytes a file
    n = 1_281_167
    names = np.full(28 * n, ord("x"), dtype=np.uint8)
    files = FileList("/x", names, np.arange(n + 1, dtype=np.int64) * 28,
                     np.repeat(np.arange(1000, dtype=np.int32), n // 1000 + 1)[:n])  # fmt: skip
    assert files.nbytes / n < 45
    sub = files.take(np.arange(0, n, 1000))
    assert len(sub) == 1282 and sub.name(5) == "x" * 28 and sub.class_range(0) == (0, 2)


def test_workers_end_with_their_parent(folder: Path, tmp_path: Path) -> None:
    """A parent killed with SIGKILL mid-pass leaves no DataLoader worker behind (well before
    the DataLoader's own 5-second watchdog would notice)."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    script = tmp_path / "parent.py"
    started = tmp_path / "started"
    script.write_text(
        "import sys, time\nimport torch\nfrom pathlib import Path\n"
        "from nas.data.imagefolder import load_imagefolder\n"
        "data = load_imagefolder(sys.argv[1], resolution=16)\n"
        "src = data.train_batches(4, workers=2)\n"
        "batches = next(src.passes(torch.Generator().manual_seed(0)))\n"
        "next(batches)\nPath(sys.argv[2]).touch()\ntime.sleep(600)\n"
    )
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, str(script), str(folder), str(started)], cwd=root)
    try:
        deadline = time.monotonic() + 120
        while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), "the parent did not get a batch"
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 2
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        gone = psutil.wait_procs(children, timeout=2.5)[1]
        for p in gone:
            p.kill()
        assert not gone, [p.pid for p in gone]
    finally:
        if proc.poll() is None:
            proc.kill()
