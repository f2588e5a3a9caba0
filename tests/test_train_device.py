"""Training devices and precision (--train-device, --precision) and the batch sources every
trainer reads: parsing, refusals, CPU bf16, determinism, and a CUDA run where a GPU exists."""

from __future__ import annotations

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from nas.core.errors import TrainDeviceError  # noqa: E402
from nas.core.spaces import get_space  # noqa: E402
from nas.data import load_task_data  # noqa: E402
from nas.training.device import CPU, TrainDevice, check_train_device, resolve_train_device  # noqa: E402
from nas.training.mothernet import MothernetConfig, build_mothernet, train_mothernet  # noqa: E402

HAS_CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def digits():
    return load_task_data("classification", resolution=16, train_limit=128, val_limit=64)


def test_check_train_device_normalises_and_refuses():
    assert check_train_device(" CUDA:1 ", "fp32") == ("cuda:1", "32")
    assert check_train_device("auto", "bf16") == ("auto", "bf16")
    for bad in ("gpu", "cuda:", "cuda:x", "tpu:0", ""):
        with pytest.raises(TrainDeviceError, match="auto, cpu, cuda or cuda:N"):
            check_train_device(bad)
    with pytest.raises(TrainDeviceError, match=r"use 32 .* or bf16"):
        check_train_device("cpu", "fp16")


def test_auto_is_cpu_without_a_gpu_and_cuda_is_refused():
    dev = resolve_train_device("auto")
    assert dev.name == ("cuda:0" if HAS_CUDA else "cpu")
    if HAS_CUDA:
        n = torch.cuda.device_count()
        with pytest.raises(TrainDeviceError, match=f"has {n} CUDA GPU"):
            resolve_train_device(f"cuda:{n}")
    else:
        with pytest.raises(TrainDeviceError, match="--train-device cpu"):
            resolve_train_device("cuda")


def test_cpu_device_leaves_tensors_alone():
    x = torch.zeros(2, 3, 4, 4)
    assert CPU.put(x) is x
    assert CPU.put((x, x))[0] is x
    assert CPU.describe() == {"device": "cpu", "precision": "32"}


def test_cpu_precision_32_is_the_default_and_deterministic(digits):
    space = get_space("quick", 16)

    def run(**kw):
        net = build_mothernet(MothernetConfig.default(space, seed=1))
        return train_mothernet(net, digits, epochs=1, batch_size=32, seed=4, progress=False, **kw)

    a, b = run(), run(device=TrainDevice("cpu", "32"))
    assert a["value"] == b["value"] and a["train_loss_last"] == b["train_loss_last"]
    assert "train_device" not in a  # a CPU run records what it recorded before devices


def test_cpu_bf16_autocast_trains(digits):
    space = get_space("quick", 16)
    net = build_mothernet(MothernetConfig.default(space, seed=1))
    m = train_mothernet(
        net, digits, epochs=1, batch_size=32, seed=4, progress=False,
        device=TrainDevice("cpu", "bf16"),
    )  # fmt: skip
    assert 0.0 <= m["value"] <= 1.0
    assert m["train_loss_first"] == m["train_loss_first"]  # finite, not NaN
    assert all(p.dtype == torch.float32 for p in net.parameters())  # weights stay float32


def test_train_batches_reproducible_and_image_flips_move_targets():
    data = load_task_data("denoising", resolution=16, train_limit=40, val_limit=8)
    src = data.train_batches(8, augment=True)

    def first_pass(seed):
        return [
            (x.clone(), y.clone()) for x, y in next(src.passes(torch.Generator().manual_seed(seed)))
        ]

    a, b, c = first_pass(3), first_pass(3), first_pass(4)
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))
    assert not all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, c))
    # the first batch draws the same permutation with and without flips: every augmented
    # pair is the plain pair, or the plain pair with input AND target flipped
    (xa, ya), (xp, yp) = a[0], next(iter(first_pass_plain(data, 3)))
    flipped = 0
    for i in range(len(xa)):
        same = torch.equal(xa[i], xp[i]) and torch.equal(ya[i], yp[i])
        both = torch.equal(xa[i], xp[i].flip(2)) and torch.equal(ya[i], yp[i].flip(2))
        assert same or both
        flipped += both and not same
    assert 0 < flipped < len(xa)
    limited = list(data.val_batches(3, limit=5, limit_seed=1))
    assert sum(len(xb) for xb, _ in limited) == 5


def first_pass_plain(data, seed):
    src = data.train_batches(8, augment=False)
    return next(src.passes(torch.Generator().manual_seed(seed)))


def test_cli_refuses_a_missing_gpu_before_any_work(tmp_path):
    if HAS_CUDA:
        pytest.skip("this machine has a GPU")
    out = tmp_path / "m.pt"
    proc = subprocess.run(
        [sys.executable, "-m", "nas.cli.donna", "train-mothernet", "--train-device", "cuda",
         "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "CUDA GPU" in lines[0] and "--train-device cpu" in lines[0]
    assert not out.exists()


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="torch sees no CUDA GPU")
def test_cuda_bf16_mothernet(digits):
    space = get_space("quick", 16)
    net = build_mothernet(MothernetConfig.default(space, seed=1))
    dev = resolve_train_device("cuda", "bf16")
    m = train_mothernet(net, digits, epochs=1, batch_size=32, seed=4, progress=False, device=dev)
    assert 0.0 <= m["value"] <= 1.0
    assert m["train_device"]["device"] == "cuda:0"
    assert next(net.parameters()).device.type == "cuda"
