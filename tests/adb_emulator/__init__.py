"""An emulated Android phone for tests, at the lowest level: its adbd.

No phone is attached to the test machines, so :class:`EmulatedDevice` stands in for one where
the phone itself would be and nowhere higher: it listens on 127.0.0.1 and speaks the ADB
transport protocol (CNXN, OPEN/OKAY/WRTE/CLSE, no AUTH) to the *real* adb server, which reaches
it through ``adb connect 127.0.0.1:PORT``; the real adbutils library then talks to that server.
Everything above the wire (adb server, adbutils, the code under test) is the production stack.

Services: ``shell:`` and ``exec:`` (raw-mode PTY, stderr merged, no exit code, as adbd on
Android 7+), ``shell,v2,...:`` (shell protocol v2: split stdout/stderr, stdin, exit code; ``pty``
or ``raw``), ``sync:`` (STAT, STA2, LST2, LIST, LIS2, SEND, RECV, QUIT with adbd's replies and
error messages). The CNXN banner advertises ``shell_v2,cmd,stat_v2,ls_v2``.

The phone's filesystem is a sandbox folder (see :mod:`.sandbox` for the layout, how commands
see device paths, and the limits): an Exynos 9820 Galaxy S10 with cpufreq/thermal sysfs files,
``/proc/cpuinfo``, ``getprop``/``taskset``/``nproc`` stand-ins, writable ``/data/local/tmp`` and
``/sdcard``. Faults (pulled cable, frozen device, refused push, cores hot-plugged off) are set
through :class:`Faults`; :meth:`~.device.EmulatedDevice.set_offline` hot-plugs cores at once.

Example::

    with EmulatedDevice(tmp_path / "phone") as phone:
        subprocess.run([adb, "-P", str(server_port), "connect", phone.serial], check=True)
        device = adbutils.AdbClient(port=server_port).device(phone.serial)
        assert device.prop.model == "SM-G973F"

pytest fixtures doing this with a private adb server are in :mod:`.fixtures`. Modules:
:mod:`.device` (:class:`~.device.EmulatedDevice`, :class:`~.device.Faults`), :mod:`.transport`
(connections and streams), :mod:`.protocol` (the wire formats), :mod:`.services` (``sync:``) and
:mod:`.shell` (``shell:``/``exec:``), :mod:`.sandbox` (the phone's filesystem),
:mod:`.runners` (how commands see it), :mod:`.standin` (the stand-in ``benchmark_model``).
"""
