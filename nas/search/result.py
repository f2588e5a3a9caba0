"""What a search returns and writes: the front entries, the result, the Pareto file
(``pareto.json``, schema ``donnav2-pareto``), and :func:`parse_pick` / :func:`pick`: the one
parser of the ``PATH:INDEX`` references that name an architecture of a saved front."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.core.errors import SearchError, SpaceError
from nas.core.files import atomic_write_text, read_versioned_json
from nas.core.spaces import SearchSpace
from nas.search.config import SearchConfig

SCHEMA = "donnav2-pareto"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ParetoEntry:
    """One architecture of a front."""

    genome: tuple[int, ...]
    options: tuple[str, ...]  # option labels, for people
    blocks: tuple[dict[str, Any], ...]  # Architecture.to_list()
    surrogate: float  # summed normalised BKD MSE
    latency_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "genome": list(self.genome),
            "options": list(self.options),
            "surrogate": self.surrogate,
            "latency_ms": self.latency_ms,
            "blocks": list(self.blocks),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ParetoEntry:
        return cls(
            genome=tuple(int(g) for g in d["genome"]),
            options=tuple(d.get("options", ())),
            blocks=tuple(d["blocks"]),
            surrogate=float(d["surrogate"]),
            latency_ms=float(d["latency_ms"]),
        )


def make_entries(
    space: SearchSpace, genomes: np.ndarray, loss: np.ndarray, latency_ms: np.ndarray
) -> tuple[ParetoEntry, ...]:
    """Front entries of ``genomes`` (rows) with their objective values; each genome is decoded
    once (:meth:`~nas.core.spaces.SearchSpace.decode`)."""
    out = []
    for g, s, t in zip(genomes, loss, latency_ms):
        genome = tuple(int(v) for v in g)
        out.append(
            ParetoEntry(
                genome=genome,
                options=tuple(o.label() for o in space.choices(genome)),
                blocks=tuple(space.decode(genome).to_list()),
                surrogate=float(s),
                latency_ms=float(t),
            )
        )
    return tuple(out)


@dataclass(frozen=True, eq=False)
class SearchResult:
    """A search's front, every evaluated point and how it was obtained."""

    space: SearchSpace
    config: SearchConfig
    front: tuple[ParetoEntry, ...]  # sorted by latency
    evaluated: np.ndarray  # (n, 2): surrogate, latency_ms of every distinct genome evaluated
    fastest_ms: float
    method: str  # "nsga2" or "enumeration"
    seconds: float
    mothernet: tuple[float, float] | None = None  # (surrogate, latency_ms)
    provenance: dict[str, Any] = field(default_factory=dict)

    def at(self, index: int, where: str | Path = "the Pareto file") -> ParetoEntry:
        """Front entry ``index``; an out-of-range index names the valid ones."""
        n = len(self.front)
        if not 0 <= index < n:
            valid = f"0..{n - 1}" if n else "none: the front is empty"
            raise SearchError(
                f"index {index} is out of range for {where}: its front has {n} "
                f"architecture(s), valid indices {valid}"
            )
        return self.front[index]

    def points(self) -> np.ndarray:
        """The front as an (n, 2) array of (surrogate, latency_ms)."""
        return np.array([[e.surrogate, e.latency_ms] for e in self.front]).reshape(-1, 2)

    def summary(self) -> str:
        lines = [
            f"{self.method} on {self.space.name!r} (10^{self.space.log10_size():.2f} "
            f"architectures): {len(self.evaluated)} evaluated in {self.seconds:.2f} s, "
            f"{len(self.front)} on the Pareto front; fastest possible {self.fastest_ms:.3f} ms"
        ]
        for i, e in enumerate(self.front):
            lines.append(
                f"  [{i}] {e.latency_ms:8.3f} ms  surrogate {e.surrogate:.4f}  "
                f"genome {list(e.genome)}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "version": SCHEMA_VERSION,
            "space": self.space.to_dict(),
            "config": asdict(self.config),
            "method": self.method,
            "seconds": self.seconds,
            "fastest_ms": self.fastest_ms,
            "mothernet": (
                None
                if self.mothernet is None
                else {"surrogate": self.mothernet[0], "latency_ms": self.mothernet[1]}
            ),
            "provenance": self.provenance,
            "n_evaluated": len(self.evaluated),
            "front": [{"index": i, **e.to_dict()} for i, e in enumerate(self.front)],
            "evaluated": {
                "surrogate": [float(v) for v in self.evaluated[:, 0]],
                "latency_ms": [float(v) for v in self.evaluated[:, 1]],
            },
        }

    def save(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``pareto.json`` and ``pareto.png`` into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / "pareto.json"
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))
        png = self.plot(out / "pareto.png")
        return path, png

    def plot(self, path: str | Path) -> Path:
        """The front plot (:func:`nas.search.plot.plot_front`) written to ``path``."""
        from nas.search.plot import plot_front

        return plot_front(self, path)


