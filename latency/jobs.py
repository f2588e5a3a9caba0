"""What ``latency-profile`` does, as library functions: profile a space's blocks on one or
several devices (one LUT each; phones in parallel, one thread per phone) and time whole models
end to end against a LUT (hardware in the loop). Device-independent: the host and phones go
through :func:`latency.devices.open_device`."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latency.context import CALIBRATION_NETS, check_calibrate_nets
from latency.convert import ConvertConfig
from latency.devices import safe_name
from latency.errors import DeviceError
from latency.host import MeasureConfig
from nas.core.errors import DonnaError
from nas.core.spaces import SearchSpace

Echo = Callable[[str], None]


@dataclass(frozen=True)
class ProfileJob:
    """Profile every block of ``space`` on each of ``devices`` into its LUT.

    ``out``: the LUT file (``{device}`` in it is replaced by the serial; with several devices
    and no ``{device}``, the serial is added before the suffix); ``None`` gives
    ``lut/DEVICE-SPACE[-rRES][-tTHREADS].json``. ``calibrate_nets``: whole networks the
    context model is fitted on once the LUT holds the whole space (0: not calibrated)."""

    space: SearchSpace
    devices: tuple[str, ...]
    measure: MeasureConfig
    adb: Any
    convert: ConvertConfig
    out: Path | None = None
    resolution: int | None = None  # as asked (names the default LUT)
    workers: int | None = None
    limit: int | None = None
    resume: bool = True
    calibrate_nets: int = CALIBRATION_NETS

    def __post_init__(self) -> None:  # refused before anything is measured
        check_calibrate_nets(self.calibrate_nets)


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
    from nas.core.errors import SpecError
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
        try:
            if isinstance(data, dict) and "stem" in data:  # Architecture.to_dict()
                return "arch", Architecture.from_dict(data)
            blocks = data["blocks"] if isinstance(data, dict) and "blocks" in data else data
            return "arch", Architecture.from_list(blocks)
        except SpecError as exc:
            raise SpecError(f"--model {text}: {exc}") from None
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
    from latency.profiler import whole_net_reference

    parsed = [(text, *parse_model_arg(text, space)) for text in models]
    archs = [item for _, kind, item in parsed if kind == "arch"]
    ref_model, baseline = whole_net_reference(table)
    done, failed = convert_many([ref_model, *archs], convert_config, 1)
    if failed:
        raise next(iter(failed.values()))
    paths = [(i, item if kind == "file" else done[item].path)
             for i, (_, kind, item) in enumerate(parsed)]
    res = device.measure(paths, done[ref_model].path, baseline)
    rows = []
    for i, (text, kind, item) in enumerate(parsed):
        m = res[i]
        lut = None
        if table is not None and kind == "arch" and not table.missing(item.blocks):
            lut = table.lookup(item)
        rows.append(ModelTiming(text, m.warm.median_us, lut, m.stable,
                                bool(getattr(m, "throttled", False))))
    return rows


def resolve_devices(names: Sequence[str]) -> list[str]:
    """Distinct device names, ``adb`` replaced by the one attached phone's serial."""
    from latency.devices import ANY_PHONE

    names = list(dict.fromkeys(names))
    if ANY_PHONE in names:  # the one attached phone, by serial (names its LUT)
        from latency.android.device import select_serial

        names = [select_serial(None) if n == ANY_PHONE else n for n in names]
    return names


def lut_for(job: ProfileJob, device: str, several: bool) -> Path:
    from latency.devices import default_lut_path

    default = default_lut_path(device, job.space.name, job.resolution, job.measure.threads)
    return lut_path(job.out, default, device, several)


def profile_one(job: ProfileJob, device_name: str, lut: Path, echo: Echo) -> str:
    """Profile the job's space on one device into ``lut``, then fit its context model when
    the LUT is complete and not calibrated yet (``donna run``'s LUT stage too); the report's
    summary, with a line on the context model."""
    from latency.context import calibrate_if_needed
    from latency.devices import open_device
    from latency.profiler import open_table, profile_specs
    from nas.core.locks import writer_lock

    specs = job.space.block_specs()
    # one writer per LUT, taken before it is read: another run on it is refused, none is lost
    with writer_lock(lut, "LUT"), open_device(device_name, job.measure, job.adb) as dev:
        table = open_table(lut, dev, resume=job.resume)
        echo(
            f"space {job.space.name} @{job.space.resolution}px: {len(specs)} blocks; device "
            f"{device_name} ({dev.runtime()}, {job.measure.threads} thread(s)); LUT {lut} has "
            f"{len(table)} entries"
        )
        report = profile_specs(
            specs, dev, table, job.convert, workers=job.workers, limit=job.limit,
            remeasure=not job.resume,
        )  # fmt: skip
        context = calibrate_if_needed(
            job.space, dev, table, job.convert, job.calibrate_nets, echo=echo
        )
    return f"{report.summary()}\n{context}"


def run_profile_job(job: ProfileJob, echo: Echo) -> list[Any]:
    """Run ``job``: one device in this thread, several in parallel (blocks converted once,
    first). Returns one :class:`DeviceRun` per device; a device's failure
    is in its ``error`` and never stops the others."""
    names = resolve_devices(job.devices)
    several = len(names) > 1
    jobs = [(n, lut_for(job, n, several)) for n in names]
    if not several:
        name, lut = jobs[0]
        return [DeviceRun(name, lut, profile_one(job, name, lut, echo))]
    from latency.context import calibration_nets
    from latency.convert import convert_many
    from latency.host import REFERENCE_SPEC
    from latency.profiler import reference_net

    specs = list(dict.fromkeys(job.space.block_specs()))[: job.limit]
    nets = calibration_nets(job.space, job.calibrate_nets) if job.limit is None else []
    refs = [REFERENCE_SPEC, reference_net()] if nets else [REFERENCE_SPEC]
    convert_many([*refs, *specs, *nets], job.convert, job.workers or 2)
    return profile_in_parallel(jobs, lambda n, lut: profile_one(job, n, lut, echo))


def time_models(
    job: ProfileJob, models: Sequence[str]
) -> tuple[Path | None, list[Any]]:
    """Time whole models (``FILE.tflite``, an architecture ``.json`` or a genome of the space)
    end to end on the job's one device, next to the LUT's estimate when its LUT exists.
    Returns the LUT used (or ``None``) and one :class:`ModelTiming` each."""
    from latency.devices import open_device
    from latency.profiler import provenance_for
    from lut.table import LatencyTable, identity

    for text in models:  # a bad --model is refused before a device is opened
        parse_model_arg(text, job.space)
    names = resolve_devices(job.devices)
    if len(names) != 1:
        raise DeviceError("--model measures on one device: give one --device")
    lut = lut_for(job, names[0], several=False)
    with open_device(names[0], job.measure, job.adb) as dev:
        table = None
        if lut.exists():
            table = LatencyTable.load(lut)
            table.require(identity(provenance_for(dev)))
        rows = measure_end_to_end(dev, models, job.space, job.convert, table)
    return (lut if table is not None else None), rows
