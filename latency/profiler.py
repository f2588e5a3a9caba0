"""Profile a set of block specs on a device into a LUT: convert, measure, save each entry.

Resumable: blocks already in the LUT are skipped; each entry is written atomically the moment
its measurement finishes, so Ctrl-C or kill -9 loses only the blocks still being timed.
Converted models are cached on disk, so a rerun does not convert again either.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latency.convert import ConvertConfig, ConvertedModel, convert_many, converter_versions
from latency.devices import Device
from latency.errors import ConversionError, SettingError
from latency.host import REFERENCE_SPEC, Measurement
from lut.errors import LutWriteError
from lut.table import WRITE_FIX, LatencyTable, backup_copy, identity
from nas.core.files import check_writable
from nas.core.progress import progress_bar
from nas.core.specs import BlockSpec, describe, spec_key


class ConversionFailures(ConversionError):
    """Some blocks could not be converted; every other block was measured and saved."""

    def __init__(self, failed: dict[BlockSpec, ConversionError], out: Path | None) -> None:
        self.failed = failed
        lines = "\n  ".join(f"{describe(s)}: {e}" for s, e in list(failed.items())[:10])
        super().__init__(
            f"{len(failed)} block(s) could not be converted (all others are measured and "
            f"saved{f' in {out}' if out else ''}):\n  {lines}"
        )


@dataclass
class ProfileReport:
    total: int
    skipped: int
    measured: int
    converted: int
    convert_seconds: float
    measure_seconds: float
    out: Path | None
    unstable: list[str] = field(default_factory=list)
    throttled: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # bad entries found, measured again
    backup: Path | None = None  # the LUT as it was before they were dropped

    def summary(self) -> str:
        rate_c = self.converted / self.convert_seconds * 60 if self.convert_seconds > 0 else 0.0
        rate_m = self.measured / self.measure_seconds * 60 if self.measure_seconds > 0 else 0.0
        conv = (
            f"converted {self.converted} in {self.convert_seconds:.1f} s ({rate_c:.0f}/min)"
            if self.converted
            else "conversions all cached"
        )
        s = (
            f"{self.total} blocks in the space: {self.skipped} already in the LUT, "
            f"{self.measured} measured now; {conv}; measured in {self.measure_seconds:.1f} s "
            f"({rate_m:.0f}/min)"
        )
        if self.unstable:
            s += f"; {len(self.unstable)} stayed noisy after re-measuring (flagged stable=false)"
        if self.throttled:
            s += (
                f"\nwarning: {len(self.throttled)} block(s) were measured on a throttled phone "
                f"(flagged throttled=true), e.g. {self.throttled[0]}. Let the phone cool down "
                "(screen off, out of its case, not charging) and run the same command again: "
                "they are measured again"
            )
        if self.dropped:
            s += (
                f"\nnote: dropped {len(self.dropped)} bad LUT "
                f"entr{'y' if len(self.dropped) == 1 else 'ies'}, measured again when in this space"
                + (f" (the file before is kept as {self.backup})" if self.backup else "")
                + f", e.g. {self.dropped[0]}"
            )
        return s


def provenance_for(device: Device) -> dict[str, Any]:
    settings = device.measure_settings()
    return {
        "device": device.fingerprint(),
        "runtime": device.runtime(),
        "threads": settings.get("threads", 1),
        "converter": converter_versions(),
        "measure": settings,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def open_table(out: Path, device: Device, resume: bool = True) -> LatencyTable:
    """The LUT to fill: resumed when it exists and ``resume`` (refusing one measured elsewhere),
    otherwise started afresh; a replaced file is kept as ``OUT.bak`` (``OUT.bak.2``, ... when
    taken) so nothing is lost."""
    prov = provenance_for(device)
    out = Path(out)
    if out.exists() and not resume:
        check_writable(out, "LUT", fix=WRITE_FIX, error=LutWriteError)
        backup_copy(out)
        return LatencyTable.create(out, prov)
    return LatencyTable.open_for(out, prov)


def profile_specs(
    specs: Sequence[BlockSpec],
    device: Device,
    table: LatencyTable,
    convert_config: ConvertConfig,
    *,
    workers: int | None = None,
    limit: int | None = None,
    remeasure: bool = False,
) -> ProfileReport:
    """Make sure every spec has an entry in ``table`` (measuring the missing ones on
    ``device``). Conversion failures are raised after everything else is saved. ``limit``
    (>= 1) profiles only the first blocks; ``workers`` (>= 1) conversion processes."""
    for name, value in (("limit", limit), ("workers", workers)):
        if value is not None and (isinstance(value, bool) or value < 1):
            raise SettingError(f"{name} must be a whole number >= 1 (or not given), got {value}")
    table.require(identity(provenance_for(device)))
    unique = list(dict.fromkeys(specs))[:limit]
    # entries a phone measured while throttled (see latency.android.measure) are measured again
    flagged = [s for s in unique if (table.get(s) or {}).get("throttled")]
    redo = set(table.missing(unique)) | set(flagged)
    todo = unique if remeasure else [s for s in unique if s in redo]
    skipped = len(unique) - len(table.missing(unique)) - (0 if remeasure else len(flagged))
    report = ProfileReport(len(unique), skipped, 0, 0, 0.0, 0.0, table.path)
    report.dropped, report.backup = list(table.dropped), table.backup
    if not todo:
        return report
    workers = workers or min(2, os.cpu_count() or 1)

    t0 = time.perf_counter()
    with progress_bar(len(todo) + 1, "convert") as bar:

        def converted(spec: BlockSpec, res: ConvertedModel | None, err: Any) -> None:
            bar.update(1)
            if res is not None and not res.cached:
                report.converted += 1

        done, failed = convert_many([REFERENCE_SPEC, *todo], convert_config, workers, converted)
    report.convert_seconds = time.perf_counter() - t0
    if REFERENCE_SPEC in failed:
        raise failed[REFERENCE_SPEC]

    ref_info = table.provenance.get("reference") or {}
    same_ref = ref_info.get("key") == spec_key(REFERENCE_SPEC)
    baseline = ref_info.get("median_us") if same_ref else None
    models = [(s, done[s].path) for s in todo if s in done]
    t1 = time.perf_counter()
    with progress_bar(len(models), "measure") as bar:

        def measured(spec: BlockSpec, m: Measurement) -> None:
            if "reference" not in table.provenance:
                table.provenance["reference"] = {
                    "key": spec_key(REFERENCE_SPEC),
                    "block": describe(REFERENCE_SPEC),
                    "median_us": m.baseline_us,
                }
            conv = done[spec]
            entry = {
                **m.to_entry(),
                "tflite_sha256": conv.sha256,
                "max_abs_diff": conv.max_abs_diff,
            }
            table.add(spec, entry)
            report.measured += 1
            if not m.stable:
                report.unstable.append(describe(spec))
            if getattr(m, "throttled", False):
                report.throttled.append(f"{describe(spec)}: {m.throttle_reason}")
            bar.update(1)

        device.measure(models, done[REFERENCE_SPEC].path, baseline, measured)
    report.measure_seconds = time.perf_counter() - t1
    if failed:
        raise ConversionFailures(failed, table.path)
    return report


# The drift reference of whole-network timings: a fixed mid-sized network of the default space
# at 96 px (the first calibration net there; 17 blocks, ~2.3 ms on the host). The reference
# block is L2-sized and tracked whole networks badly: in three sets of four fresh passes of 16
# nets, their level's sd was 2.3%, 1.6%, 4.1% with the block and 0.8%, 0.9%, 4.3% with this
# network (bench/drift_reference.py, bench/RESULTS.md). Its baseline is set when a LUT
# is calibrated and kept in the LUT's context model, so calibration nets and every later
# whole-network timing are on one scale, which alpha maps the LUT's sums to.
REFERENCE_NET_SPACE = ("default", 96)
REFERENCE_NET_GENOME = (16, 122, 26, 111, 149, 99, 120)


def reference_net() -> Any:
    """The fixed network whole-network timings track drift with (an Architecture)."""
    from nas.core.spaces import get_space

    return get_space(*REFERENCE_NET_SPACE).decode(list(REFERENCE_NET_GENOME))


def reference_net_id() -> str:
    """A short hash of the reference network's blocks (a stored baseline is used only for it)."""
    return hashlib.sha256(reference_net().key().encode()).hexdigest()[:12]


