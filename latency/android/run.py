"""What ``latency-profile`` does with phones: profile several in parallel (one worker per
phone, one LUT each) and measure whole models end to end (hardware in the loop).

Kept apart from :mod:`latency.cli` (option parsing) and from :mod:`latency.profiler` (the
device-independent profiling loop), which both stay as they are for the host.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latency.errors import DeviceError
from nas.core.errors import DonnaError

__all__ = ["DeviceRun", "ModelTiming", "lut_path", "measure_end_to_end", "profile_in_parallel"]


def safe_name(device: str) -> str:
    """A device name usable in a file name (``127.0.0.1:5555`` -> ``127.0.0.1_5555``)."""
    return re.sub(r"[^\w.-]", "_", device)


def lut_path(out: Path | None, default: Path, device: str, several: bool) -> Path:
    """The LUT of ``device``: ``out`` (``{device}`` in it is replaced by the serial; with
    several devices and no ``{device}``, ``-SERIAL`` is added before the suffix)."""
    if out is None:
        return default
    text = str(out)
    if "{device}" in text:
        return Path(text.replace("{device}", safe_name(device)))
    if several:
        return out.with_name(f"{out.stem}-{safe_name(device)}{out.suffix}")
    return out


@dataclass
class DeviceRun:
    device: str
    out: Path
    summary: str = ""
    error: DonnaError | None = None


def profile_in_parallel(
    jobs: Sequence[tuple[str, Path]],
    work: Callable[[str, Path], str],
) -> list[DeviceRun]:
    """Run ``work(device, out)`` for every job, one thread per device (phones are I/O bound:
    the host only waits). A device's failure never stops the others; each is reported."""
    runs = [DeviceRun(device, out) for device, out in jobs]

    def run(r: DeviceRun) -> None:
        try:
            r.summary = work(r.device, r.out)
        except DonnaError as exc:
            r.error = exc

    threads = [
        threading.Thread(target=run, args=(r,), name=f"profile-{r.device}", daemon=True)
        for r in runs
    ]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.5)  # short joins keep Ctrl-C responsive
    return runs


@dataclass(frozen=True)
class ModelTiming:
    label: str
    measured_us: float
    lut_us: float | None
    stable: bool
    throttled: bool

    @property
    def ratio(self) -> float | None:
        return self.lut_us / self.measured_us if self.lut_us else None


def parse_model_arg(text: str, space: Any) -> tuple[str, Any]:
    """``FILE.tflite`` -> ("file", Path); ``ARCH.json`` (a list of block specs, as
    ``Architecture.to_list()`` writes) or a genome ``i,j,k,...`` of ``space`` ->
    ("arch", Architecture)."""
    from nas.core.specs import Architecture

    path = Path(text).expanduser()
    if path.suffix == ".tflite":
        if not path.is_file():
            raise DeviceError(f"--model {text}: no such .tflite file")
        return "file", path
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DeviceError(f"--model {text}: cannot read the architecture ({exc})") from None
        blocks = data.get("blocks") if isinstance(data, dict) else data
        return "arch", Architecture.from_list(blocks)
    if re.fullmatch(r"\d+(,\d+)*", text):
        return "arch", space.decode([int(x) for x in text.split(",")])
    raise DeviceError(
        f"--model {text!r} is neither a .tflite file, an architecture .json (list of block "
        "specs) nor a genome of the space (comma-separated option indices, e.g. 0,3,5)"
    )


def measure_end_to_end(
    device: Any,
    models: Sequence[str],
    space: Any,
    convert_config: Any,
    table: Any | None,
) -> list[ModelTiming]:
    """Convert (architectures) and time whole models on ``device``, on the drift scale of
    ``table`` when given; architectures also get their LUT estimate when every block is in it.
    """
    from latency.convert import convert_many
    from latency.host import REFERENCE_SPEC

    parsed = [(text, *parse_model_arg(text, space)) for text in models]
    archs = [item for _, kind, item in parsed if kind == "arch"]
    done, failed = convert_many([REFERENCE_SPEC, *archs], convert_config, 1)
    if failed:
        raise next(iter(failed.values()))
    paths = [(i, item if kind == "file" else done[item].path)
             for i, (_, kind, item) in enumerate(parsed)]
    baseline = None
    if table is not None:
        baseline = (table.provenance.get("reference") or {}).get("median_us")
    res = device.measure(paths, done[REFERENCE_SPEC].path, baseline)
    rows = []
    for i, (text, kind, item) in enumerate(parsed):
        m = res[i]
        lut = None
        if table is not None and kind == "arch" and not table.missing(item.blocks):
            lut = table.lookup(item)
        rows.append(ModelTiming(text, m.warm.median_us, lut, m.stable,
                                bool(getattr(m, "throttled", False))))
    return rows
