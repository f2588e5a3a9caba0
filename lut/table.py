"""The latency lookup table: one JSON file per device and settings.

Layout (schema ``donnav2-lut``, version 1)::

    {"schema": "donnav2-lut", "schema_version": 1,
     "provenance": {"device": {"id": ..., ...}, "runtime": ..., "threads": 1,
                    "converter": {...}, "measure": {...}, "reference": {...}},
     "entries": {"<canonical spec key>": {"spec": {...}, "median_us": ..., ...}}}

Entries are keyed by :func:`nas.core.specs.spec_key`. Every change is written atomically
(temporary file, fsync, rename), so a crash or kill -9 leaves either the old or the new file,
never a torn one.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lut.errors import (
    LutCorruptError,
    LutMismatchError,
    LutMissError,
    LutSchemaError,
    LutWriteError,
)
from nas.core.errors import SpecError
from nas.core.files import atomic_write_text, check_writable
from nas.core.specs import (
    Architecture,
    BlockSpec,
    MBConvSpec,
    describe,
    in_shape,
    mid_chs,
    out_shape,
    params,
    spec_from_key,
    spec_key,
)

SCHEMA = "donnav2-lut"
SCHEMA_VERSION = 1
# Provenance fields that must agree for two measurements to belong in one table.
IDENTITY_FIELDS = ("device_id", "runtime", "threads", "converter")
LATENCY_FIELD = "median_us"
# Optional per-entry figures that, when present, must be positive numbers of microseconds.
CONTEXT_FIELDS = ("warm_median_us", "cold_median_us")
WRITE_FIX = "choose another --out or fix the folder's permissions"


DEFAULT_CONTEXT_ALPHA = 0.5
# The size model of the cache context (latency.context): a block's share of its cold penalty
# is logistic in log2 of its working set, ``alpha = 1 / (1 + exp(-(a + b * log2(bytes/1MiB))))``
# with ``"params": [a, b]`` in the provenance's "context". A context without "model" (older
# LUTs) is one alpha for every block.
SIZE_MODEL = "size-logistic"
SIZE_REF_BYTES = 1 << 20


def working_set_bytes(spec: BlockSpec) -> int:
    """Bytes (float32) a block touches in one pass: weights, input, output and, for an MBConv,
    the expanded activations."""
    n = params(spec) + math.prod(in_shape(spec)) + math.prod(out_shape(spec))
    if isinstance(spec, MBConvSpec) and spec.exp_ratio != 1.0:
        n += mid_chs(spec) * spec.in_h * spec.in_w
    return 4 * n


def size_alpha(spec: BlockSpec, a: float, b: float) -> float:
    """The size model's share of the cold penalty for ``spec`` (in (0, 1))."""
    z = a + b * math.log2(working_set_bytes(spec) / SIZE_REF_BYTES)
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def block_alpha(spec: BlockSpec, context: Mapping[str, Any] | None) -> float:
    """The share of its cold penalty ``spec`` pays inside a network under a LUT's context
    model (``provenance["context"]``; ``None``: not calibrated, the default alpha)."""
    if not context:
        return DEFAULT_CONTEXT_ALPHA
    if context.get("model") == SIZE_MODEL:
        a, b = (float(v) for v in context["params"])
        return size_alpha(spec, a, b)
    return float(context.get("alpha", DEFAULT_CONTEXT_ALPHA))


def in_network_latency(entry: Mapping[str, Any], alpha: float) -> float:
    """A block's latency inside a network, from its warm and cold medians: the block pays the
    share ``alpha`` of its cold-cache penalty (see :mod:`latency.context`). Entries measured
    in one context only (e.g. on a phone with benchmark_model) give that one."""
    warm = entry.get("warm_median_us")
    cold = entry.get("cold_median_us")
    if warm is None:
        return float(entry[LATENCY_FIELD])
    if cold is None:
        return float(warm)
    return float(warm) + alpha * (float(cold) - float(warm))


