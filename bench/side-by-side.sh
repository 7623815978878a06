#!/usr/bin/env bash
# maas vs Synapse, same load, same machine, one server at a time.
#
#   bench/side-by-side.sh [--quick] [options]
#
# Builds maas and maas-bench (release), starts maas on a fresh data dir (127.0.0.1:8008, rate
# limits off), runs the scenario list against it, stops it; starts Synapse (bench/synapse.sh,
# 127.0.0.1:8018, rate limits lifted), runs the same list, stops it; then `maas-bench compare`.
# Scenarios run one at a time. Everything goes to the output directory.
#
# Options:
#   --quick                 small counts (a few minutes in all) instead of the full run
#   --synapse-db sqlite|postgres   Synapse's database (default sqlite)
#   --maas-db sqlite|postgres      maas's database (default sqlite; postgres: fresh db maas_bench)
#   --durable [true|false]  set MAAS_DATABASE__DURABLE (bare --durable means true);
#                           default: unset, i.e. maas's built-in default
#   --scenarios LIST        comma-separated subset of: register,login,create-rooms,join,
#                           send-1,send-10,fanout,initial-sync,media (default: all)
#   --tenants N             also run the maas-only `tenants` scenario with N tenants (default: skip)
#   --only maas|synapse     run one side only (no compare)
#   --max-seconds S         passed to maas-bench: bound of each scenario (default: maas-bench's
#                           120 s with --quick, 900 s for the full list)
#   --out DIR               output directory (default bench/results/<UTC date>-<short commit>)
#   --no-build              use the binaries already in $CARGO_TARGET_DIR/release
#   --keep-data             keep maas's data dir (default: deleted at the end)
#   -h, --help
#
# Environment: CARGO_TARGET_DIR (default $HOME/.cache/maas-target), MAAS_BENCH_HOME
# (default $HOME/.cache/maas-bench: maas data dirs, Synapse venv and data), PG_HOST/PG_PORT/
# PG_USER for PostgreSQL (127.0.0.1/5432/postgres, trust auth).
set -uo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/maas-target}
BENCH_HOME=${MAAS_BENCH_HOME:-$HOME/.cache/maas-bench}
export MAAS_BENCH_HOME=$BENCH_HOME
PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
PG_USER=${PG_USER:-postgres}
MAAS_PG_DB=maas_bench
MAAS_ADDR=127.0.0.1:8008
MAAS_URL=http://$MAAS_ADDR
SYNAPSE_URL=http://127.0.0.1:${SYNAPSE_PORT:-8018}

quick=0 synapse_db=sqlite maas_db=sqlite durable="" scenarios_filter="" tenants=0 only=""
max_seconds="" out="" build=1 keep_data=0

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }

while (($#)); do
    case $1 in
        --quick) quick=1; shift ;;
        --synapse-db) synapse_db=${2:?}; shift 2 ;;
        --maas-db) maas_db=${2:?}; shift 2 ;;
        --durable)
            if [[ ${2:-} == true || ${2:-} == false ]]; then durable=$2; shift 2; else durable=true; shift; fi ;;
        --durable=*) durable=${1#--durable=}; shift ;;
        --scenarios) scenarios_filter=${2:?}; shift 2 ;;
        --tenants) tenants=${2:?}; shift 2 ;;
        --only) only=${2:?}; shift 2 ;;
        --max-seconds) max_seconds=${2:?}; shift 2 ;;
        --out) out=${2:?}; shift 2 ;;
        --no-build) build=0; shift ;;
        --keep-data) keep_data=1; shift ;;
        -h|--help) usage 0 ;;
        *) log "unknown argument: $1"; usage 1 >&2 ;;
    esac
done
[[ $synapse_db == sqlite || $synapse_db == postgres ]] || die "--synapse-db: sqlite or postgres"
[[ $maas_db == sqlite || $maas_db == postgres ]] || die "--maas-db: sqlite or postgres"
[[ -z $durable || $durable == true || $durable == false ]] || die "--durable: true or false"
[[ -z $only || $only == maas || $only == synapse ]] || die "--only: maas or synapse"
[[ $tenants =~ ^[0-9]+$ ]] || die "--tenants: a number"

user_max_seconds=$max_seconds

