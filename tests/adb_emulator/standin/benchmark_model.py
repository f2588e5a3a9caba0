"""The stand-in benchmark_model's body: the real tool's flags and output format, TFLite inside.

Flags (as the real tool spells them): --graph, --num_threads, --warmup_runs, --num_runs,
--min_secs, --warmup_min_secs, --max_secs, --run_delay, --use_xnnpack, --use_gpu, --use_nnapi,
--enable_op_profiling, --verbose. Output lines are the current nightly's (``INFO: `` prefix,
``p5= median= p95=`` in the stats lines), numbers formatted as C++ ostream prints them.

Faults for tests come from ``/system/etc/benchmark_model_fault`` (read at every start), one
rule a line, ``ACTION MATCH [ARG]`` where MATCH is a substring of --graph or ``*``:
``crash MATCH`` dies of SIGSEGV during the warmup runs, ``exit MATCH CODE`` stops with an
ERROR line and exit status CODE, ``sleep MATCH SECONDS`` sleeps before starting (and first
writes the graph to ``/data/local/tmp/benchmark_model.sleeping``, so a test can act while it
runs: see :func:`..standin.when_sleeping`).
"""

from __future__ import annotations

import os
import signal
import statistics
import sys
import time

FAULTS = os.environ.get("ANDROID_ROOT_SANDBOX", "") + "/system/etc/benchmark_model_fault"
SLEEPING = os.environ.get("ANDROID_ROOT_SANDBOX", "") + "/data/local/tmp/benchmark_model.sleeping"
KNOWN = {
    "graph": str, "num_threads": int, "warmup_runs": int, "num_runs": int, "min_secs": float,
    "warmup_min_secs": float, "max_secs": float, "run_delay": float, "use_xnnpack": str,
    "use_gpu": str, "use_nnapi": str, "enable_op_profiling": str, "verbose": str,
}


def g(x: float) -> str:
    """A number as C++ ``std::ostream << double`` prints it (6 significant digits)."""
    text = f"{x:.6g}"
    if "e" in text:
        mantissa, exp = text.split("e")
        text = f"{mantissa}e{exp[0]}{int(exp[1:]):02d}"
    return text


def parse(argv: list[str]) -> dict[str, object]:
    flags: dict[str, object] = {
        "graph": "", "num_threads": -1, "warmup_runs": 1, "num_runs": 50, "min_secs": 1.0,
        "warmup_min_secs": 0.5, "max_secs": 150.0, "run_delay": -1.0,
    }
    unconsumed = []
    for arg in argv:
        name, eq, value = arg.lstrip("-").partition("=")
        if not arg.startswith("--") or not eq or name not in KNOWN:
            unconsumed.append(arg)
            continue
        try:
            flags[name] = KNOWN[name](value)
        except ValueError:
            unconsumed.append(arg)
    if unconsumed:
        print(f"Unconsumed cmdline flags: {' '.join(unconsumed)}")
    return flags


def fault(graph: str) -> tuple[str, str] | None:
    try:
        lines = open(FAULTS).read().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and (parts[1] == "*" or parts[1] in graph):
            return parts[0], parts[2] if len(parts) > 2 else ""
    return None


def stats_line(samples: list[float]) -> str:
    ints = [round(s) for s in samples]
    if len(ints) == 1:
        return f"count=1 curr={ints[0]}"
    std = statistics.pstdev(samples)
    q = statistics.quantiles(samples, n=20, method="inclusive")
    return (
        f"count={len(ints)} first={ints[0]} curr={ints[-1]} min={min(ints)} max={max(ints)} "
        f"avg={g(statistics.fmean(samples))} std={round(std)} p5={round(q[0])} "
        f"median={round(statistics.median(samples))} p95={round(q[-1])}"
    )


def timed(run, n: int, min_secs: float, max_secs: float) -> list[float]:
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < n or time.perf_counter() - start < min_secs:
        t0 = time.perf_counter_ns()
        run()
        samples.append((time.perf_counter_ns() - t0) / 1000.0)
        if time.perf_counter() - start > max_secs:
            break
    return samples


