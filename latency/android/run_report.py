"""Parsers of what the device scripts print (pure: text in, frozen dataclasses out).

* ``device_scripts/device_info.sh`` -> :func:`parse_device_info` -> :class:`DeviceInfo`;
* ``device_scripts/run_benchmark.sh``'s report file -> :func:`parse_run_report` ->
  :class:`ModelReport` per model, with :func:`throttle_reasons` deciding whether a model's
  runs were made on a throttled phone.

Both formats are line based; control lines start with ``@@donna `` (see the scripts' headers).
Everything between ``@@donna run N begin`` and ``@@donna run N end exit=CODE`` is the raw
output of one ``benchmark_model`` run, parsed by
:func:`latency.android.benchmark_output.parse_benchmark_output`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from latency.android.errors import RunReportError
from latency.android.phones import parse_cpu_max_freqs, parse_getprop, parse_thermal

__all__ = [
    "BinaryRun",
    "DeviceInfo",
    "ModelReport",
    "parse_device_info",
    "parse_run_report",
    "throttle_reasons",
]

MARK = "@@donna "
_SECTIONS = ("getprop", "cpu_max_freq", "cpu_governor", "thermal")
_FREQ = re.compile(r"^freq (before|after) cpu(\d+) cur=(\S+) max=(\S+) hw=(\S+)$")
_TEMP = re.compile(r"^temp (before|after) (.+) (-?\d+)$")
_GATE = re.compile(r"^gate (ok|timeout) waited=(\d+) temp_mc=(-?\d+|none)$")
_RUN_BEGIN = re.compile(r"^run (\d+) begin$")
_RUN_END = re.compile(r"^run (\d+) end exit=(\d+)$")


@dataclass(frozen=True)
class DeviceInfo:
    """What ``device_info.sh`` found: properties, per-core max kHz and governors, zone °C."""

    props: dict[str, str]
    max_freqs_khz: dict[int, int]
    governors: dict[int, str]
    temps_c: dict[str, float]


def parse_device_info(text: str) -> DeviceInfo:
    """:class:`DeviceInfo` from ``device_info.sh`` output (sections, then ``@@donna end``)."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    ended = False
    for line in text.splitlines():
        line = line.rstrip("\r")
        if line.startswith(MARK + "section "):
            name = line[len(MARK + "section "):].strip()
            current = sections.setdefault(name, [])
        elif line.strip() == MARK + "end":
            ended = True
            break
        elif current is not None:
            current.append(line)
    missing = [s for s in _SECTIONS if s not in sections]
    if not ended or missing:
        raise RunReportError(
            "device_info.sh output is incomplete ("
            + (f"sections missing: {', '.join(missing)}" if missing else "no '@@donna end'")
            + "); the script was cut short or is not donnav2's. Rerun it; if it keeps failing, "
            "run `adb shell sh /data/local/tmp/donnav2/scripts/device_info-*.sh` to see why"
        )
    governors: dict[int, str] = {}
    for line in sections["cpu_governor"]:
        parts = line.split()
        if len(parts) == 2 and parts[0].startswith("cpu") and parts[0][3:].isdigit():
            if parts[1] != "?":
                governors[int(parts[0][3:])] = parts[1]
    return DeviceInfo(
        props=parse_getprop("\n".join(sections["getprop"])),
        max_freqs_khz=parse_cpu_max_freqs("\n".join(sections["cpu_max_freq"])),
        governors=governors,
        temps_c=parse_thermal("\n".join(sections["thermal"])),
    )


@dataclass(frozen=True)
class BinaryRun:
    """One run of ``benchmark_model``: its exit status and everything it printed."""

    index: int
    exit_code: int
    output: str


@dataclass(frozen=True)
class CoreFreq:
    cur_khz: int | None
    max_khz: int | None
    hw_max_khz: int | None


@dataclass(frozen=True)
class ModelReport:
    """What ``run_benchmark.sh`` recorded for one model."""

    model: str
    cooldown_s: float
    gate_ok: bool
    gate_waited_s: int
    gate_temp_c: float | None
    freqs_before: dict[int, CoreFreq] = field(default_factory=dict)
    freqs_after: dict[int, CoreFreq] = field(default_factory=dict)
    temps_before_c: dict[str, float] = field(default_factory=dict)
    temps_after_c: dict[str, float] = field(default_factory=dict)
    runs: tuple[BinaryRun, ...] = ()
    complete: bool = True

    @property
    def max_temp_c(self) -> float | None:
        temps = [*self.temps_before_c.values(), *self.temps_after_c.values()]
        return max(temps) if temps else None


