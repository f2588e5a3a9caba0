"""Android phones as latency devices: parsing what the phone prints, and what each phone is.

* :mod:`latency.android.benchmark_output` turns the text of TFLite's ``benchmark_model``
  tool (the official ``android_aarch64`` prebuilt, run over ``adb shell``) into numbers;
* :mod:`latency.android.profiles` knows the phones we measure on (big cores, ``taskset``
  mask, thermal zones to watch) and parses the device-info text the device scripts print;
* :mod:`latency.android.errors` holds the domain exceptions of both.

Everything here is pure (text in, frozen dataclasses out) and imports nothing heavy, so it
can be used and tested without a phone, adb, TensorFlow or numpy.
"""