def main(argv: list[str]) -> int:
    out = sys.stdout
    print("INFO: STARTING!", file=out)
    flags = parse(argv)
    graph = str(flags["graph"])
    threads = int(flags["num_threads"])  # type: ignore[arg-type]
    for label, key in (("Min num runs", "num_runs"), ("Num threads", "num_threads"),
                       ("Min warmup runs", "warmup_runs"), ("Graph", "graph")):
        print(f"INFO: {label}: [{flags[key]}]")
    print("INFO: Signature to run: []")
    if not graph:
        print("ERROR: Please specify the name of your TF Lite input file with --graph")
        print("ERROR: Benchmarking failed.")
        return 1
    action = fault(graph)
    if action and action[0] == "sleep":
        with open(SLEEPING, "w") as marker:  # tests act "while a model runs" on this
            marker.write(graph + "\n")
        time.sleep(float(action[1] or 60))
    if action and action[0] == "exit":
        print(f"ERROR: Failed to allocate tensors for {graph} (injected fault)")
        print("ERROR: Benchmarking failed.")
        sys.stdout.flush()
        return int(action[1] or 1)
    print(f"INFO: #threads used for CPU inference: [{max(threads, 1)}]")
    if not os.path.isfile(graph):
        print(f"ERROR: Could not open '{graph}'.")
        print("ERROR: Benchmarking failed.")
        return 1
    t0 = time.perf_counter()
    try:
        from ai_edge_litert.interpreter import Interpreter  # starts in 0.2 s (TF: 5 s)
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    import numpy as np

    interp = Interpreter(model_path=graph, num_threads=max(threads, 1))
    interp.allocate_tensors()
    for detail in interp.get_input_details():
        x = np.random.default_rng(0).standard_normal(detail["shape"]).astype(detail["dtype"])
        interp.set_tensor(detail["index"], x)
    init_us = (time.perf_counter() - t0) * 1e6
    print(f"INFO: Loaded model {graph}")
    print("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
    print(f"INFO: The input model file size (MB): {g(os.path.getsize(graph) / 1e6)}")
    print(f"INFO: Initialized session in {g(init_us / 1000)}ms.")
    max_secs = float(flags["max_secs"])  # type: ignore[arg-type]
    warmup_n = int(flags["warmup_runs"])  # type: ignore[arg-type]
    print(f"INFO: Running benchmark for at least {warmup_n} iterations and at least "
          f"{g(float(flags['warmup_min_secs']))} seconds but terminate if exceeding "  # type: ignore[arg-type]
          f"{g(max_secs)} seconds.")
    sys.stdout.flush()
    if action and action[0] == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    warm = timed(interp.invoke, max(warmup_n, 1), float(flags["warmup_min_secs"]), max_secs)  # type: ignore[arg-type]
    print(f"INFO: {stats_line(warm)}\n")
    num_runs = int(flags["num_runs"])  # type: ignore[arg-type]
    print(f"INFO: Running benchmark for at least {num_runs} iterations and at least "
          f"{g(float(flags['min_secs']))} seconds but terminate if exceeding "  # type: ignore[arg-type]
          f"{g(max_secs)} seconds.")
    runs = timed(interp.invoke, max(num_runs, 1), float(flags["min_secs"]), max_secs)  # type: ignore[arg-type]
    print(f"INFO: {stats_line(runs)}\n")
    print(
        f"INFO: Inference timings in us: Init: {round(init_us)}, First inference: "
        f"{round(warm[0])}, Warmup (avg): {g(statistics.fmean(warm))}, Inference (avg): "
        f"{g(statistics.fmean(runs))}"
    )
    print("INFO: Note: as the benchmark tool itself affects memory footprint, the following is "
          "only APPROXIMATE to the actual memory footprint of the model at runtime. Take the "
          "information at your discretion.")
    print("INFO: Memory footprint delta from the start of the tool (MB): init=4.21094 "
          "overall=6.08594")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
