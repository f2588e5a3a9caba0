"""ADB wire formats as pure functions: transport messages, shell protocol v2, file sync.

References (AOSP ``packages/modules/adb``): ``protocol.txt`` (transport), ``SYNC.TXT`` and
``file_sync_protocol.h`` (sync), ``shell_protocol.h`` (shell v2). Everything is little-endian.
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass
from typing import NamedTuple


def _fourcc(text: str) -> int:
    return int.from_bytes(text.encode("ascii"), "little")


# -- transport ---------------------------------------------------------------------------------

A_SYNC = _fourcc("SYNC")
A_CNXN = _fourcc("CNXN")
A_OPEN = _fourcc("OPEN")
A_OKAY = _fourcc("OKAY")
A_CLSE = _fourcc("CLSE")
A_WRTE = _fourcc("WRTE")
A_AUTH = _fourcc("AUTH")
A_STLS = _fourcc("STLS")

A_VERSION = 0x01000001  # the version that lets either side skip the data checksum
MAX_PAYLOAD = 1024 * 1024  # what adbd advertises in its CNXN
HEADER_SIZE = 24
_HEADER = struct.Struct("<6I")

DEFAULT_FEATURES = ("shell_v2", "cmd", "stat_v2", "ls_v2")


class ProtocolError(Exception):
    """The peer sent bytes that are not a valid ADB message."""


class StreamClosed(Exception):
    """The stream (or its whole connection) is gone: nothing more can be sent on it."""


class Header(NamedTuple):
    command: int
    arg0: int
    arg1: int
    length: int
    check: int
    magic: int


def command_name(command: int) -> str:
    """``A_CNXN`` -> ``'CNXN'`` (or the hex value of an unknown command)."""
    raw = command.to_bytes(4, "little")
    return raw.decode("ascii") if raw.isalpha() else f"0x{command:08x}"


def checksum(payload: bytes) -> int:
    """The legacy data checksum (byte sum); peers at ``A_VERSION`` accept 0 as well."""
    return sum(payload) & 0xFFFFFFFF


def pack_message(command: int, arg0: int, arg1: int, payload: bytes = b"") -> bytes:
    """One transport message: the 24-byte header followed by the payload."""
    header = _HEADER.pack(
        command, arg0, arg1, len(payload), checksum(payload), command ^ 0xFFFFFFFF
    )
    return header + payload


def parse_header(raw: bytes, max_payload: int = MAX_PAYLOAD) -> Header:
    """Parse and validate a 24-byte message header (magic, payload size)."""
    if len(raw) != HEADER_SIZE:
        raise ProtocolError(f"header of {len(raw)} bytes, expected {HEADER_SIZE}")
    header = Header(*_HEADER.unpack(raw))
    if header.magic != header.command ^ 0xFFFFFFFF:
        raise ProtocolError(f"bad magic for command {command_name(header.command)}")
    if header.length > max_payload:
        raise ProtocolError(f"payload of {header.length} bytes exceeds {max_payload}")
    return header


def connect_banner(props: dict[str, str], features: tuple[str, ...] = DEFAULT_FEATURES) -> bytes:
    """adbd's CNXN payload: ``device::ro.product.name=..;ro.product.model=..;..;features=..``."""
    parts = [
        f"{key}={props.get(key, '')};"
        for key in ("ro.product.name", "ro.product.model", "ro.product.device")
    ]
    return ("device::" + "".join(parts) + "features=" + ",".join(features)).encode()


def parse_banner(payload: bytes) -> tuple[str, dict[str, str]]:
    """Split a CNXN banner (``host::features=a,b`` or a device's) into its type and fields."""
    text = payload.rstrip(b"\0").decode("utf-8", "replace")
    kind, _, rest = text.partition("::")
    fields: dict[str, str] = {}
    for item in rest.split(";"):
        key, sep, value = item.partition("=")
        if sep:
            fields[key] = value
    return kind.partition(":")[0], fields


# -- services ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceRequest:
    """A parsed OPEN destination such as ``shell,v2,TERM=xterm,raw:ls``."""

    kind: str  # "shell", "exec", "sync" or "unsupported"
    name: str  # the destination as sent, without the trailing NUL
    command: str = ""
    shell_protocol: bool = False  # shell protocol v2 framing (exit codes, split stderr)
    use_pty: bool = False
    raw_pty: bool = False  # a PTY in raw mode: no echo, no newline translation
    term: str | None = None