# ---- files --------------------------------------------------------------------------------------


def load_pareto(path: str | Path) -> SearchResult:
    """The :class:`SearchResult` saved at ``path`` by :meth:`SearchResult.save`; a missing,
    foreign or corrupt file is a :class:`~nas.core.errors.SearchError` naming the fix."""
    path = Path(path)
    data = read_versioned_json(
        path,
        schema=SCHEMA,
        version=SCHEMA_VERSION,
        what="Pareto front",
        made_by="`donna search`",
        error=SearchError,
    )
    try:
        ev = data.get("evaluated") or {"surrogate": [], "latency_ms": []}
        mn = data.get("mothernet")
        return SearchResult(
            space=SearchSpace.from_dict(data["space"]),
            config=SearchConfig(**data["config"]),
            front=tuple(ParetoEntry.from_dict(e) for e in data["front"]),
            evaluated=np.column_stack([ev["surrogate"], ev["latency_ms"]]).reshape(-1, 2),
            fastest_ms=float(data["fastest_ms"]),
            method=str(data["method"]),
            seconds=float(data.get("seconds", 0.0)),
            mothernet=None if mn is None else (float(mn["surrogate"]), float(mn["latency_ms"])),
            provenance=dict(data.get("provenance") or {}),
        )
    except (KeyError, TypeError, ValueError, SpaceError) as exc:
        raise SearchError(
            f"Pareto file {path} is corrupt ({exc}); run `donna search` again"
        ) from None


def parse_pick(ref: str | Path) -> tuple[Path, int]:
    """``PATH:INDEX`` (e.g. ``runs/x/pareto.json:3``) as (path, index): the one parser of the
    references that name an architecture of a saved front.

    The index is after the *last* colon (a path may hold colons); a negative index parses (and
    is then out of range for :meth:`SearchResult.at`). A reference without a path or an integer
    ``:INDEX`` raises :class:`~nas.core.errors.SearchError` showing the form, with the valid
    indices when the reference is itself a Pareto file."""
    text = str(ref)
    path, sep, index = text.rpartition(":")
    if not sep or not path or not index.strip().lstrip("-").isdigit():
        n = len(load_pareto(text).front) if Path(text).is_file() else None
        hint = f" (0..{n - 1})" if n else ""
        raise SearchError(
            f"name an architecture of a Pareto front as PATH:INDEX, e.g. {text}:0{hint}"
        )
    return Path(path), int(index)


def pick(ref: str | Path) -> tuple[SearchSpace, list[int], ParetoEntry]:
    """The architecture ``PATH:INDEX`` of a Pareto file (:func:`parse_pick`): its space,
    genome and front entry. Raises :class:`~nas.core.errors.SearchError` with the fix for a
    malformed reference, an index out of range (naming the valid ones) and a missing, foreign
    or corrupt file (:func:`load_pareto`)."""
    path, index = parse_pick(ref)
    result = load_pareto(path)
    entry = result.at(index, path)
    return result.space, list(entry.genome), entry