# ---- the scenario list: name|maas-bench arguments (the same for both servers) ----------------
# The full list is `maas-bench suite`'s (scale 1), run scenario by scenario, except that
# initial-sync gives each repeat a distinct filter: Synapse caches identical /sync requests for
# 2 minutes (sync_response_cache_duration), so plain repeats would time its cache. `media`
# (not part of the suite) follows: uploads, downloads, thumbnails.
if ((quick)); then
    SCENARIOS=(
        "register|register --users 20"
        "login|login --users 10"
        "create-rooms|create-rooms --rooms 20 --concurrency 5"
        "join|join --users 10"
        "send-1|send --messages 100 --concurrency 1"
        "send-10|send --messages 200 --concurrency 10"
        "fanout|fanout --rounds 20"
        "initial-sync|initial-sync --rooms 30 --repeats 5 --distinct-requests"
        "media|media --files 5 --size 10MiB --concurrency 4 --images 5 --thumbnail-requests 200"
    )
    tenant_args=(--cold-samples "$(( tenants < 20 ? (tenants > 0 ? tenants : 1) : 20 ))" --idle-unload-secs 0)
else
    SCENARIOS=(
        "register|register --users 100"
        "login|login --users 100"
        "create-rooms|create-rooms --rooms 200 --concurrency 10"
        "join|join --users 100"
        "send-1|send --messages 2000 --concurrency 1"
        "send-10|send --messages 2000 --concurrency 10"
        "fanout|fanout --rounds 200"
        "initial-sync|initial-sync --rooms 300 --repeats 20 --distinct-requests"
        "media|media --files 20 --size 10MiB --concurrency 4 --images 20 --thumbnail-requests 2000"
    )
    tenant_args=()
    # Synapse needs minutes for some of these (2000 sequential sends at ~70 ms), more than
    # maas-bench's default bound of 120 s per scenario.
    max_seconds=${max_seconds:-900}
fi
if [[ -n $scenarios_filter ]]; then
    selected=()
    IFS=, read -ra wanted <<<"$scenarios_filter"
    for w in "${wanted[@]}"; do
        found=0
        for s in "${SCENARIOS[@]}"; do
            if [[ ${s%%|*} == "$w" ]]; then selected+=("$s"); found=1; fi
        done
        ((found)) || die "--scenarios: unknown scenario $w"
    done
    SCENARIOS=("${selected[@]}")
fi

# ---- output directory and run description --------------------------------------------------
commit=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)
short=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=""
if git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null | grep -q .; then
    dirty=" (work tree has uncommitted changes)"
fi
stamp=$(date -u +%Y%m%d-%H%M%S)
out=${out:-$BENCH_DIR/results/$stamp-$short}
mkdir -p "$out" || die "cannot create $out"
out=$(cd "$out" && pwd)
log "output: $out"

MAAS_BIN=$CARGO_TARGET_DIR/release/maas
BENCH_BIN=$CARGO_TARGET_DIR/release/maas-bench

if ((build)); then
    log "building (cargo build --release -p maas -p maas-bench, target $CARGO_TARGET_DIR)"
    (cd "$REPO" && cargo build --release -p maas -p maas-bench) >"$out/build.log" 2>&1 \
        || { tail -n 40 "$out/build.log" >&2; die "build failed (see $out/build.log)"; }
fi
[[ -x $MAAS_BIN ]] || die "$MAAS_BIN not found"
[[ -x $BENCH_BIN ]] || die "$BENCH_BIN not found"

if [[ $only != maas ]]; then
    "$BENCH_DIR/synapse.sh" install >"$out/synapse-install.log" 2>&1 \
        || { cat "$out/synapse-install.log" >&2; die "synapse install failed"; }
fi

psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres "$@"; }

