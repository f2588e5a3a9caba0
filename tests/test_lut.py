from __future__ import annotations

import json
import os

import pytest

from lut import (
    LatencyTable,
    LutCorruptError,
    LutMismatchError,
    LutMissError,
    LutSchemaError,
    LutWriteError,
    compare_tables,
)
from lut.table import identity, in_network_latency
from nas.core.spaces import get_space
from nas.core.specs import describe, spec_key

PROV = {
    "device": {"id": "host-abc", "cpu": "test cpu"},
    "runtime": "tf.lite.Interpreter (tensorflow 2.19.0)",
    "threads": 1,
    "converter": {"onnx2tf": "1.29.24"},
}
SPACE = get_space("quick")
SPECS = SPACE.block_specs()


def entry(warm: float, cold: float | None = None) -> dict:
    e = {"warm_median_us": warm, "n": 100}
    if cold is not None:
        e["cold_median_us"] = cold
    return e


def test_create_add_load_round_trip(tmp_path):
    path = tmp_path / "lut.json"
    t = LatencyTable.create(path, PROV)
    t.add(SPECS[0], entry(10.0, 20.0))
    t.add(SPECS[1], entry(5.0))
    back = LatencyTable.load(path)
    assert len(back) == 2 and back.provenance == PROV
    assert back.latency(SPECS[0]) == pytest.approx(15.0)  # default alpha 0.5
    assert back.latency(SPECS[1]) == 5.0
    assert set(back.specs()) == set(SPECS[:2])
    assert back.get(SPECS[0])["spec"]["kind"] == SPECS[0].kind


def test_every_add_is_on_disk_at_once(tmp_path):
    path = tmp_path / "lut.json"
    t = LatencyTable.create(path, PROV)
    for i, s in enumerate(SPECS[:5]):
        t.add(s, entry(1.0 + i))
        assert len(json.loads(path.read_text())["entries"]) == i + 1


def test_crash_during_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "lut.json"
    t = LatencyTable.create(path, PROV)
    t.add(SPECS[0], entry(1.0))
    before = path.read_text()

    def boom(*a, **k):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(LutWriteError, match="nothing measured is lost"):
        t.add(SPECS[1], entry(2.0))
    assert path.read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_open_for_resumes_and_refuses_other_devices(tmp_path):
    path = tmp_path / "lut.json"
    LatencyTable.open_for(path, PROV).add(SPECS[0], entry(1.0))
    again = LatencyTable.open_for(path, PROV)
    assert len(again) == 1 and again.missing(SPECS[:3]) == SPECS[1:3]
    other = {**PROV, "threads": 4}
    with pytest.raises(LutMismatchError, match="threads: LUT has 1, asked for 4"):
        LatencyTable.open_for(path, other)
    phone = {**PROV, "device": {"id": "android-R58M"}}
    with pytest.raises(LutMismatchError, match="device_id"):
        LatencyTable.load(path).require(identity(phone))


@pytest.mark.parametrize(
    "content, error, msg",
    [
        ('{"schema": "donnav2-lut", "schema_version": 1, "entr', LutCorruptError, "truncated"),
        ("", LutCorruptError, "corrupt"),
        ('{"hello": 1}', LutCorruptError, "not a donnav2 latency LUT"),
        (
            '{"schema": "donnav2-lut", "schema_version": 99, "entries": {}, "provenance": {}}',
            LutSchemaError,
            "schema version 99",
        ),
        (
            '{"schema": "donnav2-lut", "schema_version": 1, "provenance": {}, '
            '"entries": {"k": {"median_us": "fast"}}}',
            LutCorruptError,
            "no valid median_us",
        ),
    ],
)
def test_bad_files_are_refused_clearly(tmp_path, content, error, msg):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(error, match=msg):
        LatencyTable.load(path)
    with pytest.raises(error):
        LatencyTable.open_for(path, PROV)  # never silently overwritten
    assert path.read_text() == content


def test_missing_file_says_how_to_make_it(tmp_path):
    with pytest.raises(LutCorruptError, match="latency-profile"):
        LatencyTable.load(tmp_path / "none.json")


