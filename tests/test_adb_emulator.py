"""The emulated phone (tests/adb_emulator) under the real adb server and the real adbutils.

The first tests check the wire formats without adb; the ``adb`` ones run the whole stack:
adbutils -> private adb server (real binary) -> TCP -> EmulatedDevice.
"""

from __future__ import annotations

import os
import shlex
import socket
import stat
import struct
import threading
import time
from pathlib import Path

import adbutils
import pytest
from adb_emulator import protocol as p
from adb_emulator.device import EmulatedDevice
from adb_emulator.fixtures import AdbServer, connect_device
from adb_emulator.runners import RewriteRunner
from adb_emulator.sandbox import Sandbox
from adbutils.errors import AdbError, AdbTimeout

adb = pytest.mark.adb
Phone = tuple[EmulatedDevice, adbutils.AdbDevice]

HOSTILE_NAME = "it's a \"test\"; touch HACKED $(touch HACKED2) `id` & | <x> *.txt"


# -- wire formats (no adb needed) --------------------------------------------------------------


def test_message_round_trip_and_magic() -> None:
    raw = p.pack_message(p.A_WRTE, 3, 7, b"hello")
    header = p.parse_header(raw[: p.HEADER_SIZE])
    assert (header.command, header.arg0, header.arg1, header.length) == (p.A_WRTE, 3, 7, 5)
    assert header.magic == p.A_WRTE ^ 0xFFFFFFFF and header.check == sum(b"hello")
    assert raw[p.HEADER_SIZE:] == b"hello" and p.command_name(header.command) == "WRTE"
    broken = raw[:20] + struct.pack("<I", 0)
    with pytest.raises(p.ProtocolError, match="magic"):
        p.parse_header(broken)
    with pytest.raises(p.ProtocolError, match="exceeds"):
        p.parse_header(p.pack_message(p.A_WRTE, 1, 1, b"x" * 10)[: p.HEADER_SIZE], max_payload=4)


def test_banner_and_services() -> None:
    banner = p.connect_banner({"ro.product.name": "n", "ro.product.model": "m",
                               "ro.product.device": "d"})
    assert banner == b"device::ro.product.name=n;ro.product.model=m;ro.product.device=d;" \
        b"features=shell_v2,cmd,stat_v2,ls_v2"
    kind, fields = p.parse_banner(b"host::features=shell_v2,cmd\0")
    assert kind == "host" and fields["features"] == "shell_v2,cmd"

    v2 = p.parse_service("shell,v2,TERM=xterm-256color,raw:ls -l\0")
    assert (v2.kind, v2.command, v2.shell_protocol, v2.use_pty, v2.term) == (
        "shell", "ls -l", True, False, "xterm-256color")
    v1 = p.parse_service("shell:echo a:b")
    assert (v1.command, v1.shell_protocol, v1.use_pty, v1.raw_pty) == (
        "echo a:b", False, True, True)
    interactive = p.parse_service("shell,v2,pty:")
    assert interactive.use_pty and not interactive.raw_pty and interactive.command == ""
    assert p.parse_service("exec:cat x").raw_pty
    assert p.parse_service("sync:").kind == "sync"
    assert p.parse_service("shellfoo:x").kind == "unsupported"
    assert p.parse_service("reboot:").kind == "unsupported"


def test_shell_packets_reassemble_when_split_or_merged() -> None:
    stream = p.pack_shell_packet(p.SHELL_STDIN, b"abc") + p.pack_shell_packet(
        p.SHELL_CLOSE_STDIN, b""
    ) + p.pack_shell_exit(259)
    parser = p.ShellPacketParser()
    packets = []
    for i in range(0, len(stream), 3):
        packets += parser.feed(stream[i:i + 3])
    assert packets == [(p.SHELL_STDIN, b"abc"), (p.SHELL_CLOSE_STDIN, b""), (p.SHELL_EXIT, b"\x03")]
    assert p.parse_window_size(b"24x80,640x480\0") == (24, 80, 640, 480)
    with pytest.raises(p.ProtocolError):
        p.ShellPacketParser(max_packet=4).feed(p.pack_shell_packet(1, b"12345"))