def identity(provenance: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a provenance that says *where and how* latencies were measured."""
    return {
        "device_id": provenance.get("device", {}).get("id"),
        "runtime": provenance.get("runtime"),
        "threads": provenance.get("threads"),
        "converter": provenance.get("converter"),
    }


def _short(value: Any, limit: int = 60) -> str:
    """``value`` as it reads in the JSON file, shortened to ``limit`` characters."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _block_of(key: str) -> BlockSpec | None:
    try:
        return spec_from_key(key)
    except SpecError:
        return None


def entry_label(key: str) -> str:
    """A LUT entry named for people: its block (``describe``), or its key, shortened, when
    the key is not a block spec."""
    spec = _block_of(key)
    return describe(spec) if spec is not None else f"with key {_short(key)} (not a block spec)"


def entry_problem(key: str, entry: Any) -> str | None:
    """Why the entry ``key: entry`` of a LUT file cannot be used, or ``None``. A latency must
    be a positive, finite number (``true`` is not 1 µs)."""
    if not isinstance(entry, dict):
        return f"is not an object (it is {_short(entry)})"
    for name in (LATENCY_FIELD, *CONTEXT_FIELDS):
        value = entry.get(name)
        if value is None and name != LATENCY_FIELD:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value <= 0
        ):
            it = "missing" if name not in entry else _short(value)
            return f"has no valid {name} (it is {it}; a positive number of microseconds is needed)"
    if _block_of(key) is None:
        return "is of no known block (its key is not a block spec)"
    return None


def backup_copy(path: Path) -> Path:
    """Copy ``path`` to ``PATH.bak`` (``PATH.bak.2``, ... when taken: no backup is replaced)."""
    target, n = path.with_name(path.name + ".bak"), 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.bak.{n}")
    shutil.copy2(path, target)
    return target