{
    echo "date:        $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "commit:      $commit$dirty"
    echo "machine:     $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "memory:      $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "kernel:      $(uname -sr)"
    echo "load avg:    $(cut -d' ' -f1-3 /proc/loadavg) (at start)"
    echo "rustc:       $(rustc --version 2>/dev/null || echo unknown)"
    echo "maas:        $("$MAAS_BIN" --version 2>/dev/null || echo unknown), db $maas_db, MAAS_DATABASE__DURABLE=${durable:-<unset: built-in default>}, MAAS_RATE_LIMITS__ENABLED=false"
    if [[ $only != maas ]]; then
        echo "synapse:     $("$BENCH_DIR/synapse.sh" version 2>/dev/null || echo unknown) (monolith, 1 process), db $synapse_db, all rc_* limits lifted"
        echo "python:      $("$BENCH_HOME/synapse-venv/bin/python" --version 2>&1)"
    fi
    if [[ $maas_db == postgres || ($synapse_db == postgres && $only != maas) ]]; then
        echo "postgres:    $(psql_admin -Atc 'show server_version' 2>/dev/null), $(psql_admin -Atc "select string_agg(name || '=' || current_setting(name), ' ' order by name) from pg_settings where name in ('fsync','synchronous_commit','shared_buffers')" 2>/dev/null)"
    fi
    echo "profile:     $( ((quick)) && echo quick || echo full)"
    echo "scenarios:"
    for s in "${SCENARIOS[@]}"; do echo "  ${s#*|}"; done
    ((tenants > 0)) && echo "  tenants --tenants $tenants ${tenant_args[*]} (maas only)"
} >"$out/run-info.txt"
cat "$out/run-info.txt" >&2
load1=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load1" -v n="$(nproc)" 'BEGIN { exit !(l > n * 0.5) }'; then
    log "WARNING: load average $load1 on $(nproc) cores: the machine is busy, figures will be noisy"
fi

common=() tenant_common=()
[[ -n $max_seconds ]] && common+=(--max-seconds "$max_seconds")
# The tenants scenario keeps maas-bench's own (longer) default unless one was given.
[[ -n $user_max_seconds ]] && tenant_common+=(--max-seconds "$user_max_seconds")

failures=0
# run_scenarios LABEL URL PID JSONL: the scenario list, one at a time, against one server.
run_scenarios() {
    local label=$1 url=$2 pid=$3 jsonl=$4 s name args
    for s in "${SCENARIOS[@]}"; do
        name=${s%%|*}
        read -ra args <<<"${s#*|}"
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$label: server pid $pid is gone; skipping the remaining scenarios"
            failures=$((failures + 1))
            return
        fi
        log "$label: $name (${args[*]})"
        if ! "$BENCH_BIN" --url "$url" --label "$label" --pid "$pid" --json "$jsonl" \
            "${common[@]}" "${args[@]}" 2>&1 | tee -a "$out/$label-bench.log"; then
            log "$label: scenario $name FAILED"
            echo "$label $name" >>"$out/failures.txt"
            failures=$((failures + 1))
        fi
    done
}

