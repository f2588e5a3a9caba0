#!/system/bin/sh
# donnav2 benchmark runner. POSIX sh for Android's mksh + toybox (checked with
# `shellcheck -s sh`). For each MODEL: cool down, wait for the thermal gate, record the big
# cores' frequencies and the watched temperatures, run benchmark_model RUNS times pinned to
# the big cores (taskset), record frequencies and temperatures again. Everything goes to the
# REPORT file (pulled by the host and parsed by latency.android.report.parse_run_report);
# stdout gets one progress line per step, so the host can tell a slow phone from a dead one.
#
# usage: run_benchmark.sh -b BINARY -o REPORT -m MASK -k CORES -z ZONES -t THREADS
#            -w WARMUP_RUNS -n NUM_RUNS -r RUNS -s MIN_SECS -c COOLDOWN_S -g GATE_MC
#            -G GATE_TIMEOUT_S -T RUN_TIMEOUT_S MODEL...
#   MASK   taskset mask in hex (e.g. c0)      CORES  big cores, comma-separated (e.g. 6,7)
#   ZONES  thermal zone types to watch, comma-separated (empty: none)
#   GATE_MC  start a model only when every watched zone is at or below this (millidegrees C);
#            after GATE_TIMEOUT_S seconds of waiting, start anyway and say so in the report
#   COOLDOWN_S  seconds to sleep before each model but the first (0: none)
#   RUN_TIMEOUT_S  a benchmark_model run taking longer is killed (exit status 124)
#
# Before and after every run the CORES are checked against /sys/devices/system/cpu/online
# (phones hot-plug big cores off when saving power or hot; taskset then fails with "Invalid
# argument", or pins to the remaining few). If one is offline the script prints
#   @@donna cores-offline cores=OFFLINE online=LIST
# (OFFLINE: those of CORES, comma-separated; LIST: the kernel's online list, ? if unreadable)
# to stdout and the report, and exits with status 5: the model being run is not finished.

set -u
binary='' report='' mask='' cores='' zones='' threads=1 warmup=1 num_runs=50 runs=1
min_secs=0 cooldown=0 gate_mc=40000 gate_timeout=120 run_timeout=300
while getopts b:o:m:k:z:t:w:n:r:s:c:g:G:T: opt; do
    case $opt in
        b) binary=$OPTARG ;;
        o) report=$OPTARG ;;
        m) mask=$OPTARG ;;
        k) cores=$OPTARG ;;
        z) zones=$OPTARG ;;
        t) threads=$OPTARG ;;
        w) warmup=$OPTARG ;;
        n) num_runs=$OPTARG ;;
        r) runs=$OPTARG ;;
        s) min_secs=$OPTARG ;;
        c) cooldown=$OPTARG ;;
        g) gate_mc=$OPTARG ;;
        G) gate_timeout=$OPTARG ;;
        T) run_timeout=$OPTARG ;;
        *) echo "run_benchmark.sh: bad option" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if [ -z "$binary" ] || [ -z "$report" ] || [ -z "$mask" ] || [ $# -eq 0 ]; then
    echo "run_benchmark.sh: -b BINARY, -o REPORT, -m MASK and a MODEL are required" >&2
    exit 2
fi
if [ ! -x "$binary" ]; then
    echo "run_benchmark.sh: benchmark binary not executable: $binary" >&2
    exit 3
fi

read_first() {
    v='?'
    if [ -r "$1" ]; then
        IFS= read -r v < "$1" || true
    fi
    printf '%s' "${v:-?}"
}

to_mc() {
    # a thermal reading in millidegrees C (some vendor zones report degrees), or nothing
    case $1 in
        ''|*[!0-9-]*|-) return 1 ;;
    esac
    if [ "$1" -lt 200 ] && [ "$1" -gt -200 ]; then
        echo $(($1 * 1000))
    else
        echo "$1"
    fi
}

watched() {
    # "TYPE MILLIDEGREES" for every watched zone with a readable temperature
    [ -n "$zones" ] || return 0
    for z in /sys/class/thermal/thermal_zone*; do
        [ -d "$z" ] || continue
        t=$(read_first "$z/type")
        case ",$zones," in
            *",$t,"*) ;;
            *) continue ;;
        esac
        mc=$(to_mc "$(read_first "$z/temp")") || continue
        echo "$t $mc"
    done
}

