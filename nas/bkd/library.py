"""The BKD library: per slot and option, how well a trained student block reproduces the
mothernet's block (its normalised held-out MSE), with provenance.

One JSON file, written atomically after every finished option (so a crash loses at most the
option in flight). Entries are keyed by slot index and the option itself (a
:class:`~nas.core.spaces.SlotOption`), never by its position in a list: a filtered space (fewer
options per slot) reads the same library. Student weights live beside the JSON in
``<library stem>.weights/``, one ``.pt`` file per entry, referenced relative to the JSON.

Nothing here imports torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nas.core.errors import DonnaError
from nas.core.files import atomic_write_text, read_versioned_json
from nas.core.spaces import SearchSpace, SlotOption

SCHEMA = "donnav2-bkd"
SCHEMA_VERSION = 1


class LibraryError(DonnaError):
    """A BKD library is missing, corrupt, incomplete or from another mothernet."""


def option_key(slot: int, option: SlotOption) -> str:
    """The canonical key of one entry: slot index plus the option's fields (sorted JSON)."""
    return json.dumps({"slot": slot, **asdict(option)}, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class BkdEntry:
    """One trained option: its normalised held-out MSE and how it was obtained."""

    slot: int
    option: SlotOption
    nmse: float  # held-out MSE / variance of the teacher's output features (comparable slots)
    mse: float  # raw held-out MSE
    train_loss_first: float  # mean normalised loss of the first tenth of the training steps
    train_loss_last: float  # mean normalised loss of the last tenth
    steps: int
    seconds: float
    weights: str | None = None  # path of the student state dict, relative to the library file
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["option"] = asdict(self.option)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BkdEntry:
        d = dict(d)
        d["option"] = SlotOption(**d["option"])
        return cls(**d)


class BkdLibrary:
    """The per-option losses of one mothernet on one search space.

    ``provenance`` holds at least ``mothernet_sha256`` (hash of the checkpoint file),
    ``task``, ``data``, ``epochs`` and ``seed``.
    """

    def __init__(
        self,
        space: SearchSpace,
        provenance: dict[str, Any],
        entries: Iterable[BkdEntry] = (),
        path: Path | None = None,
    ) -> None:
        self.space = space
        self.provenance = dict(provenance)
        self.path = path
        self._entries: dict[str, BkdEntry] = {}
        for e in entries:
            self._entries[option_key(e.slot, e.option)] = e

    # ---- access ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    @property
    def mothernet_sha256(self) -> str:
        return str(self.provenance.get("mothernet_sha256", ""))

    def entries(self) -> list[BkdEntry]:
        return list(self._entries.values())

    def get(self, slot: int, option: SlotOption) -> BkdEntry | None:
        return self._entries.get(option_key(slot, option))

    def entry(self, slot: int, option: SlotOption) -> BkdEntry:
        e = self.get(slot, option)
        if e is None:
            raise LibraryError(
                f"the BKD library has no entry for slot {slot} option {option.label()}; run "
                "`donna bkd` again with the same --out to train the missing options"
            )
        return e

    def missing(self, space: SearchSpace | None = None) -> list[tuple[int, SlotOption]]:
        space = space or self.space
        return [
            (i, o)
            for i, opts in enumerate(space.options)
            for o in opts
            if option_key(i, o) not in self._entries
        ]

    def losses(self, space: SearchSpace | None = None) -> list[list[float]]:
        """Normalised MSE per slot per option, in the (possibly filtered) space's option
        order: the accuracy surrogate's table. Raises when any option is missing."""
        space = space or self.space
        self.check_space(space)
        missing = self.missing(space)
        if missing:
            shown = ", ".join(f"slot {i} {o.label()}" for i, o in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise LibraryError(
                f"the BKD library lacks {len(missing)} option(s) of space {space.name!r}: "
                f"{shown}{more}; run `donna bkd` again with the same --out to finish it"
            )
        return [[self.entry(i, o).nmse for o in opts] for i, opts in enumerate(space.options)]

    def surrogate(self, genome: Sequence[int], space: SearchSpace | None = None) -> float:
        """Summed normalised BKD MSE of one architecture: DONNAv2's accuracy surrogate."""
        space = space or self.space
        return sum(self.entry(i, o).nmse for i, o in enumerate(space.choices(genome)))

    def weights_path(self, slot: int, option: SlotOption) -> Path | None:
        e = self.entry(slot, option)
        if e.weights is None:
            return None
        base = self.path.parent if self.path is not None else Path.cwd()
        return base / e.weights

    def weights_dir(self) -> Path:
        if self.path is None:
            raise LibraryError("this BKD library has no file yet; save it first")
        return self.path.with_name(self.path.stem + ".weights")

    def check_space(self, space: SearchSpace) -> None:
        """A (filtered) space fits this library when its fixed part (stages, stem, head,
        resolution, task) is the library's: only the option lists may differ."""
        mine = {k: v for k, v in self.space.to_dict().items() if k not in ("options", "name")}
        theirs = {k: v for k, v in space.to_dict().items() if k not in ("options", "name")}
        if mine != theirs:
            diff = sorted(k for k in mine if mine[k] != theirs.get(k))
            raise LibraryError(
                f"space {space.name!r} does not fit the BKD library (built on "
                f"{self.space.name!r}; differs in {', '.join(diff)}); use the space the "
                "library was trained on, or a filtered version of it"
            )

    def check_mothernet(self, sha256: str) -> None:
        if sha256 != self.mothernet_sha256:
            raise LibraryError(
                f"the BKD library was trained from mothernet {self.mothernet_sha256[:12]}, not "
                f"{sha256[:12]}; run `donna bkd` for this mothernet or use its own library"
            )

    # ---- changes -----------------------------------------------------------------------
    def add(self, entry: BkdEntry) -> None:
        self._entries[option_key(entry.slot, entry.option)] = entry

    # ---- persistence -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "version": SCHEMA_VERSION,
            "provenance": self.provenance,
            "space": self.space.to_dict(),
            "entries": [e.to_dict() for e in self._entries.values()],
        }

    def save(self, path: Path | None = None) -> Path:
        """Write atomically (temp file + rename)."""
        path = Path(path or self.path or "")
        if not str(path):
            raise LibraryError("no path to save the BKD library to")
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))
        self.path = path
        return path

    @classmethod
    def load(cls, path: Path) -> BkdLibrary:
        path = Path(path)
        data = read_versioned_json(
            path,
            schema=SCHEMA,
            version=SCHEMA_VERSION,
            what="BKD library",
            made_by="`donna bkd`",
            error=LibraryError,
        )
        try:
            space = SearchSpace.from_dict(data["space"])
            entries = [BkdEntry.from_dict(e) for e in data["entries"]]
        except (KeyError, TypeError) as exc:
            raise LibraryError(
                f"BKD library {path} is corrupt ({exc}); re-run `donna bkd`"
            ) from None
        return cls(space, data.get("provenance", {}), entries, path=path)