@dataclass
class LatencyTable:
    provenance: dict[str, Any]
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: Path | None = None
    # bad entries dropped when the table was opened to resume (label: problem), and where the
    # file as it was is kept
    dropped: list[str] = field(default_factory=list, compare=False, repr=False)
    backup: Path | None = field(default=None, compare=False, repr=False)

    # ---- files -------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, *, drop_bad: bool = False) -> LatencyTable:
        """The LUT at ``path``; a bad entry is refused, naming it (``drop_bad``: entries of a
        readable block spec are dropped instead, listed in ``dropped``, to be measured again).
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise LutCorruptError(
                f"LUT {path} does not exist; profile it first with `latency-profile --out {path}`"
            ) from None
        except OSError as exc:
            raise LutCorruptError(f"cannot read LUT {path}: {exc}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LutCorruptError(
                f"LUT {path} is corrupt or truncated ({exc}); it was not written by "
                "donnav2's atomic writer. Restore it from a copy, or move it away and "
                "profile again"
            ) from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise LutCorruptError(
                f'{path} is not a donnav2 latency LUT (no "schema": "{SCHEMA}" field); '
                "pass a file written by `latency-profile`"
            )
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise LutSchemaError(
                f"LUT {path} has schema version {version!r}; this donnav2 reads version "
                f"{SCHEMA_VERSION}. Use the donnav2 release that wrote it, or profile again"
            )
        entries = data.get("entries")
        prov = data.get("provenance")
        if not isinstance(entries, dict) or not isinstance(prov, dict):
            raise LutCorruptError(f"LUT {path} lacks its 'entries' or 'provenance' object")
        bad = {k: p for k, e in entries.items() if (p := entry_problem(k, e)) is not None}
        keep = [k for k in bad if not drop_bad or _block_of(k) is None]  # unknown: refuse
        if keep:
            first = keep[0]
            more = f" (and {len(keep) - 1} more bad entries)" if len(keep) > 1 else ""
            raise LutCorruptError(
                f"LUT {path}: entry {entry_label(first)} {bad[first]}{more}; resuming it "
                f"(`latency-profile --out {path}`, same space and settings) drops and measures "
                "again the bad entries of known blocks, or delete them from the file"
            )
        good = {k: e for k, e in entries.items() if k not in bad}
        table = cls(provenance=prov, entries=good, path=path)
        table.dropped = [f"{entry_label(k)} {p}" for k, p in bad.items()]
        return table

    @classmethod
    def create(cls, path: str | Path, provenance: Mapping[str, Any]) -> LatencyTable:
        """A new, empty table written to ``path`` at once (so an unwritable path fails before
        anything is measured)."""
        check_writable(path, "LUT", fix=WRITE_FIX, error=LutWriteError)
        table = cls(provenance=dict(provenance), entries={}, path=Path(path))
        table.save()
        return table

    @classmethod
    def open_for(cls, path: str | Path, provenance: Mapping[str, Any]) -> LatencyTable:
        """Open ``path`` to add measurements made under ``provenance``: resume it if it exists
        (refusing one of another device or settings), else create it. Bad entries of known
        blocks are dropped, to be measured again (``dropped``; the file as it was is kept as
        ``backup``, ``PATH.bak``)."""
        path = Path(path)
        check_writable(path, "LUT", fix=WRITE_FIX, error=LutWriteError)
        if not path.exists():
            return cls.create(path, provenance)
        table = cls.load(path, drop_bad=True)
        table.require(identity(provenance))
        if table.dropped:
            table.backup = backup_copy(path)
            table.save()
        return table

    def save(self) -> None:
        if self.path is None:
            return
        data = {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "provenance": self.provenance,
            "entries": self.entries,
        }
        text = json.dumps(data, indent=1, sort_keys=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, text)
        except OSError as exc:
            raise LutWriteError(
                f"cannot write LUT {self.path}: {exc.strerror or exc}; choose another --out "
                "or fix the folder's permissions (nothing measured is lost: finished entries "
                "stay in the last good file)"
            ) from None

    # ---- identity ----------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        return identity(self.provenance)

    def require(self, expected: Mapping[str, Any]) -> None:
        """Refuse to mix or use measurements of another device or settings."""
        mine = self.identity()
        diffs = [
            f"{k}: LUT has {mine.get(k)!r}, asked for {expected[k]!r}"
            for k in IDENTITY_FIELDS
            if k in expected and expected[k] is not None and mine.get(k) != expected[k]
        ]
        if diffs:
            where = self.path or "this LUT"
            raise LutMismatchError(
                f"{where} was measured on another device or with other settings ("
                + "; ".join(diffs)
                + "). Use a LUT profiled for this device and settings, or write to another "
                "--out"
            )

    # ---- entries -------------------------------------------------------------------------
    def __contains__(self, spec: BlockSpec) -> bool:
        return spec_key(spec) in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, spec: BlockSpec) -> dict[str, Any] | None:
        return self.entries.get(spec_key(spec))

    @property
    def context_alpha(self) -> float:
        return float(self.provenance.get("context", {}).get("alpha", DEFAULT_CONTEXT_ALPHA))

    def add(self, spec: BlockSpec, entry: Mapping[str, Any]) -> None:
        """Record one measured block and write the file atomically. ``median_us`` (the figure
        look-ups sum) is derived from the entry's warm/cold medians and the table's context
        model."""
        row = {"spec": json.loads(spec_key(spec)), **entry}
        row[LATENCY_FIELD] = in_network_latency(row, self.alpha_for(spec))
        self.entries[spec_key(spec)] = row
        self.save()

    def alpha_for(self, spec: BlockSpec) -> float:
        """The share of its cold penalty ``spec`` pays inside a network (:func:`block_alpha`)."""
        return block_alpha(spec, self.provenance.get("context"))

    def size_model_line(self) -> str:
        """The size model of a LUT that has one, in words (the alphas its entries get)."""
        a, b = (float(v) for v in self.provenance["context"]["params"])
        alphas = [size_alpha(spec_from_key(k), a, b) for k in self.entries] or [0.0]
        return (
            f"by block size ({SIZE_MODEL} a {a:+.2f}, b {b:+.2f}): alpha "
            f"{min(alphas):.2f}-{max(alphas):.2f} over the {len(self.entries)} entries"
        )

    def set_context(self, alpha: float, info: Mapping[str, Any]) -> None:
        """Adopt a calibrated context model and re-derive every entry's ``median_us``.
        ``alpha``: the one-alpha fit (what readers without the size model use); ``info`` may
        add ``"model": SIZE_MODEL, "params": [a, b]``, which then prices each block."""
        self.provenance["context"] = {"alpha": float(alpha), **info}
        for key, row in self.entries.items():
            row[LATENCY_FIELD] = in_network_latency(row, self.alpha_for(spec_from_key(key)))
        self.save()

    def missing(self, specs: Iterable[BlockSpec]) -> list[BlockSpec]:
        seen: dict[BlockSpec, None] = {}
        for s in specs:
            if spec_key(s) not in self.entries:
                seen.setdefault(s, None)
        return list(seen)

    def latency(self, spec: BlockSpec) -> float:
        entry = self.entries.get(spec_key(spec))
        if entry is None:
            raise self._miss([spec])
        return float(entry[LATENCY_FIELD])

    # ---- the pricer protocol (nas.core.pricing.BlockPricer) -------------------------------
    unit = "us"

    def block_costs(self, specs: Iterable[BlockSpec]) -> list[float]:
        """In-network latency (µs) of each block; a :class:`LutMissError` names every
        missing block at once."""
        specs = list(specs)
        self.lookup(specs)
        return [self.latency(b) for b in specs]

    def describe(self) -> str:
        return f"LUT {self.path or '(in memory)'}"

    def lookup(self, arch: Architecture | Iterable[BlockSpec]) -> float:
        """Latency of an architecture in microseconds: the sum over its blocks, stem and head
        included. Every missing block is named in the error."""
        blocks = list(arch)
        missing = self.missing(blocks)
        if missing:
            raise self._miss(missing)
        return sum(float(self.entries[spec_key(b)][LATENCY_FIELD]) for b in blocks)

    def _miss(self, missing: list[BlockSpec]) -> LutMissError:
        where = self.path or "the LUT"
        names = "\n  ".join(describe(s) for s in missing[:20])
        more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
        return LutMissError(
            f"{len(missing)} block(s) missing from {where}:\n  {names}{more}\n"
            "Profile them (`latency-profile` with the same --out resumes), or use the "
            "estimator's `measure` or `predict` mode",
            [spec_key(s) for s in missing],
        )

    def specs(self) -> list[BlockSpec]:
        return [spec_from_key(k) for k in self.entries]

    # ---- export ---------------------------------------------------------------------------
    def summary(self) -> str:
        """Provenance and entry statistics, for people (``latency-profile show``)."""
        p = self.provenance
        lat = sorted(e["median_us"] for e in self.entries.values())
        dev = p.get("device", {})
        lines = [
            f"LUT {self.path}: {len(self)} entries",
            f"  device   {dev.get('id')} ({dev.get('cpu') or dev.get('model')})",
            f"  runtime  {p.get('runtime')}, threads {p.get('threads')}",
            f"  converter {json.dumps(p.get('converter'))}",
        ]
        if lat:
            lines.append(
                f"  latency  min {lat[0]:.1f} us, median {lat[len(lat) // 2]:.1f} us, "
                f"max {lat[-1]:.1f} us"
            )
        ctx = p.get("context")
        if ctx:  # the cache-context model (latency.context)
            line = f"  context  alpha {self.context_alpha:.2f}"
            if "nets" in ctx:
                line += f", calibrated on {ctx['nets']} whole nets"
            if "mape_before" in ctx and "mape_after" in ctx:
                line += (
                    f"; whole-net mean abs error {ctx['mape_before'] * 100:.1f}% -> "
                    f"{ctx['mape_after'] * 100:.1f}%"
                )
        else:
            line = (
                f"  context  not calibrated (alpha {DEFAULT_CONTEXT_ALPHA} default); rerun "
                "latency-profile on the whole space to calibrate"
            )
        lines.append(line)
        if ctx and ctx.get("model") == SIZE_MODEL:
            lines.append(f"  context  {self.size_model_line()}")
        unstable = sum(1 for e in self.entries.values() if e.get("stable") is False)
        if unstable:
            lines.append(f"  {unstable} entries stayed noisy after re-measuring (stable=false)")
        return "\n".join(lines)

    def export_csv(self, path: str | Path) -> None:
        """The entries as CSV (one row per block, numbers as columns), written atomically."""
        check_writable(path, "CSV file", fix="choose another CSV path")
        numeric = sorted(
            {k for e in self.entries.values() for k, v in e.items() if isinstance(v, (int, float))}
        )
        f = io.StringIO(newline="")
        w = csv.writer(f)
        w.writerow(["key", "block", *numeric])
        for key, e in sorted(self.entries.items()):
            w.writerow([key, describe(spec_from_key(key)), *(e.get(c, "") for c in numeric)])
        _write_csv(path, f.getvalue())


def compare_tables(a: LatencyTable, b: LatencyTable) -> dict[str, Any]:
    """Per-entry ratio b/a over the blocks both tables hold, with a summary."""
    common = sorted(set(a.entries) & set(b.entries))
    rows = []
    for key in common:
        la, lb = a.entries[key][LATENCY_FIELD], b.entries[key][LATENCY_FIELD]
        rows.append(
            {
                "key": key,
                "block": describe(spec_from_key(key)),
                "a_us": la,
                "b_us": lb,
                "ratio": lb / la,
            }
        )
    ratios = sorted(r["ratio"] for r in rows)
    summary: dict[str, Any] = {
        "common": len(common),
        "only_a": len(set(a.entries) - set(b.entries)),
        "only_b": len(set(b.entries) - set(a.entries)),
    }
    if ratios:
        summary.update(
            median_ratio=statistics.median(ratios), min_ratio=ratios[0], max_ratio=ratios[-1]
        )
    return {"summary": summary, "rows": rows}


def write_comparison_csv(comparison: Mapping[str, Any], path: str | Path) -> None:
    """The per-entry rows of :func:`compare_tables` as CSV (key, block, a_us, b_us, ratio),
    written atomically."""
    check_writable(path, "CSV file", fix="choose another --csv path")
    f = io.StringIO(newline="")
    w = csv.DictWriter(f, fieldnames=["key", "block", "a_us", "b_us", "ratio"])
    w.writeheader()
    w.writerows(comparison["rows"])
    _write_csv(path, f.getvalue())


def _write_csv(path: str | Path, text: str) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    except OSError as exc:
        raise LutWriteError(f"cannot write CSV file {path}: {exc.strerror or exc}") from None