def test_sync_structures(tmp_path: Path) -> None:
    st = os.lstat(tmp_path)
    assert len(p.pack_stat_v1(st)) == 16 and p.pack_stat_v1(None) == b"STAT" + bytes(12)
    v2 = p.pack_stat_v2(p.ID_LSTAT_V2, None, 2)
    assert len(v2) == 72 and v2[:8] == b"LST2" + struct.pack("<I", 2)
    assert len(p.pack_dent_v1(b"ab", st)) == 22 and len(p.pack_dent_v2(b"ab", st)) == 78
    assert p.pack_list_done(False) == b"DONE" + bytes(16)
    assert len(p.pack_list_done(True)) == 76
    assert p.pack_sync_fail("nope") == b"FAIL" + struct.pack("<I", 4) + b"nope"
    assert p.parse_send_spec("/a,b/c,33188") == ("/a,b/c", 33188)
    assert p.parse_send_spec("/x,0755") == ("/x", 0o755)
    with pytest.raises(ValueError, match="missing ,"):
        p.parse_send_spec("/x")
    assert p.pushed_file_mode(0o644) == 0o666 and p.pushed_file_mode(0o700) == 0o777


def test_sandbox_paths_never_leave_the_root(tmp_path: Path) -> None:
    root = tmp_path / "phone"
    (root / "data/local/tmp").mkdir(parents=True)
    (root / "data/local/tmp/abs").symlink_to("/data/local")
    (root / "data/local/tmp/up").symlink_to("../../../../../..")
    box = Sandbox(root)
    assert box.resolve("/data/local/tmp/../../../../etc/passwd") == (
        "/etc/passwd", box.root / "etc/passwd")
    assert box.resolve("/data/local/tmp/abs/tmp")[0] == "/data/local/tmp"
    assert box.resolve("/data/local/tmp/up/etc")[0] == "/etc"
    assert box.resolve("/data/local/tmp/abs", follow_last=False)[0] == "/data/local/tmp/abs"
    Sandbox.check_writable("/data/local/tmp/x/y")
    Sandbox.check_writable("/sdcard/x")
    with pytest.raises(PermissionError):
        Sandbox.check_writable("/data/x")
    with pytest.raises(OSError, match="Read-only"):
        Sandbox.check_writable("/system/x")


def test_rewrite_mode_rewrites_only_device_paths(tmp_path: Path) -> None:
    root = tmp_path / "phone"
    for folder in ("data/local/tmp", "sys", "system", "sdcard"):
        (root / folder).mkdir(parents=True)
    r = RewriteRunner(root)
    base = str(r.root)
    assert r.rewrite("cat /sys/x '/data/local/tmp/a b' >/sdcard/o") == (
        f"cat {base}/sys/x '{base}/data/local/tmp/a b' >{base}/sdcard/o")
    assert r.rewrite("grep -c x /proc/cpuinfo /proc/stat") == (
        f"grep -c x {base}/proc/cpuinfo /proc/stat")
    for untouched in ("ls /database", "ls ./data/x", "echo a/system/b", "ls /systemd", "ls /usr"):
        assert r.rewrite(untouched) == untouched


def test_stop_leaves_no_threads_ports_or_processes(tmp_path: Path) -> None:
    phone = EmulatedDevice(tmp_path / "phone").start()
    port = phone.port
    holder = getattr(phone.runner, "_holder", None)
    with socket_to(port):
        pass
    phone.stop()
    time.sleep(0.3)
    assert not [t for t in threading.enumerate() if t.name.startswith(f"adb-emulator-{port}-")]
    with pytest.raises(OSError):
        socket_to(port).close()
    if holder is not None:  # namespace mode: the holder (and the namespace) are gone
        assert holder.poll() is not None


def socket_to(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=2)


# -- the real adb server and adbutils ----------------------------------------------------------


@adb
def test_connect_and_properties(emulated_device: Phone, adb_server: AdbServer) -> None:
    phone, device = emulated_device
    assert device.get_state() == "device"
    assert device.prop.model == "SM-G973F"
    assert device.prop.name == "beyond1ltexx" and device.prop.device == "beyond1"
    assert device.getprop("ro.board.platform") == "exynos9820"
    assert device.getprop("ro.build.version.sdk") == "31"
    assert device.shell("getprop no.such.prop fallback") == "fallback"
    listing = device.shell("getprop").splitlines()
    assert "[ro.product.manufacturer]: [samsung]" in listing
    assert "[ro.product.cpu.abilist]: [arm64-v8a,armeabi-v7a,armeabi]" in listing
    assert {"shell_v2", "cmd", "stat_v2", "ls_v2"} <= set(device.get_features().split(","))
    devices = adb_server.run("devices", "-l").stdout
    assert f"{phone.serial}" in devices and "model:SM_G973F" in devices
    phone.set_prop("debug.emulated", "yes")
    assert device.getprop("debug.emulated") == "yes"