def parse_service(name: str) -> ServiceRequest:
    """Parse an OPEN destination the way adbd's ``daemon_service_to_fd`` does.

    ``shell[,arg...]:cmd``: args ``v2`` (shell protocol), ``raw``/``pty`` and ``TERM=..``. Without
    an explicit type an empty command gets a PTY, a command gets raw; raw without the shell
    protocol becomes a raw-mode PTY (Android 7+), so stderr is merged into stdout. ``exec:cmd``
    is raw without the shell protocol, i.e. the same raw-mode PTY.
    """
    name = name.rstrip("\0")
    if name.startswith("exec:"):
        return ServiceRequest(
            "exec", name, name[len("exec:"):], use_pty=True, raw_pty=True
        )
    if name.startswith("sync:"):
        return ServiceRequest("sync", name)
    if name.startswith("shell") and name[len("shell"):len("shell") + 1] in (":", ","):
        head, _, command = name[len("shell"):].partition(":")
        args = [a for a in head.split(",") if a]
        v2 = "v2" in args
        term = next((a[len("TERM="):] for a in args if a.startswith("TERM=")), None)
        if "pty" in args:
            pty_type = True
        elif "raw" in args:
            pty_type = False
        else:
            pty_type = command == ""
        raw_pty = not pty_type and not v2
        return ServiceRequest(
            "shell", name, command, shell_protocol=v2, use_pty=pty_type or raw_pty,
            raw_pty=raw_pty, term=term,
        )
    return ServiceRequest("unsupported", name)


# -- shell protocol v2 -------------------------------------------------------------------------

SHELL_STDIN = 0
SHELL_STDOUT = 1
SHELL_STDERR = 2
SHELL_EXIT = 3
SHELL_CLOSE_STDIN = 4
SHELL_WINDOW_SIZE = 5
_SHELL_HEADER = struct.Struct("<BI")
SHELL_MAX_PACKET = MAX_PAYLOAD


def pack_shell_packet(packet_id: int, payload: bytes) -> bytes:
    """``id`` (1 byte) + payload length (4 bytes LE) + payload."""
    return _SHELL_HEADER.pack(packet_id, len(payload)) + payload


def pack_shell_exit(code: int) -> bytes:
    """The exit packet: its payload is one byte."""
    return pack_shell_packet(SHELL_EXIT, bytes([code & 0xFF]))


class ShellPacketParser:
    """Reassembles shell v2 packets that arrive split or merged across WRTE payloads."""

    def __init__(self, max_packet: int = SHELL_MAX_PACKET) -> None:
        self._buffer = bytearray()
        self._max = max_packet

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        packets: list[tuple[int, bytes]] = []
        while len(self._buffer) >= _SHELL_HEADER.size:
            packet_id, length = _SHELL_HEADER.unpack_from(self._buffer)
            if length > self._max:
                raise ProtocolError(f"shell packet of {length} bytes")
            end = _SHELL_HEADER.size + length
            if len(self._buffer) < end:
                break
            packets.append((packet_id, bytes(self._buffer[_SHELL_HEADER.size:end])))
            del self._buffer[:end]
        return packets


def parse_window_size(payload: bytes) -> tuple[int, int, int, int] | None:
    """``"rows x cols,x_pixels x y_pixels"`` (``%dx%d,%dx%d``) -> the four numbers."""
    try:
        chars, _, pixels = payload.rstrip(b"\0").decode("ascii").partition(",")
        rows, cols = (int(v) for v in chars.split("x"))
        xpix, ypix = (int(v) for v in pixels.split("x")) if pixels else (0, 0)
    except ValueError:
        return None
    return rows, cols, xpix, ypix


# -- file sync ---------------------------------------------------------------------------------

ID_LSTAT_V1 = b"STAT"
ID_STAT_V2 = b"STA2"
ID_LSTAT_V2 = b"LST2"
ID_LIST_V1 = b"LIST"
ID_LIST_V2 = b"LIS2"
ID_DENT_V1 = b"DENT"
ID_DENT_V2 = b"DNT2"
ID_SEND_V1 = b"SEND"
ID_RECV_V1 = b"RECV"
ID_DONE = b"DONE"
ID_DATA = b"DATA"
ID_OKAY = b"OKAY"
ID_FAIL = b"FAIL"
ID_QUIT = b"QUIT"

