#!/system/bin/sh
# donnav2 device-info collector. POSIX sh for Android's mksh + toybox (checked with
# `shellcheck -s sh`). Prints sections, each opened by a line "@@donna section NAME":
#   getprop       Android's getprop output, unchanged ("[key]: [value]")
#   cpu_max_freq  "cpuN MAXKHZ" (cpuinfo_max_freq; "cpuN ?" if unreadable)
#   cpu_governor  "cpuN GOVERNOR" (scaling_governor; "cpuN ?" if unreadable)
#   thermal       "TYPE VALUE" per thermal zone (temp in millidegrees; TYPE alone if unreadable)
# and "@@donna end" last. Parsed by latency.android.report.parse_device_info.

read_first() {
    # first line of file $1, or "?" when it cannot be read
    v='?'
    if [ -r "$1" ]; then
        IFS= read -r v < "$1" || true
    fi
    printf '%s' "${v:-?}"
}

echo "@@donna section getprop"
getprop
echo "@@donna section cpu_max_freq"
for c in /sys/devices/system/cpu/cpu[0-9]*; do
    [ -d "$c" ] || continue
    echo "${c##*/} $(read_first "$c/cpufreq/cpuinfo_max_freq")"
done
echo "@@donna section cpu_governor"
for c in /sys/devices/system/cpu/cpu[0-9]*; do
    [ -d "$c" ] || continue
    echo "${c##*/} $(read_first "$c/cpufreq/scaling_governor")"
done
echo "@@donna section thermal"
for z in /sys/class/thermal/thermal_zone*; do
    [ -d "$z" ] || continue
    t=$(read_first "$z/type")
    v=$(read_first "$z/temp")
    if [ "$v" = '?' ]; then
        echo "$t"
    else
        echo "$t $v"
    fi
done
echo "@@donna end"