@adb
def test_shell_output_exit_codes_and_stdin(emulated_device: Phone, adb_server: AdbServer) -> None:
    phone, device = emulated_device
    assert device.shell("echo hello") == "hello"
    assert device.shell(["echo", "a b", "c"]) == "a b c"
    r = device.shell2("echo out; echo err >&2; exit 3", v2=True)
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    r1 = device.shell2("echo v1; echo e1 >&2; (exit 5)")  # v1: stderr merged, code via echo
    assert (r1.returncode, r1.output) == (5, "v1\ne1\n")
    assert device.shell2("kill -9 $$", v2=True).returncode == 137
    assert device.shell("[ -t 1 ] && echo tty") == "tty"  # shell: is a raw-mode PTY
    assert device.shell2("[ -t 1 ] || echo pipe", v2=True).stdout == "pipe\n"

    c = device.open_transport(timeout=5)  # shell v2 stdin and close-stdin, by hand
    try:
        c.send_command("shell,v2,raw:tr a-z A-Z; echo done >&2")
        c.check_okay()
        c.send(p.pack_shell_packet(p.SHELL_STDIN, b"hello\n"))
        c.send(p.pack_shell_packet(p.SHELL_CLOSE_STDIN, b""))
        parser, got = p.ShellPacketParser(), []
        while not got or got[-1][0] != p.SHELL_EXIT:
            got += parser.feed(c.read(4096) or b"")
    finally:
        c.close()
    out = b"".join(d for i, d in got if i == p.SHELL_STDOUT)
    err = b"".join(d for i, d in got if i == p.SHELL_STDERR)
    assert (out, err, got[-1]) == (b"HELLO\n", b"done\n", (p.SHELL_EXIT, b"\x00"))

    cli = adb_server.run("-s", phone.serial, "shell", "echo cli; exit 7")
    assert (cli.returncode, cli.stdout) == (7, "cli\n")
    piped = adb_server.run("-s", phone.serial, "shell", "tr a-z A-Z", input="abc\n")
    assert piped.stdout == "ABC\n"
    assert adb_server.run("-s", phone.serial, "exec-out", "printf 'a\\nb'").stdout == "a\nb"


@adb
def test_device_paths_look_like_an_exynos_9820(emulated_device: Phone) -> None:
    phone, device = emulated_device
    assert device.shell("pwd") == "/data/local/tmp"
    cpu = "/sys/devices/system/cpu/cpu{}/cpufreq/{}"
    maxima = [device.shell(f"cat {cpu.format(n, 'cpuinfo_max_freq')}") for n in range(8)]
    assert maxima == ["1950000"] * 4 + ["2314000"] * 2 + ["2730000"] * 2
    assert device.shell(f"cat {cpu.format(6, 'scaling_governor')}") == "schedutil"
    zones = device.shell("for z in /sys/class/thermal/thermal_zone*; do cat $z/type; done")
    assert zones.split() == ["BIG", "MID", "LITTLE"]
    assert device.shell("cat /sys/class/thermal/thermal_zone0/temp") == "38000"
    phone.host_path("/sys/class/thermal/thermal_zone0/temp").write_text("71000\n")
    assert device.shell("cat /sys/class/thermal/thermal_zone0/temp") == "71000"
    assert device.shell("grep -c ^processor /proc/cpuinfo; nproc") == "8\n8"
    assert device.shell2("taskset f0 echo pinned", v2=True).stdout == "pinned\n"
    bad = device.shell2("taskset 100 echo no", v2=True)
    assert bad.returncode == 1 and "Invalid argument" in bad.stderr
    assert device.shell2("taskset -p 0f $$", v2=True).stdout.endswith("affinity mask: f\n")
    if phone.mapping_mode == "namespace":  # the host's folders are not the phone's
        assert device.shell2("ls /work /home /tmp", v2=True).returncode != 0
        assert device.shell2("echo x > /system/x", v2=True).returncode != 0
        assert device.shell("cat /proc/cpuinfo | head -1") == "processor\t: 0"