def _num(value: str) -> int | None:
    return int(value) if value.isdigit() else None


def _celsius(millidegrees: int) -> float:
    return millidegrees / 1000.0


def parse_run_report(text: str) -> tuple[list[ModelReport], bool]:
    """(one :class:`ModelReport` per model, whether the report is complete).

    A report cut short (the connection or the phone died mid-run) gives the finished models
    and, for the model being run, a report with ``complete=False`` and the runs so far.
    """
    lines = text.splitlines()
    if not lines or lines[0].rstrip("\r") != MARK + "report 1":
        raise RunReportError(
            "the benchmark report does not start with '@@donna report 1': it was not written "
            "by donnav2's run_benchmark.sh (or is empty because the script could not start)"
        )
    models: list[ModelReport] = []
    cur: dict | None = None
    run: tuple[int, list[str]] | None = None
    done = False

    def close(complete: bool) -> None:
        nonlocal cur
        if cur is not None:
            models.append(ModelReport(**cur, complete=complete))
            cur = None

    for raw in lines[1:]:
        line = raw.rstrip("\r")
        if run is not None:
            m = _RUN_END.match(line[len(MARK):]) if line.startswith(MARK) else None
            if m and int(m[1]) == run[0]:
                assert cur is not None
                cur["runs"] = (*cur["runs"], BinaryRun(run[0], int(m[2]), "\n".join(run[1])))
                run = None
            else:
                run[1].append(line)
            continue
        if not line.startswith(MARK):
            continue  # stray output (e.g. a shell warning) outside any run
        body = line[len(MARK):]
        if body.startswith("model "):
            close(True)
            cur = dict(model=body[len("model "):], cooldown_s=0.0, gate_ok=True,
                       gate_waited_s=0, gate_temp_c=None, freqs_before={}, freqs_after={},
                       temps_before_c={}, temps_after_c={}, runs=())
        elif body == "done":
            close(True)
            done = True
        elif cur is None:
            continue
        elif body == "model-end":
            close(True)
        elif body.startswith("cooldown "):
            cur["cooldown_s"] = float(body.split()[1])
        elif m := _GATE.match(body):
            cur["gate_ok"] = m[1] == "ok"
            cur["gate_waited_s"] = int(m[2])
            cur["gate_temp_c"] = None if m[3] == "none" else _celsius(int(m[3]))
        elif m := _FREQ.match(body):
            target = cur["freqs_before" if m[1] == "before" else "freqs_after"]
            target[int(m[2])] = CoreFreq(_num(m[3]), _num(m[4]), _num(m[5]))
        elif m := _TEMP.match(body):
            target = cur["temps_before_c" if m[1] == "before" else "temps_after_c"]
            target[m[2]] = _celsius(int(m[3]))
        elif m := _RUN_BEGIN.match(body):
            run = (int(m[1]), [])
    if run is not None and cur is not None:
        cur["runs"] = (*cur["runs"], BinaryRun(run[0], -1, "\n".join(run[1])))
    close(False)
    return models, done


def throttle_reasons(report: ModelReport, max_temp_c: float) -> list[str]:
    """Why the model's runs may have run on a throttled CPU (empty: they did not).

    A big core whose ``scaling_max_freq`` is below its ``cpuinfo_max_freq`` (before or after
    the runs) was capped by the thermal governor (or by a power mode); a watched zone above
    ``max_temp_c`` after the runs means the runs heated the phone into its throttling range;
    a thermal gate that timed out means the runs started hot.
    """
    reasons = []
    for phase, freqs in (("before", report.freqs_before), ("after", report.freqs_after)):
        for core, f in sorted(freqs.items()):
            if f.max_khz is not None and f.hw_max_khz is not None and f.max_khz < f.hw_max_khz:
                reasons.append(
                    f"cpu{core} capped at {f.max_khz / 1000:.0f} of {f.hw_max_khz / 1000:.0f} "
                    f"MHz {phase} the runs"
                )
    hot = {z: t for z, t in report.temps_after_c.items() if t > max_temp_c}
    if hot:
        zone = max(hot, key=hot.__getitem__)
        reasons.append(f"{zone} at {hot[zone]:.1f} °C after the runs (limit {max_temp_c:g} °C)")
    if not report.gate_ok:
        reasons.append(
            f"the phone did not cool down to the gate temperature in {report.gate_waited_s} s"
        )
    return reasons

