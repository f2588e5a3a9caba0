"""Where training runs: a :class:`TrainDevice` (CPU or one CUDA GPU) and its precision.

``--train-device auto|cpu|cuda|cuda:N`` (``auto``: the first CUDA GPU when torch sees one,
else the CPU) and ``--precision 32|bf16`` (bf16: autocast to bfloat16 on CUDA; float32
weights and optimizer state either way) are parsed by :func:`resolve_train_device`, the one
place a device is chosen. On the CPU at precision 32 nothing moves and nothing is cast, so a
CPU run gives the figures it gave before devices existed.

torch is imported inside the functions.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nas.core.errors import TrainDeviceError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("32", "bf16")
DEFAULT_TRAIN_DEVICE = "auto"
DEFAULT_PRECISION = "32"


def check_train_device(text: str, precision: str = DEFAULT_PRECISION) -> tuple[str, str]:
    """``(device, precision)`` normalised, or :class:`TrainDeviceError` for a malformed one
    (no torch: the CLIs check before any work)."""
    t = str(text).strip().lower()
    ok = t in ("auto", "cpu", "cuda") or (t.startswith("cuda:") and t[5:].isdigit() and len(t) > 5)
    if not ok:
        raise TrainDeviceError(
            f"unknown training device {text!r}: use auto, cpu, cuda or cuda:N (N = GPU index)"
        )
    p = str(precision).strip().lower().removeprefix("fp")
    if p not in PRECISIONS:
        raise TrainDeviceError(
            f"unknown precision {precision!r}: use 32 (float32) or bf16 (bfloat16 autocast)"
        )
    return t, p


@dataclass(frozen=True)
class TrainDevice:
    """A device to train on (``"cpu"`` or ``"cuda:N"``) and the precision of its forward
    passes (``"32"``, or ``"bf16"``: autocast to bfloat16)."""

    name: str = "cpu"
    precision: str = DEFAULT_PRECISION

    @property
    def type(self) -> str:
        return self.name.split(":", 1)[0]

    @property
    def is_cpu(self) -> bool:
        return self.type == "cpu"

    def torch_device(self) -> torch.device:
        import torch

        return torch.device(self.name)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The forward passes' context: bfloat16 autocast for ``bf16``, else nothing."""
        if self.precision != "bf16":
            return contextlib.nullcontext()
        import torch

        return torch.autocast(device_type=self.type, dtype=torch.bfloat16)

    def put(self, x: Any) -> Any:
        """``x`` (a tensor, or a tuple/list of tensors) on this device: unchanged on the CPU;
        on a GPU copied without blocking, 4-D images channels-last."""
        if self.is_cpu:
            return x
        if isinstance(x, (tuple, list)):
            return type(x)(self.put(t) for t in x)
        import torch

        if not isinstance(x, torch.Tensor):
            return x
        if x.ndim == 4 and x.is_floating_point():
            return x.to(self.name, non_blocking=True, memory_format=torch.channels_last)
        return x.to(self.name, non_blocking=True)

    def describe(self) -> dict[str, Any]:
        """JSON-able: the device, its precision and (CUDA) the GPU's name."""
        out: dict[str, Any] = {"device": self.name, "precision": self.precision}
        if not self.is_cpu:
            import torch

            out["gpu"] = torch.cuda.get_device_name(self.torch_device())
        return out


CPU = TrainDevice()


def resolve_train_device(
    text: str = DEFAULT_TRAIN_DEVICE, precision: str = DEFAULT_PRECISION
) -> TrainDevice:
    """The :class:`TrainDevice` that ``text`` names here. ``cuda``/``cuda:N`` on a machine
    where torch sees no such GPU raises :class:`TrainDeviceError` naming what torch sees."""
    t, p = check_train_device(text, precision)
    import torch

    available = torch.cuda.is_available()
    count = torch.cuda.device_count() if available else 0
    if t == "auto":
        t = "cuda:0" if count else "cpu"
    elif t == "cuda":
        t = "cuda:0"
    if t.startswith("cuda"):
        if not count:
            why = (
                "this torch is a CPU build"
                if torch.version.cuda is None
                else f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU"
            )
            raise TrainDeviceError(
                f"--train-device {text} asks for a CUDA GPU but {why}; use --train-device cpu "
                "(or auto, which falls back to the CPU)"
            )
        index = int(t.split(":")[1])
        if index >= count:
            raise TrainDeviceError(
                f"--train-device {text}: this machine has {count} CUDA GPU(s) (cuda:0.."
                f"cuda:{count - 1}); pick one of them"
            )
    return TrainDevice(t, p)
