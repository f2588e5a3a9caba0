"""Task metrics: top-1 accuracy (classification) and PSNR in dB (denoising, super-resolution)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas.core.errors import DataError
from nas.data.sources import check_task

if TYPE_CHECKING:
    import torch

PSNR_MAX_DB = 100.0  # an exact reconstruction scores this instead of infinity


def top1(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows of ``logits`` (N×C) whose arg-max is ``labels`` (N), in [0, 1]."""
    if logits.ndim != 2 or labels.ndim != 1 or logits.shape[0] != labels.shape[0]:
        raise DataError(
            f"top1 needs N×C logits and N labels, got {tuple(logits.shape)} and "
            f"{tuple(labels.shape)}"
        )
    if labels.numel() == 0:
        raise DataError("top1 of an empty batch is undefined: pass at least one example")
    return float((logits.argmax(dim=1) == labels.to(logits.device)).double().mean())


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> float:
    """Mean over images of ``10·log10(data_range² / MSE)`` in dB (N×C×H×W, or one C×H×W).

    The MSE is taken over each whole image (all channels); an exact match counts as
    :data:`PSNR_MAX_DB` so one perfect image does not make the mean infinite.
    """
    return float(psnr_values(pred, target, data_range).mean())


def psnr_values(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """The PSNR in dB of every image (float64, N), as :func:`psnr` averages them."""
    if pred.shape != target.shape or pred.ndim not in (3, 4):
        raise DataError(
            f"psnr needs two N×C×H×W (or C×H×W) tensors of one shape, got {tuple(pred.shape)} "
            f"and {tuple(target.shape)}"
        )
    if pred.numel() == 0:
        raise DataError("psnr of an empty batch is undefined: pass at least one image")
    if data_range <= 0:
        raise DataError(f"psnr data_range must be positive, got {data_range}")
    if pred.ndim == 3:
        pred, target = pred[None], target[None]
    import torch

    dtype = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
    diff = pred.to(dtype) - target.to(dtype).to(pred.device)
    mse = diff.square().flatten(1).mean(dim=1, dtype=torch.float64)
    floor = data_range**2 * 10 ** (-PSNR_MAX_DB / 10)
    return 10.0 * (data_range**2 / mse.clamp(min=floor)).log10()


def task_metric(task: str) -> tuple[str, bool]:
    """The task's validation metric and whether higher is better."""
    return ("top1", True) if check_task(task) == "classification" else ("psnr_db", True)