SYNC_DATA_MAX = 64 * 1024
SYNC_PATH_MAX = 1024
SYNC_REQUEST = struct.Struct("<4sI")  # id + path length (or DATA size, or DONE mtime)
_STAT_V1 = struct.Struct("<4sIII")
_STAT_V2 = struct.Struct("<4sIQQIIIIQqqq")
_DENT_V1 = struct.Struct("<4sIIII")
_DENT_V2 = struct.Struct("<4sIQQIIIIQqqqI")


def _u32(value: int) -> int:
    return value & 0xFFFFFFFF


def pack_sync_request(sync_id: bytes, value: int, data: bytes = b"") -> bytes:
    """``id`` + a u32 (path length, DATA size, DONE mtime, FAIL message length) + data."""
    return SYNC_REQUEST.pack(sync_id, _u32(value)) + data


def pack_sync_fail(message: str) -> bytes:
    raw = message.encode("utf-8", "replace")
    return pack_sync_request(ID_FAIL, len(raw), raw)


def pack_sync_okay() -> bytes:
    return pack_sync_request(ID_OKAY, 0)


def pack_sync_data(data: bytes) -> bytes:
    return pack_sync_request(ID_DATA, len(data), data)


def pack_sync_done(value: int = 0) -> bytes:
    return pack_sync_request(ID_DONE, value)


def pack_stat_v1(st: os.stat_result | None) -> bytes:
    """``STAT`` reply (lstat): mode, size, mtime; all zero when the path does not exist."""
    if st is None:
        return _STAT_V1.pack(ID_LSTAT_V1, 0, 0, 0)
    return _STAT_V1.pack(ID_LSTAT_V1, st.st_mode, _u32(st.st_size), _u32(int(st.st_mtime)))


def _v2_fields(st: os.stat_result) -> tuple[int, ...]:
    return (
        st.st_dev, st.st_ino, st.st_mode, _u32(st.st_nlink), _u32(st.st_uid), _u32(st.st_gid),
        st.st_size, int(st.st_atime), int(st.st_mtime), int(st.st_ctime),
    )


def pack_stat_v2(sync_id: bytes, st: os.stat_result | None, error: int = 0) -> bytes:
    """``STA2``/``LST2`` reply (the request id is echoed); ``error`` is an errno on failure."""
    if st is None:
        return _STAT_V2.pack(sync_id, error, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    return _STAT_V2.pack(sync_id, 0, *_v2_fields(st))


def pack_dent_v1(name: bytes, st: os.stat_result) -> bytes:
    return _DENT_V1.pack(
        ID_DENT_V1, st.st_mode, _u32(st.st_size), _u32(int(st.st_mtime)), len(name)
    ) + name


def pack_dent_v2(name: bytes, st: os.stat_result | None, error: int = 0) -> bytes:
    if st is None:
        fields: tuple[int, ...] = (error, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    else:
        fields = (0, *_v2_fields(st))
    return _DENT_V2.pack(ID_DENT_V2, *fields, len(name)) + name


def pack_list_done(v2: bool) -> bytes:
    """The end of a listing: a whole all-zero dent whose id is ``DONE``."""
    if v2:
        return _DENT_V2.pack(ID_DONE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    return _DENT_V1.pack(ID_DONE, 0, 0, 0, 0)


def parse_send_spec(spec: str) -> tuple[str, int]:
    """``SEND`` carries ``"/some/path,<mode>"``; the mode is parsed like ``strtoul(.., 0)``."""
    path, comma, mode_text = spec.rpartition(",")
    if not comma:
        raise ValueError("missing , in ID_SEND_V1")
    text = mode_text.strip().lower()
    try:
        if text.startswith("0x"):
            mode = int(text[2:], 16)
        elif text.startswith("0") and len(text) > 1:
            mode = int(text[1:], 8)
        else:
            mode = int(text or "0", 10)
    except ValueError:
        raise ValueError("bad mode") from None
    return path, mode


def pushed_file_mode(mode: int) -> int:
    """adbd keeps the permission bits and copies the user's bits to group and other."""
    mode &= 0o777
    mode |= (mode >> 3) & 0o070
    mode |= (mode >> 3) & 0o007
    return mode


def is_symlink_mode(mode: int) -> bool:
    return stat.S_ISLNK(mode)