port_free() { ! (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }

maas_pid="" maas_data=""
stop_maas() {
    [[ -n $maas_pid ]] || return 0
    local i
    kill -TERM "$maas_pid" 2>/dev/null
    for ((i = 0; i < 300; i++)); do kill -0 "$maas_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$maas_pid" 2>/dev/null; then
        log "maas pid $maas_pid did not exit in 30 s, SIGKILL"
        kill -KILL "$maas_pid" 2>/dev/null
    fi
    wait "$maas_pid" 2>/dev/null
    log "maas stopped (pid $maas_pid)"
    maas_pid=""
}
synapse_started=0
cleanup() {
    stop_maas
    if ((synapse_started)); then "$BENCH_DIR/synapse.sh" stop || true; synapse_started=0; fi
    if [[ -n $maas_data && $keep_data == 0 ]]; then rm -rf "$maas_data"; fi
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

# ---- maas ----------------------------------------------------------------------------------
if [[ $only != synapse ]]; then
    port_free "$MAAS_ADDR" || die "$MAAS_ADDR is already in use"
    mkdir -p "$BENCH_HOME"
    maas_data=$(mktemp -d "$BENCH_HOME/maas-data.XXXXXX")
    # The federation listener on a free port rather than the default 8448. The upload limit
    # as bench/synapse.sh sets Synapse's max_upload_size (200M), both above their 50 MiB
    # default, so a larger `media --size` is refused by neither.
    maas_env=(MAAS_RATE_LIMITS__ENABLED=false MAAS_FEDERATION__LISTEN=127.0.0.1:0
        MAAS_MEDIA__MAX_UPLOAD_BYTES=209715200)
    [[ -n $durable ]] && maas_env+=(MAAS_DATABASE__DURABLE="$durable")
    if [[ $maas_db == postgres ]]; then
        log "recreating PostgreSQL database $MAAS_PG_DB"
        psql_admin -c "DROP DATABASE IF EXISTS $MAAS_PG_DB WITH (FORCE)" -c "CREATE DATABASE $MAAS_PG_DB" \
            || die "cannot create database $MAAS_PG_DB"
        maas_env+=(MAAS_DATABASE__URL="postgres://$PG_USER@$PG_HOST:$PG_PORT/$MAAS_PG_DB")
    fi
    printf '%s\n' "${maas_env[@]}" >"$out/maas-env.txt"
    log "starting maas (${maas_env[*]}), data in $maas_data"
    t0=$SECONDS
    env "${maas_env[@]}" "$MAAS_BIN" serve --data-dir "$maas_data" --listen "$MAAS_ADDR" --log-format json \
        </dev/null >"$out/maas-server.log" 2>&1 &
    maas_pid=$!
    until [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$MAAS_URL/_matrix/client/versions") == 200 ]]; do
        kill -0 "$maas_pid" 2>/dev/null || { tail -n 30 "$out/maas-server.log" >&2; maas_pid=""; die "maas exited during start-up"; }
        ((SECONDS - t0 < 60)) || { tail -n 30 "$out/maas-server.log" >&2; die "maas not ready after 60 s"; }
        sleep 0.2
    done
    log "maas ready (pid $maas_pid) after $((SECONDS - t0)) s"
    run_scenarios maas "$MAAS_URL" "$maas_pid" "$out/maas.jsonl"
    stop_maas

    if ((tenants > 0)); then
        # Spawns its own `maas serve` on a fresh directory; same environment (rate limits off).
        tdir=$(mktemp -d "$BENCH_HOME/maas-tenants.XXXXXX")
        if [[ $maas_db == postgres ]]; then
            psql_admin -c "DROP DATABASE IF EXISTS $MAAS_PG_DB WITH (FORCE)" -c "CREATE DATABASE $MAAS_PG_DB" \
                || die "cannot recreate database $MAAS_PG_DB"
        fi
        log "maas: tenants --tenants $tenants (data in $tdir)"
        if ! env "${maas_env[@]}" "$BENCH_BIN" --label maas --json "$out/maas-tenants.jsonl" "${tenant_common[@]}" \
            tenants --maas-bin "$MAAS_BIN" --tenants "$tenants" --data-dir "$tdir" "${tenant_args[@]}" \
            2>&1 | tee -a "$out/maas-bench.log"; then
            log "maas: scenario tenants FAILED"
            echo "maas tenants" >>"$out/failures.txt"
            failures=$((failures + 1))
        fi
        ((keep_data)) || rm -rf "$tdir"
    fi
fi

# ---- Synapse -------------------------------------------------------------------------------
if [[ $only != maas ]]; then
    if running=$("$BENCH_DIR/synapse.sh" pid 2>/dev/null); then
        die "a Synapse is already running (pid $running); stop it first: bench/synapse.sh stop"
    fi
    log "starting Synapse (db $synapse_db)"
    synapse_started=1
    synapse_pid=$("$BENCH_DIR/synapse.sh" start --db "$synapse_db" 2> >(tee "$out/synapse-start.log" >&2)) \
        || die "Synapse did not start"
    log "Synapse ready (pid $synapse_pid)"
    run_scenarios synapse "$SYNAPSE_URL" "$synapse_pid" "$out/synapse.jsonl"
    "$BENCH_DIR/synapse.sh" stop 2>&1 | tee -a "$out/synapse-start.log" >&2
    synapse_started=0
    cp "$BENCH_HOME/synapse-$synapse_db/homeserver.yaml" "$out/synapse-homeserver.yaml" 2>/dev/null
    cp "$BENCH_HOME/synapse-$synapse_db/homeserver.log" "$out/synapse-server.log" 2>/dev/null
    # Secrets are not worth keeping in the results.
    sed -i -E 's/^(macaroon_secret_key|form_secret|registration_shared_secret): .*/\1: <redacted>/' \
        "$out/synapse-homeserver.yaml" 2>/dev/null
fi

# ---- comparison ----------------------------------------------------------------------------
if [[ -z $only ]]; then
    if [[ -s $out/maas.jsonl && -s $out/synapse.jsonl ]]; then
        log "compare maas.jsonl synapse.jsonl"
        "$BENCH_BIN" compare "$out/maas.jsonl" "$out/synapse.jsonl" 2>&1 | tee "$out/compare.txt" \
            || { log "compare FAILED"; failures=$((failures + 1)); }
    else
        log "nothing to compare (a result file is missing or empty)"
        failures=$((failures + 1))
    fi
fi

echo >&2
cat "$out/run-info.txt" >&2
log "results in $out"
if ((failures)); then
    log "$failures failure(s); see $out/failures.txt and the *-bench.log files"
    exit 1
fi