@adb
def test_push_pull_round_trip_and_list(emulated_device: Phone, tmp_path: Path,
                                       adb_server: AdbServer) -> None:
    phone, device = emulated_device
    blob = os.urandom(300 * 1024 + 17)  # several DATA chunks and WRTE payloads
    src = tmp_path / "blob.bin"
    src.write_bytes(blob)
    assert device.sync.push(src, "/data/local/tmp/blob.bin") == len(blob)
    assert phone.host_path("/data/local/tmp/blob.bin").read_bytes() == blob
    info = device.sync.stat("/data/local/tmp/blob.bin")
    assert stat.S_ISREG(info.mode) and info.size == len(blob)
    back = tmp_path / "back.bin"
    assert device.sync.pull("/data/local/tmp/blob.bin", back) == len(blob)
    assert back.read_bytes() == blob
    device.sync.push(b"nested\n", "/data/local/tmp/new/dir/n.txt")  # adbd makes the parents
    assert device.shell("cat /data/local/tmp/new/dir/n.txt") == "nested"
    device.shell("mkdir -p /data/local/tmp/sub && printf 12345 > /data/local/tmp/small.txt")

    entries = {e.path: e for e in device.sync.list("/data/local/tmp")}
    assert set(entries) == {".", "..", "blob.bin", "new", "sub", "small.txt"}
    assert stat.S_ISDIR(entries["sub"].mode) and entries["small.txt"].size == 5
    assert device.sync.exists("/data/local/tmp/small.txt")
    assert not device.sync.exists("/data/local/tmp/missing")

    cli_back = tmp_path / "cli.bin"
    pushed = adb_server.run("-s", phone.serial, "push", str(src), "/data/local/tmp/cli.bin")
    pulled = adb_server.run("-s", phone.serial, "pull", "/data/local/tmp/cli.bin", str(cli_back))
    assert pushed.returncode == 0 and pulled.returncode == 0
    assert cli_back.read_bytes() == blob
    ls = adb_server.run("-s", phone.serial, "ls", "/data/local/tmp").stdout
    assert "cli.bin" in ls and "small.txt" in ls


@adb
def test_forbidden_and_refused_pushes_fail(emulated_device: Phone, tmp_path: Path,
                                           adb_server: AdbServer) -> None:
    phone, device = emulated_device
    for target in ("/data/secret.bin", "/data/nodir/x.bin", "/system/x.bin", "/x.bin"):
        with pytest.raises(AdbError):
            device.sync.push(b"payload", target)
        assert not phone.host_path(target).exists()
    src = tmp_path / "f.bin"
    src.write_bytes(b"payload")
    cli = adb_server.run("-s", phone.serial, "push", str(src), "/data/secret.bin")
    assert cli.returncode != 0
    assert "remote couldn't create file: Permission denied" in cli.stdout + cli.stderr
    cli = adb_server.run("-s", phone.serial, "push", str(src), "/data/nodir/x.bin")
    assert "secure_mkdirs failed: Permission denied" in cli.stdout + cli.stderr
    with pytest.raises(AdbError, match="No such file or directory"):
        device.sync.read_bytes("/data/local/tmp/../../../../etc/passwd")

    phone.faults.refuse_push = "No space left on device"
    with pytest.raises(AdbError):
        device.sync.push(b"x" * 200_000, "/data/local/tmp/full.bin")
    cli = adb_server.run("-s", phone.serial, "push", str(src), "/data/local/tmp/full.bin")
    assert cli.returncode != 0 and "No space left on device" in cli.stdout + cli.stderr
    assert not phone.host_path("/data/local/tmp/full.bin").exists()
    phone.faults.refuse_push = None
    device.sync.push(b"ok", "/data/local/tmp/full.bin")
    assert device.shell("cat /data/local/tmp/full.bin") == "ok"


