"""Android phones as latency devices.

Pure (text in, frozen dataclasses out; nothing heavy imported, testable without a phone):

* :mod:`latency.android.benchmark_output` turns the text of TFLite's ``benchmark_model``
  tool (the official ``android_aarch64`` prebuilt, run over ``adb shell``) into numbers;
* :mod:`latency.android.phones` knows the phones we measure on (big cores, ``taskset``
  mask, thermal zones to watch) and parses the device-info text the device scripts print;
* :mod:`latency.android.run_report` parses what ``device_scripts/*.sh`` print;
* :mod:`latency.android.binary` finds the benchmark binary and checks its ELF ABI;
* :mod:`latency.android.errors` holds the domain exceptions.

Device I/O: :mod:`latency.android.device` (:class:`AndroidDevice`, the one class that talks
adb), :mod:`latency.android.measure` (the timing protocol on a phone) and
:mod:`latency.android.run` (several phones in parallel, whole-model measurement).
"""