def whole_net_reference(table: LatencyTable | None) -> tuple[Any, float | None]:
    """What to time whole networks against (to convert) and its baseline, so that they are on
    the scale of ``table``'s context model: the reference network with the baseline its
    calibration stored; without one (not calibrated, or calibrated before the reference
    network), the reference block with the LUT's block baseline."""
    ctx = (table.provenance.get("context") if table is not None else None) or {}
    stored = ctx.get("net_reference") or {}
    if stored.get("net") == reference_net_id() and stored.get("median_us"):
        return reference_net(), float(stored["median_us"])
    baseline = None if table is None else (table.provenance.get("reference") or {}).get("median_us")
    return REFERENCE_SPEC, baseline


def measure_architectures(
    archs: Sequence[Any],
    device: Device,
    table: LatencyTable,
    convert_config: ConvertConfig,
    *,
    workers: int | None = None,
    reference: tuple[Any, float | None] | None = None,
) -> list[Measurement]:
    """Convert whole architectures and time them end to end on ``device``, on the scale of
    ``table`` (:func:`whole_net_reference`; ``reference``: another ``(model, baseline)``, a
    baseline of None set by the first rounds). The LUT's blocks should be profiled first."""
    table.require(identity(provenance_for(device)))
    workers = workers or min(2, os.cpu_count() or 1)
    ref_model, baseline = reference or whole_net_reference(table)
    with progress_bar(len(archs) + 1, "convert nets", unit="net") as bar:
        done, failed = convert_many(
            [ref_model, *archs], convert_config, workers, lambda *_: bar.update(1)
        )
    if failed:
        first = next(iter(failed.values()))
        raise ConversionError(f"{len(failed)} network(s) could not be converted: {first}")
    with progress_bar(len(archs), "measure nets", unit="net") as bar:
        res = device.measure(
            [(i, done[a].path) for i, a in enumerate(archs)],
            done[ref_model].path,
            baseline,
            lambda *_: bar.update(1),
        )
    return [res[i] for i in range(len(archs))]