@adb
def test_cable_pulled_mid_command(emulated_device: Phone, adb_server: AdbServer) -> None:
    phone, device = emulated_device
    phone.faults.drop_on_command = "DROPME"
    start = time.monotonic()
    with pytest.raises(EOFError):
        device.shell2("echo partial; sleep 5; echo never  # DROPME", timeout=10, v2=True)
    assert time.monotonic() - start < 3
    assert adb_server.wait_for_state(phone.serial, "offline", 5)
    with pytest.raises(AdbError, match="offline"):
        device.shell("echo x")
    phone.revive()  # the server reconnects by itself once the port answers
    assert adb_server.wait_for_state(phone.serial, "device", 5)
    assert device.shell("echo back") == "back"

    phone.faults.drop_on_command = "DROPV1"  # shell v1 just ends early, without an error
    assert "never" not in device.shell("echo partial; sleep 5; echo never  # DROPV1")
    assert adb_server.wait_for_state(phone.serial, "offline", 5)
    phone.revive()
    assert adb_server.wait_for_state(phone.serial, "device", 5)

    phone.faults.drop_after_bytes = 10_000
    with pytest.raises(EOFError):
        device.shell2("head -c 300000 /dev/zero", timeout=10, v2=True)
    assert adb_server.wait_for_state(phone.serial, "offline", 5)
    assert phone.drops == 3


@adb
def test_frozen_device_times_out(emulated_device: Phone) -> None:
    phone, device = emulated_device
    phone.faults.freeze_on_command = "FREEZE"
    start = time.monotonic()
    with pytest.raises(AdbTimeout):
        device.shell2("echo FREEZE", timeout=1.0, v2=True)
    assert time.monotonic() - start < 2.5 and phone.frozen
    start = time.monotonic()
    c = device.open_transport(timeout=1.0)
    try:
        with pytest.raises(AdbTimeout):
            c.send_command("shell:echo hi")
            c.check_okay()
    finally:
        c.close()
    assert time.monotonic() - start < 2.5
    phone.thaw()
    assert device.shell("echo thawed", timeout=5) == "thawed"


@adb
def test_frozen_device_outlasts_shell_timeout(emulated_device: Phone) -> None:
    """adbutils' shell(timeout=) only starts counting after the device's OKAY: a frozen device
    holds it until it thaws (here after max_freeze), so callers need open_transport/shell2."""
    phone, device = emulated_device
    phone.faults.max_freeze = 2.0
    phone.freeze()
    start = time.monotonic()
    assert device.shell("echo late", timeout=0.5) == "late"
    assert time.monotonic() - start >= 1.8


@adb
def test_hostile_names_pass_through_literally(emulated_device: Phone) -> None:
    phone, device = emulated_device
    path = f"/data/local/tmp/{HOSTILE_NAME}"
    device.shell(f"printf %s {shlex.quote(HOSTILE_NAME)} > {shlex.quote(path)}")
    assert phone.host_path(path).read_text() == HOSTILE_NAME
    assert device.shell(f"cat {shlex.quote(path)}") == HOSTILE_NAME
    assert device.shell(["cat", path]) == HOSTILE_NAME
    assert device.shell2(f"echo {shlex.quote(HOSTILE_NAME)}", v2=True).stdout == HOSTILE_NAME + "\n"
    assert device.sync.read_text(path) == HOSTILE_NAME
    device.sync.push(b"pushed", path + ".2")
    assert device.shell(f"cat {shlex.quote(path + '.2')}") == "pushed"
    assert HOSTILE_NAME in [e.path for e in device.sync.list("/data/local/tmp")]
    assert not any(phone.host_path("/data/local/tmp").glob("HACKED*"))


@adb
def test_rewrite_mapping_fallback(adb_server: AdbServer, tmp_path: Path) -> None:
    with EmulatedDevice(tmp_path / "phone", mapping="rewrite") as phone:
        try:
            device = connect_device(adb_server, phone)
            assert phone.mapping_mode == "rewrite"
            assert device.shell("pwd") == str(phone.host_path("/data/local/tmp"))
            assert device.shell("cat /sys/devices/system/cpu/cpu4/cpufreq/cpuinfo_max_freq") == (
                "2314000")
            assert device.getprop("ro.product.model") == "SM-G973F"
            assert device.shell('cat "$ANDROID_ROOT_SANDBOX/proc/cpuinfo" | head -1') == (
                "processor\t: 0")
            device.sync.push(b"rw", "/data/local/tmp/r.txt")
            assert device.shell("cat /data/local/tmp/r.txt") == "rw"
        finally:
            adb_server.run("disconnect", phone.serial)