def test_unwritable_output(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(LutWriteError, match="choose another --out"):
        LatencyTable.create(blocker / "lut.json", PROV)


def test_lookup_sums_blocks_and_names_every_missing_one(tmp_path):
    arch = SPACE.decode([0, 5, 23])
    t = LatencyTable.create(tmp_path / "l.json", PROV)
    for i, b in enumerate(arch.blocks):
        t.add(b, entry(10.0 * (i + 1)))
    assert t.lookup(arch) == pytest.approx(sum(10.0 * (i + 1) for i in range(len(arch))))
    t2 = LatencyTable.create(tmp_path / "l2.json", PROV)
    t2.add(arch.blocks[0], entry(1.0))
    with pytest.raises(LutMissError) as exc:
        t2.lookup(arch)
    missing = list(dict.fromkeys(arch.blocks[1:]))
    assert exc.value.missing == [spec_key(b) for b in missing]
    for b in missing:
        assert describe(b) in str(exc.value)


def test_context_model_and_recalibration(tmp_path):
    assert in_network_latency({"warm_median_us": 10, "cold_median_us": 30}, 0.25) == 15
    assert in_network_latency({"warm_median_us": 10}, 0.25) == 10
    t = LatencyTable.create(tmp_path / "l.json", PROV)
    t.add(SPECS[0], entry(10.0, 30.0))
    t.set_context(0.25, {"nets": 3})
    back = LatencyTable.load(tmp_path / "l.json")
    assert back.latency(SPECS[0]) == 15.0 and back.provenance["context"]["nets"] == 3


def test_export_csv_and_compare(tmp_path):
    a = LatencyTable.create(tmp_path / "a.json", PROV)
    b = LatencyTable.create(tmp_path / "b.json", {**PROV, "device": {"id": "phone"}})
    for i, s in enumerate(SPECS[:4]):
        a.add(s, entry(10.0 + i))
    for i, s in enumerate(SPECS[1:6]):
        b.add(s, entry(2 * (11.0 + i)))
    a.export_csv(tmp_path / "a.csv")
    lines = (tmp_path / "a.csv").read_text().splitlines()
    assert len(lines) == 5 and "median_us" in lines[0] and "warm_median_us" in lines[0]
    res = compare_tables(a, b)
    assert res["summary"] == {
        "common": 3,
        "only_a": 1,
        "only_b": 2,
        "median_ratio": 2.0,
        "min_ratio": 2.0,
        "max_ratio": 2.0,
    }


def _with_bad_first_entry(path, **fields):
    t = LatencyTable.create(path, PROV)
    for i, s in enumerate(SPECS[:3]):
        t.add(s, entry(10.0 + i))
    data = json.loads(path.read_text())
    data["entries"][spec_key(SPECS[0])].update(fields)
    path.write_text(json.dumps(data))
    return path.read_text()


@pytest.mark.parametrize("bad", [True, False, 0, -1.5, float("nan"), None, "12", [3]])
def test_a_latency_must_be_a_positive_number(tmp_path, bad):
    path = tmp_path / "lut.json"
    content = _with_bad_first_entry(path, median_us=bad)
    with pytest.raises(LutCorruptError, match=f"entry {describe(SPECS[0])} has no valid median_us"):
        LatencyTable.load(path)
    assert path.read_text() == content


def test_bool_is_not_one_microsecond(tmp_path):
    path = tmp_path / "lut.json"
    _with_bad_first_entry(path, median_us=True)
    with pytest.raises(LutCorruptError, match=r"median_us \(it is true;"):
        LatencyTable.load(path)


def test_resume_drops_bad_entries_of_known_blocks_and_keeps_a_backup(tmp_path):
    path = tmp_path / "lut.json"
    (tmp_path / "lut.json.bak").write_text("an older backup")
    content = _with_bad_first_entry(path, median_us=True, warm_median_us="x")
    t = LatencyTable.open_for(path, PROV)
    assert t.missing(SPECS[:3]) == [SPECS[0]]  # to be measured again
    assert t.latency(SPECS[1]) == 11.0 and t.latency(SPECS[2]) == 12.0  # the others kept
    assert len(t.dropped) == 1 and t.dropped[0].startswith(describe(SPECS[0]))
    assert t.backup == tmp_path / "lut.json.bak.2" and t.backup.read_text() == content
    assert (tmp_path / "lut.json.bak").read_text() == "an older backup"  # no backup replaced
    assert len(LatencyTable.load(path)) == 2  # the file is consistent at once
    assert LatencyTable.open_for(path, PROV).dropped == []


def test_resume_never_drops_entries_of_another_device(tmp_path):
    path = tmp_path / "lut.json"
    content = _with_bad_first_entry(path, median_us=True)
    with pytest.raises(LutMismatchError):
        LatencyTable.open_for(path, {**PROV, "threads": 4})
    assert path.read_text() == content and not (tmp_path / "lut.json.bak").exists()


def test_a_key_that_is_no_block_is_named_shortened(tmp_path):
    path = tmp_path / "lut.json"
    key = '{"kind": "mbconv", "in_chs": 16, ' + "x" * 200
    _with_bad_first_entry(path)
    data = json.loads(path.read_text())
    data["entries"][key] = {"median_us": 3.0}
    path.write_text(json.dumps(data))
    with pytest.raises(LutCorruptError, match="not a block spec") as exc:
        LatencyTable.open_for(path, PROV)  # cannot be measured again: refused, not dropped
    assert len(str(exc.value).splitlines()) == 1 and "x" * 100 not in str(exc.value)
