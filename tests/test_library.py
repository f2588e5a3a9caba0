from __future__ import annotations

import json

import pytest

from nas.bkd.library import BkdEntry, BkdLibrary, LibraryError
from nas.core.spaces import get_space


def _entry(slot, option, nmse):
    return BkdEntry(slot, option, nmse, nmse * 2, nmse * 3, nmse, 10, 0.1, None)


def _full_library(space, path=None):
    lib = BkdLibrary(space, {"mothernet_sha256": "ab" * 32, "seed": 0}, path=path)
    for i, opts in enumerate(space.options):
        for j, o in enumerate(opts):
            lib.add(_entry(i, o, 0.01 * (i + 1) + 0.001 * j))
    return lib


def test_round_trip_and_losses_follow_the_filtered_option_order(tmp_path):
    sp = get_space("quick")
    lib = _full_library(sp)
    lib.save(tmp_path / "bkd.json")
    back = BkdLibrary.load(tmp_path / "bkd.json")
    assert len(back) == 72 and back.losses() == lib.losses()
    # a filtered space keeps the third and first options, in that order
    filtered = sp.with_options([(opts[2], opts[0]) for opts in sp.options])
    got = back.losses(filtered)
    assert got[1] == pytest.approx([0.022, 0.020])
    assert back.surrogate([1, 1, 1], filtered) == pytest.approx(0.01 + 0.02 + 0.03)


def test_missing_options_are_named(tmp_path):
    sp = get_space("quick")
    lib = _full_library(sp)
    lib._entries.pop(next(iter(lib._entries)))
    assert len(lib.missing()) == 1
    with pytest.raises(LibraryError, match=r"lacks 1 option\(s\).*slot 0 k3 e3 d1"):
        lib.losses()


def test_other_space_and_other_mothernet_are_refused():
    lib = _full_library(get_space("quick"))
    with pytest.raises(LibraryError, match="does not fit"):
        lib.check_space(get_space("quick", resolution=64))
    with pytest.raises(LibraryError, match="trained from mothernet abababababab"):
        lib.check_mothernet("cd" * 32)


def test_bad_files(tmp_path):
    with pytest.raises(LibraryError, match="does not exist"):
        BkdLibrary.load(tmp_path / "nope.json")
    p = tmp_path / "x.json"
    p.write_text("{not json")
    with pytest.raises(LibraryError, match="not readable JSON"):
        BkdLibrary.load(p)
    p.write_text(json.dumps({"schema": "donnav2-lut"}))
    with pytest.raises(LibraryError, match="not a BKD library"):
        BkdLibrary.load(p)