hottest() {
    h=''
    for mc in $(watched | while read -r _ m; do echo "$m"; done); do
        if [ -z "$h" ] || [ "$mc" -gt "$h" ]; then
            h=$mc
        fi
    done
    echo "$h"
}

record() {
    # frequencies of the big cores and watched temperatures, tagged $1 (before/after)
    old_ifs=$IFS
    IFS=,
    for c in $cores; do
        f=/sys/devices/system/cpu/cpu$c/cpufreq
        echo "@@donna freq $1 cpu$c cur=$(read_first "$f/scaling_cur_freq")" \
            "max=$(read_first "$f/scaling_max_freq") hw=$(read_first "$f/cpuinfo_max_freq")"
    done
    IFS=$old_ifs
    watched | while read -r t mc; do
        echo "@@donna temp $1 $t $mc"
    done
}

gate() {
    waited=0
    while :; do
        h=$(hottest)
        if [ -z "$h" ] || [ "$h" -le "$gate_mc" ]; then
            echo "@@donna gate ok waited=$waited temp_mc=${h:-none}"
            return 0
        fi
        if [ "$waited" -ge "$gate_timeout" ]; then
            echo "@@donna gate timeout waited=$waited temp_mc=$h"
            return 0
        fi
        echo "@@donna progress gate waiting temp_mc=$h waited=$waited" >&3
        sleep 1
        waited=$((waited + 1))
    done
}

cpu_dir=/sys/devices/system/cpu

core_online() {
    # is core $1 in the kernel CPU list $2 (e.g. 0-3,6)? With no list ("?"), its cpuN/online
    # file says (cpu0 often has none: online)
    if [ "$2" = '?' ]; then
        [ "$(read_first "$cpu_dir/cpu$1/online")" != 0 ]
        return
    fi
    _saved_ifs=$IFS
    IFS=,
    for _item in $2; do
        _lo=${_item%-*}
        _hi=${_item#*-}
        case $_lo$_hi in
            ''|*[!0-9]*) continue ;;
        esac
        if [ "$1" -ge "$_lo" ] && [ "$1" -le "$_hi" ]; then
            IFS=$_saved_ifs
            return 0
        fi
    done
    IFS=$_saved_ifs
    return 1
}

offline_cores() {
    # the CORES that are offline now, comma-separated (empty: all online)
    _list=$(read_first "$cpu_dir/online")
    _off=''
    _cores_ifs=$IFS
    IFS=,
    for _core in $cores; do
        case $_core in
            ''|*[!0-9]*) continue ;;
        esac
        if ! core_online "$_core" "$_list"; then
            _off=${_off:+$_off,}$_core
        fi
    done
    IFS=$_cores_ifs
    printf '%s' "$_off"
}

check_cores() {
    # exit 5 with the cores-offline line (stdout and report) when a pinned core is offline
    _off=$(offline_cores)
    [ -z "$_off" ] && return 0
    _line="@@donna cores-offline cores=$_off online=$(read_first "$cpu_dir/online")"
    echo "$_line"
    echo "$_line" >&3
    exit 5
}

if command -v timeout >/dev/null 2>&1; then
    limit() { timeout "$run_timeout" "$@"; }
else
    limit() { "$@"; }
fi

exec 3>&1
: > "$report" || { echo "run_benchmark.sh: cannot write report $report" >&2; exit 4; }
{
    echo "@@donna report 1"
    first=1
    for model in "$@"; do
        echo "@@donna model $model"
        if [ "$first" -eq 0 ] && [ "$cooldown" != 0 ]; then
            echo "@@donna progress cooldown $cooldown" >&3
            sleep "$cooldown"
        fi
        first=0
        echo "@@donna cooldown $cooldown"
        gate
        record before
        i=1
        while [ "$i" -le "$runs" ]; do
            check_cores
            echo "@@donna progress run $i" >&3
            echo "@@donna run $i begin"
            limit taskset "$mask" "$binary" --graph="$model" --num_threads="$threads" \
                --warmup_runs="$warmup" --num_runs="$num_runs" --min_secs="$min_secs" \
                --warmup_min_secs="$min_secs" 2>&1
            echo "@@donna run $i end exit=$?"
            check_cores  # a core switched off during the run: it may have run elsewhere
            i=$((i + 1))
        done
        record after
        echo "@@donna model-end"
    done
    echo "@@donna done"
} >> "$report" 2>&1
echo "@@donna progress done" >&3
