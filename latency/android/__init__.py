"""Android phones as latency devices.

Pure (text in, frozen dataclasses out; nothing heavy imported, testable without a phone):

* :mod:`latency.android.benchmark_output` turns the text of TFLite's ``benchmark_model``
  tool (the official ``android_aarch64`` prebuilt, run over ``adb shell``) into numbers;
* :mod:`latency.android.phones` knows the phones we measure on (big cores, ``taskset``
  mask, thermal zones to watch) and parses the device-info text the device scripts print;
* :mod:`latency.android.run_report` parses what ``device_scripts/*.sh`` print;
* :mod:`latency.android.binary` finds the benchmark binary and checks its ELF ABI;
* :mod:`latency.android.errors` holds the domain exceptions.

Device I/O: :mod:`latency.android.config` (:class:`AdbConfig`, the phone settings),
:mod:`latency.android.device` (:class:`AndroidDevice`, the one class that talks adb),
:mod:`latency.android.measure` (:class:`PhoneBenchmark`, the phone as a latency device, and
the timing protocol, which drives an :class:`AndroidDevice`). Imports point one way:
measure -> device -> config. Several phones in parallel and whole-model timing are in
:mod:`latency.jobs` (device-independent). A phone is obtained by name from
:func:`latency.devices.get_device` / :func:`latency.devices.open_device`.
"""
