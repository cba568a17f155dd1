#!/usr/bin/env bash
# HAProxy's instructions per request in the wrk bench's modes, counted by
# valgrind's callgrind rather than timed: the count does not depend on what
# else the machine does, so differences far below the wall-clock noise of
# `npm run bench -- wrk --ab` show, and callgrind_annotate says which
# functions they are made of.
#
# HAProxy runs with haproxy/bench/proxy.cfg (the wrk bench's configuration:
# one thread, option httpclose) under callgrind, twice per mode and round:
# N1 and N2 sequential requests (curl, a new connection each). Instructions
# per request = (Ir(N2) - Ir(N1)) / (N2 - N1): start-up and shut-down cancel.
#
# Modes (MODES, space-separated), as bench/haproxy-wrk.ts defines them:
#   none         no filter;
#   spoe, propagation, compact  the SPOE modes (haproxy/spoe*.cfg), our agent
#                over SPOP; <mode>-unguarded without the fail-fast guards
#                (the srv_is_up() conditions taken off as bench/guards.ts
#                does, the agent's backend as before them: BENCH_GUARDS=0);
#   log, log10   the rules of haproxy/haproxy-compact-log.cfg, records to the
#                agent's log intake (--log-intake udp://..., SPOA_LOG_TARGET),
#                100% and 10% sampled; logtcp, logtcp10 the same through
#                HAProxy's ring, forwarded over TCP (SPOA_LOG_TCP);
#   ot, ot10     HAProxy's OpenTracing filter (haproxy/bench/ot.cfg, HAProxy
#                built with USE_OT, the Datadog plugin of libdd-opentracing0
#                exporting to the bench's sink), 100% and 10%.
# A mode takes suffixes, each `+NAME=VALUE`:
#   +SPOA_...=V  that variable in HAProxy's environment (it wins over the
#                mode's own), e.g. log+SPOA_SAMPLE_PERCENT=0,
#                log10+SPOA_LOG_TRACED_ONLY=1;
#   +oplog=void  `option httplog` and a `log` line of the operator's own
#                (BENCH_OPERATOR_LOG in proxy.cfg) to a UDP socket that is
#                bound but never read; +oplog=agent: to our agent's log
#                intake (it starts with one).
#
# Health checks (SPOE modes) cost instructions per unit of time, not per
# request, and a run lasts as long as valgrind makes it: the agent counts
# the checks it answers (spoa_tracer_healthchecks_total), two idle runs in
# `spoe` and `spoe-unguarded` (no request, IDLE1 and IDLE2 seconds) give the
# instructions per check, and the per-request figure is also given with the
# runs' checks taken off ("net").
#
# The summary: per mode the median over the rounds; each mode against BASE
# (none) and each <mode> against <mode>-unguarded, in all and by function:
# the TOP largest differences in callgrind's self cost, and against BASE
# also in inclusive cost (a function with its callees: where in the call
# tree the difference sits; INCLUSIVE=0 leaves that out).
#
# Needs: valgrind, curl, node, python3, a built dist/ (npm run build).
# Usage: bench/callgrind.sh [--out DIR]
#        bench/callgrind.sh --summary DIR   (the table of runs made before)
#   env: HAPROXY_BIN (/usr/sbin/haproxy), N1 (500), N2 (2500),
#        MODES ("none spoe spoe-unguarded compact compact-unguarded"),
#        IDLE1 (10), IDLE2 (40) seconds (IDLE2=0: no idle runs; none are
#        made when MODES has no SPOE mode),
#        REPEATS (3): rounds, each mode in turn, so that the spread between
#        rounds shows what is left of timing effects (how HAProxy's polling
#        and the agent's answers interleave),
#        BASE (none), TOP (12), INCLUSIVE (1).
# Prints a table; every run's files (configurations, callgrind.out.*,
# callgrind_annotate output, logs) stay in the output directory.
# bench/callgrind-guards.sh is this script for the guards' A/B (issue 11).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HAPROXY=${HAPROXY_BIN:-/usr/sbin/haproxy}
N1=${N1:-500}
N2=${N2:-2500}
MODES=${MODES:-none spoe spoe-unguarded compact compact-unguarded}
IDLE1=${IDLE1:-10}
IDLE2=${IDLE2:-40}
REPEATS=${REPEATS:-3}
BASE=${BASE:-none}
TOP=${TOP:-12}
OUT=""
SUMMARY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --summary) OUT=$2; SUMMARY=1; shift 2 ;;
    -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ -n "$OUT" ] || OUT=$(mktemp -d /tmp/callgrind.XXXXXX)
mkdir -p "$OUT"

# The table, from $OUT/runs.tsv. Also reads the runs.tsv of the first
# version of this script (bench/callgrind-guards.sh: a `variant` column,
# guarded or unguarded, beside the mode).
summary() {
node - "$OUT" "$N1" "$N2" "$IDLE1" "$IDLE2" "$BASE" "$TOP" <<'EOF'
const fs = require('fs')
const [out, n1, n2, i1, i2, base, top] = process.argv.slice(2)
const rows = fs.readFileSync(`${out}/runs.tsv`, 'utf8').trim().split('\n')
const head = rows.shift().split('\t')
const runs = rows.map((l) => Object.fromEntries(l.split('\t').map((v, i) => [head[i], v])))
for (const r of runs) {
  if (r.variant !== undefined) {
    r.dir ??= `${r.round}-${r.mode}-${r.variant}-${r.kind}-${r.n}`
    if (r.variant === 'unguarded') r.mode += '-unguarded'
  }
  for (const k of ['Ir', 'checks', 'Ir_check_fns', 'Ir_srv_is_up']) r[k] = Number(r[k] || 0)
}
const find = (rd, m, k, n) => runs.find((r) => r.round === String(rd) && r.mode === m && r.kind === k && r.n === String(n))
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const h = s.length >> 1; return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2 }
const signed = (x, d = 0) => (x >= 0 ? '+' : '') + x.toFixed(d)
const fmt = (x) => Math.round(x).toLocaleString('en-US')
const unguarded = (m) => /-unguarded(\+|$)/.test(m)
const rounds = [...new Set(runs.filter((r) => r.kind === 'req').map((r) => r.round))]
const modes = [...new Set(runs.filter((r) => r.kind === 'req').map((r) => r.mode))]

// Instructions per health check, guarded and unguarded (idle runs).
const perCheck = {}
for (const [v, m] of [['guarded', 'spoe'], ['unguarded', 'spoe-unguarded']]) {
  const a = find(0, m, 'idle', i1), b = find(0, m, 'idle', i2)
  if (!a || !b) continue
  const dc = b.checks - a.checks
  perCheck[v] = dc > 0 ? (b.Ir - a.Ir) / dc : NaN
  console.log(`${v}: ${perCheck[v].toFixed(0)} instructions per health check, idle runs of ${i1} s and ${i2} s: ` +
    `${a.checks} and ${b.checks} checks (${(dc / (i2 - i1)).toFixed(2)}/s), Ir ${a.Ir} and ${b.Ir}; ` +
    `in process_chk + srv_chk_io_cb: ${((b.Ir_check_fns - a.Ir_check_fns) / dc).toFixed(0)} per check`)
}
console.log('')
console.log('Instructions per request, (Ir(N2) - Ir(N1)) / (N2 - N1); "net": each run\'s health checks taken off (instructions per check x checks)')
console.log('mode                              round  Ir/request      net  in srv_is_up  checks N1/N2  N1 and N2: SPOE err/timeouts/non-2xx, responses/traced [agent: messages/spans | log records/traced | sink spans]')
const per = {}
for (const m of modes) {
  per[m] = []
  for (const rd of rounds) {
    const a = find(rd, m, 'req', n1), b = find(rd, m, 'req', n2)
    if (!a || !b) continue
    const raw = (b.Ir - a.Ir) / (n2 - n1)
    const k = b.checks || a.checks ? perCheck[unguarded(m) ? 'unguarded' : 'guarded'] ?? NaN : 0
    const net = (b.Ir - k * b.checks - (a.Ir - k * a.checks)) / (n2 - n1)
    per[m].push({ rd, raw, net, a, b })
    const what = (r) => {
      const x = [`${r.spoe_err}/${r.spoe_tout}/${r.non2xx}`, `${r.responses}/${r.traced ?? '-'}`]
      if (Number(r.messages)) x.push(`msgs ${r.messages} spans ${r.spans}`)
      if (r.log_records !== undefined && r.log_records !== '') x.push(`log ${r.log_records}/${r.log_traced}`)
      if (r.sink_spans !== undefined && r.sink_spans !== '') x.push(`sink ${r.sink_spans}`)
      return x.join(' ')
    }
    const up = (b.Ir_srv_is_up - a.Ir_srv_is_up) / (n2 - n1)
    console.log(`${m.padEnd(32)} ${rd.padStart(6)}  ${raw.toFixed(0).padStart(10)}  ${net.toFixed(0).padStart(7)}  ${up.toFixed(1).padStart(12)}  ${(a.checks + '/' + b.checks).padStart(12)}  ${what(a)} | ${what(b)}`)
  }
}
const med = (m, key) => median(per[m].map((x) => x[key]))
const spread = (m, key) => `${fmt(Math.min(...per[m].map((x) => x[key])))}..${fmt(Math.max(...per[m].map((x) => x[key])))}`
console.log('')
console.log(`Medians over the rounds (spread); against ${base}:`)
for (const m of modes) {
  if (!per[m].length) continue
  const hasChecks = per[m].some((x) => x.a.checks || x.b.checks)
  let line = `${m.padEnd(32)} ${fmt(med(m, 'raw')).padStart(9)} (${spread(m, 'raw')})`
  if (hasChecks) line += `, net ${fmt(med(m, 'net'))} (${spread(m, 'net')})`
  if (m !== base && per[base]?.length) {
    const d = med(m, 'net') - med(base, 'net')
    line += `; ${signed(d)} (${signed((d / med(base, 'net')) * 100, 1)}%) against ${base}`
  }
  console.log(line)
}

// Where a difference goes: per function (callgrind's self cost), the runs'
// (N2 - N1) of one mode less the other's, per request; the median over the
// rounds. Fixed work shows as the same amount in every round; timer and
// polling functions move either way.
const cost = (r, kind) => {
  const f = `${out}/${r.dir}/annotate-${kind}.txt`
  const c = new Map()
  if (!fs.existsSync(f)) return c
  for (const l of fs.readFileSync(f, 'utf8').split('\n')) {
    const x = /^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S.*)$/.exec(l)
    if (x && !x[2].startsWith('PROGRAM TOTALS') && !x[2].startsWith('=>')) c.set(x[2], (c.get(x[2]) ?? 0) + Number(x[1].replaceAll(',', '')))
  }
  return c
}
const byFunction = (m, ref, kind = 'self') => {
  const diffs = []
  for (const rd of rounds) {
    const rs = [[m, n2], [m, n1], [ref, n2], [ref, n1]].map(([mm, n]) => find(rd, mm, 'req', n))
    if (rs.some((r) => !r)) continue
    const [g2, g1, u2, u1] = rs.map((r) => cost(r, kind))
    const d = new Map()
    for (const k of new Set([...g2.keys(), ...g1.keys(), ...u2.keys(), ...u1.keys()])) {
      d.set(k, ((g2.get(k) ?? 0) - (g1.get(k) ?? 0) - (u2.get(k) ?? 0) + (u1.get(k) ?? 0)) / (n2 - n1))
    }
    diffs.push(d)
  }
  if (!diffs.length) return
  const md = new Map([...new Set(diffs.flatMap((d) => [...d.keys()]))].map((k) => [k, median(diffs.map((d) => d.get(k) ?? 0))]))
  const sorted = [...md].sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]))
  if (kind === 'self') {
    const total = [...md.values()].reduce((a, b) => a + b, 0)
    console.log(`${m} minus ${ref} per request, by function (median of ${diffs.length} rounds; all functions: ${signed(total)}), the largest:`)
  } else {
    console.log(`${m} minus ${ref} per request, by function with its callees (inclusive cost: the call tree from the top), the largest:`)
  }
  for (const [k, v] of sorted.slice(0, Number(top))) console.log(`  ${signed(v, 1).padStart(9)}  ${k}`)
}
for (const m of modes) {
  if (unguarded(m)) continue
  const u = m.replace(/^([^+]*)/, '$1-unguarded')
  if (!per[u]?.length || !per[m].length) continue
  console.log('')
  for (const key of ['raw', 'net']) {
    const g = med(m, key), un = med(u, key)
    console.log(`${m} ${key}: guarded ${g.toFixed(0)} (${spread(m, key)}), unguarded ${un.toFixed(0)} (${spread(u, key)}), ` +
      `guards ${signed(g - un)} instructions/request (${signed(((g - un) / un) * 100, 3)}%)`)
  }
  byFunction(m, u)
}
if (per[base]?.length) {
  for (const m of modes) {
    if (m === base || unguarded(m) || !per[m].length) continue
    console.log('')
    byFunction(m, base)
    if (process.env.INCLUSIVE !== '0') byFunction(m, base, 'inclusive')
  }
}
EOF
}

if [ -n "$SUMMARY" ]; then
  # shellcheck disable=SC1091
  . "$OUT/params.env"
  summary
  exit 0
fi
printf 'N1=%s\nN2=%s\nIDLE1=%s\nIDLE2=%s\n' "$N1" "$N2" "$IDLE1" "$IDLE2" >"$OUT/params.env"

GUARD=' { srv_is_up(spoa-tracer/agent) }'
PROXY_CFG=$ROOT/haproxy/bench/proxy.cfg
ORIGIN_CFG=$ROOT/haproxy/bench/origin.cfg
OT_CFG=$ROOT/haproxy/bench/ot.cfg
DD_PLUGIN=libdd_opentracing_plugin.so

for t in valgrind callgrind_annotate curl node python3 "$HAPROXY"; do
  command -v "$t" >/dev/null || { echo "missing: $t" >&2; exit 1; }
done
[ -f "$ROOT/dist/src/daemon/main.js" ] && [ -f "$ROOT/dist/bench/otlp-sink.js" ] || { echo "dist/ is not built: npm run build" >&2; exit 1; }

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# mode_base MODE: the mode without its +suffixes and -unguarded.
mode_base() { local b=${1%%+*}; echo "${b%-unguarded}"; }
is_spoe() { case "$(mode_base "$1")" in spoe|propagation|compact) return 0 ;; *) return 1 ;; esac; }

for mode in $MODES; do
  case "$(mode_base "$mode")" in
    none|spoe|propagation|compact|log|log10|logtcp|logtcp10) ;;
    ot|ot10)
      "$HAPROXY" -vv 2>/dev/null | grep -q '+OT\b' || { echo "mode $mode: $HAPROXY is built without the OpenTracing filter" >&2; exit 1; }
      ;;
    *) echo "unknown mode: $mode" >&2; exit 2 ;;
  esac
  case "$mode" in *-unguarded*) is_spoe "$mode" || { echo "mode $mode: only SPOE modes have guards" >&2; exit 2; } ;; esac
done

# The Datadog tracer's OpenTracing plugin, where Debian or a source install puts it.
dd_plugin() {
  local d
  if [ -n "${BENCH_OT_PLUGIN:-}" ]; then echo "$BENCH_OT_PLUGIN"; return; fi
  for d in /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib /usr/local/lib; do
    [ -f "$d/$DD_PLUGIN" ] && { echo "$d/$DD_PLUGIN"; return; }
  done
  return 1
}

# The srv_is_up() fetch as callgrind names it: smp_fetch_srv_is_up when
# HAProxy has its symbols; in a stripped binary (Debian's) the address its
# keyword-table entry ({ "srv_is_up", smp_fetch_srv_is_up, ... }) points at,
# which callgrind shows as 0x<address>. Empty when neither is found.
fetch_symbol() {
  node -e '
    const { execFileSync } = require("child_process")
    const bin = process.argv[1]
    const sh = (...a) => { try { return execFileSync(a[0], a.slice(1), { encoding: "utf8", maxBuffer: 1 << 28, stdio: ["ignore", "pipe", "ignore"] }) } catch { return "" } }
    const syms = sh("nm", "--defined-only", bin) + sh("nm", "-D", "--defined-only", bin)
    if (/ smp_fetch_srv_is_up$/m.test(syms)) { console.log("smp_fetch_srv_is_up"); process.exit(0) }
    const data = require("fs").readFileSync(bin)
    const ro = sh("readelf", "-SW", bin).split("\n").map((l) => /\]\s+\.rodata\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)/.exec(l)).find(Boolean)
    if (!ro) process.exit(0)
    const [va, off, size] = ro.slice(1).map((x) => parseInt(x, 16))
    const at = data.subarray(off, off + size).indexOf(Buffer.from("\0srv_is_up\0"))
    if (at < 0) process.exit(0)
    const rel = new Map()
    for (const l of sh("readelf", "-rW", bin).split("\n")) {
      const p = l.trim().split(/\s+/)
      if (p[2] === "R_X86_64_RELATIVE") rel.set(parseInt(p[0], 16), parseInt(p[3], 16))
    }
    for (const [o, a] of rel) if (a === va + at + 1 && rel.has(o + 8)) { console.log("0x" + rel.get(o + 8).toString(16).padStart(16, "0")); break }
  ' "$1"
}
FETCH_SYM=$(fetch_symbol "$(command -v "$HAPROXY")")
# The interpreter itself, not a wrapper (a pyenv shim takes seconds to start on a busy machine).
PYTHON=$(python3 -c 'import sys; print(sys.executable)')

# A free TCP port on 127.0.0.1 (bound and released: the processes here start
# right after, on an otherwise quiet loopback). Also used for UDP: nothing
# else binds in this range meanwhile.
free_port() {
  node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

# One command on HAProxy's stats socket; prints the answer.
cli() {
  node -e "
    const c = require('net').connect(process.argv[1]);
    let out = '';
    c.on('connect', () => c.end(process.argv[2] + '\n'));
    c.on('data', (d) => { out += d });
    c.on('end', () => process.stdout.write(out));
    c.on('error', (e) => { console.error(e.message); process.exit(1) });
    setTimeout(() => { console.error('stats socket: no answer'); process.exit(1) }, 30000).unref();
  " "$1" "$2"
}

# wait_for SECONDS WHAT COMMAND...: polls COMMAND until it succeeds, bounded.
wait_for() {
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || { log "timed out after ${limit}s waiting for $what"; return 1; }
    sleep 0.2
  done
}

# wait_alive PID SECONDS WHAT COMMAND...: wait_for, but gives up at once
# when PID (the process that should answer) has ended.
wait_alive() {
  local pid=$1 limit=$2 what=$3; shift 3
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { log "$what: the process ended"; return 1; }
    [ $SECONDS -lt $end ] || { log "timed out after ${limit}s waiting for $what"; return 1; }
    sleep 0.2
  done
}

# wait_exit PID SECONDS: waits for PID (a child of this shell) to end, bounded.
wait_exit() {
  local pid=$1 end=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.2
  done
  wait "$pid" 2>/dev/null || true
}

# stop PID: SIGTERM, bounded, then SIGKILL.
stop() {
  kill -TERM "$1" 2>/dev/null || return 0
  wait_exit "$1" 30 || kill -KILL "$1" 2>/dev/null || true
}

agent_up() { curl -sf "http://127.0.0.1:$1/healthz"; }
server_up() {
  [ -S "$1" ] && cli "$1" 'show stat' | awk -F, '$1=="spoa-tracer" && $2=="agent" {print $18}' | grep -qx UP
}
haproxy_up() { [ -S "$1" ] && cli "$1" 'show info' | grep -q '^Pid:'; }
metric() { awk -v n="$2" '$1==n {print $2}' "$1"; }
proc_var() { cli "$1" "get var proc.$2" | sed -n 's/.*value=<\([0-9]*\)>.*/\1/p'; }
# The log intake's record count, stable: two reads 0.5 s apart that agree.
log_records_settled() {
  local a b
  a=$(curl -sf "http://127.0.0.1:$1/metrics" | awk '$1=="spoa_tracer_log_records_received_total" {print $2}')
  sleep 0.5
  b=$(curl -sf "http://127.0.0.1:$1/metrics" | awk '$1=="spoa_tracer_log_records_received_total" {print $2}')
  [ -n "$a" ] && [ "$a" = "$b" ]
}

# unguarded SRC DEST: SRC without the guard conditions, as bench/guards.ts's
# writeUnguarded (a then-bare trailing `if` goes too); prints how many it removed.
unguarded() {
  local n
  n=$(grep -o -F "$GUARD" "$1" | wc -l)
  sed -e "\\|$GUARD|{ s|$GUARD||g; s|[[:space:]]\\{1,\\}if[[:space:]]*\$|| }" "$1" >"$2"
  echo "$n"
}

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# The origin, native: it is not what is measured.
ORIGIN_PORT=$(free_port)
ORIGIN_BIND=127.0.0.1:$ORIGIN_PORT "$HAPROXY" -db -f "$ORIGIN_CFG" >"$OUT/origin.log" 2>&1 &
ORIGIN_PID=$!
PIDS+=("$ORIGIN_PID")
wait_for 10 origin curl -sf -o /dev/null "http://127.0.0.1:$ORIGIN_PORT/"

RESULTS=$OUT/runs.tsv
COLS=(round mode kind n Ir checks responses non2xx traced spoe_err spoe_tout messages spans trees log_records log_traced sink_spans Ir_check_fns Ir_srv_is_up dir)
(IFS=$'\t'; echo "${COLS[*]}") >"$RESULTS"

# run ROUND MODE KIND N: one HAProxy under callgrind; KIND req (N requests)
# or idle (N seconds without a request). Appends a line to runs.tsv.
run() {
  local round=$1 mode=$2 kind=$3 n=$4
  local name=$round-$mode-$kind-$n
  local dir=$OUT/$name
  mkdir -p "$dir"
  local base spoe="" proxy=$PROXY_CFG guarded=1 intake="" ot="" oplog=""
  local -a env=() sfx=()
  base=$(mode_base "$mode")
  case "$mode" in *-unguarded*) guarded=0 ;; esac
  case "$base" in
    spoe) spoe=$ROOT/haproxy/spoe.cfg ;;
    propagation) spoe=$ROOT/haproxy/spoe-propagation.cfg; env+=(BENCH_PROFILE=propagation) ;;
    compact) spoe=$ROOT/haproxy/spoe-compact.cfg; env+=(BENCH_PROFILE=compact) ;;
    log) env+=(BENCH_PROFILE=log); intake=1 ;;
    log10) env+=(BENCH_PROFILE=log SPOA_SAMPLE_PERCENT=10); intake=1 ;;
    logtcp) env+=(BENCH_PROFILE=log); intake=tcp ;;
    logtcp10) env+=(BENCH_PROFILE=log SPOA_SAMPLE_PERCENT=10); intake=tcp ;;
    ot) env+=(BENCH_PROFILE=ot SPOA_SAMPLE_PERCENT=100); ot=1 ;;
    ot10) env+=(BENCH_PROFILE=ot SPOA_SAMPLE_PERCENT=10); ot=1 ;;
  esac
  # The suffixes: +oplog=void|agent, or a variable for HAProxy (after the mode's: it wins).
  local s rest=${mode#"${mode%%+*}"}
  IFS=+ read -r -a sfx <<<"${rest#+}"
  for s in "${sfx[@]}"; do
    [ -n "$s" ] || continue
    case "$s" in
      oplog=void|oplog=agent) oplog=${s#oplog=}; [ "$oplog" = agent ] && intake=1 ;;
      [A-Z]*=*) env+=("$s") ;;
      *) echo "mode $mode: unknown suffix +$s" >&2; exit 2 ;;
    esac
  done
  if [ "$guarded" = 0 ]; then
    local removed
    removed=$(unguarded "$spoe" "$dir/unguarded-$(basename "$spoe")")
    spoe=$dir/unguarded-$(basename "$spoe")
    if [ "$base" = compact ]; then
      removed=$((removed + $(unguarded "$PROXY_CFG" "$dir/unguarded-proxy.cfg")))
      proxy=$dir/unguarded-proxy.cfg
    fi
    [ "$removed" -gt 0 ] || { echo "$mode: no guard found to take off" >&2; exit 1; }
  fi

  # The agent, fresh for each run: its counters are this run's. SPOE modes
  # and log intakes only (none and ot have no agent).
  local aport="" mport="" lport="" apid=""
  if [ -n "$spoe" ] || [ -n "$intake" ]; then
    aport=$(free_port); mport=$(free_port)
    local -a li=()
    if [ -n "$intake" ]; then
      lport=$(free_port)
      li=(--log-intake "udp://127.0.0.1:$lport")
      [ "$intake" != tcp ] || li+=(--log-intake "tcp://127.0.0.1:$lport")
    fi
    node "$ROOT/bin/spoa-tracer" -a 127.0.0.1 -p "$aport" --exporter none --no-supervise \
      --metrics-address "127.0.0.1:$mport" -i 0 -d warn "${li[@]}" >"$dir/agent.log" 2>&1 &
    apid=$!
    PIDS+=("$apid")
    wait_for 30 agent agent_up "$mport"
  fi
  if [ -n "$lport" ]; then
    env+=("SPOA_LOG_TARGET=127.0.0.1:$lport")
    [ "$intake" != tcp ] || env+=("SPOA_LOG_TCP=127.0.0.1:$lport")
    [ "$oplog" != agent ] || env+=("BENCH_OPERATOR_LOG=127.0.0.1:$lport")
  fi
  # +oplog=void: a UDP socket bound and never read (the kernel drops what
  # overflows its buffer, silently: no ICMP back to HAProxy).
  local vpid=""
  if [ "$oplog" = void ]; then
    "$PYTHON" -c 'import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True); time.sleep(1e9)' </dev/null >"$dir/void.port" 2>/dev/null &
    vpid=$!
    PIDS+=("$vpid")
    wait_for 60 "the void socket" test -s "$dir/void.port"
    env+=("BENCH_OPERATOR_LOG=127.0.0.1:$(cat "$dir/void.port")")
  fi
  # ot: the bench's sink stands in for the Datadog agent; HAProxy runs in a
  # directory with ot.cfg and the plugin (the filter opens `plugin` relative
  # to the working directory).
  local spid="" sfifo="" sfd="" cwd=$dir
  if [ -n "$ot" ]; then
    local plugin
    plugin=$(dd_plugin) || { echo "mode $mode: no $DD_PLUGIN (apt-get install libdd-opentracing0, or BENCH_OT_PLUGIN)" >&2; exit 1; }
    sfifo=$dir/sink.in
    mkfifo "$sfifo"
    exec {sfd}<>"$sfifo"
    node "$ROOT/dist/bench/otlp-sink.js" --host 127.0.0.1 --port 0 <"$sfifo" >"$dir/sink.out" 2>"$dir/sink.err" &
    spid=$!
    PIDS+=("$spid")
    wait_for 30 sink grep -q '"listening"' "$dir/sink.out"
    local sport
    sport=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$dir/sink.out" | head -1)
    cp "$OT_CFG" "$dir/ot.cfg"
    ln -sf "$plugin" "$dir/$DD_PLUGIN"
    printf '{"service":"haproxy","agent_host":"127.0.0.1","agent_port":%s}\n' "$sport" >"$dir/dd.json"
    env+=("BENCH_OT_CONF=$dir/ot.cfg" "BENCH_OT_TRACER_CONFIG=$dir/dd.json")
  fi
  if [ -n "$spoe" ]; then
    # timeout processing: valgrind slows HAProxy 50-fold; no event may time out.
    env+=("SPOE_CONF=$spoe" SPOE_ENGINE=spoa-tracer SPOE_ERR_VAR=txn.spoa.err "AGENT_ADDR=127.0.0.1:$aport"
      SPOA_TIMEOUT_PROCESSING=60s "BENCH_GUARDS=$guarded")
  fi

  # The stats socket lives outside the run's directory: a unix socket's path
  # has at most 107 bytes, and a mode's name with its suffixes may be long.
  local port sock
  sock=$(mktemp -u /tmp/cg-stats.XXXXXX)
  port=$(free_port)
  printf '%s\n' "${env[@]}" >"$dir/haproxy.env"
  # The stats socket, in a file of its own as the harness adds it (harness/haproxy.ts).
  printf 'global\n    stats socket "%s" mode 600 level admin\n' "$sock" >"$dir/stats.cfg"
  (cd "$cwd" && exec env BENCH_BIND="127.0.0.1:$port" ORIGIN_ADDR="127.0.0.1:$ORIGIN_PORT" "${env[@]}" \
    valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" \
    "$HAPROXY" -db -f "$proxy" -f "$dir/stats.cfg") >"$dir/haproxy.log" 2>&1 &
  local hpid=$!
  PIDS+=("$hpid")
  if [ -n "$spoe" ]; then
    wait_alive "$hpid" 180 "agent UP in HAProxy ($mode)" server_up "$sock" || { tail -3 "$dir/haproxy.log" >&2; return 1; }
  else
    wait_alive "$hpid" 180 "HAProxy ($mode)" haproxy_up "$sock" || { tail -3 "$dir/haproxy.log" >&2; return 1; }
  fi

  if [ "$kind" = req ]; then
    local i cfg=$dir/curl.cfg
    : >"$cfg"
    for ((i = 0; i < n; i++)); do
      printf 'url = "http://127.0.0.1:%s/"\noutput = "/dev/null"\n' "$port" >>"$cfg"
    done
    curl -s -K "$cfg" -w '%{http_code}\n' --max-time 120 >"$dir/codes.txt" || true
    local ok
    ok=$(grep -cx 200 "$dir/codes.txt" || true)
    [ "$ok" -eq "$n" ] || { log "$mode: $ok of $n requests answered 200"; }
  else
    sleep "$n" # the measurement itself: n seconds of an idle HAProxy
  fi

  local resp non2xx serr stout traced
  resp=$(proc_var "$sock" bench_resp); non2xx=$(proc_var "$sock" bench_non2xx)
  serr=$(proc_var "$sock" bench_spoe_err); stout=$(proc_var "$sock" bench_spoe_tout)
  traced=$(proc_var "$sock" bench_traced)
  cli "$sock" 'show stat' >"$dir/show-stat.csv"
  cli "$sock" 'show info' >"$dir/show-info.txt"

  # A soft stop (SIGUSR1): HAProxy exits and callgrind writes its file.
  kill -USR1 "$hpid"
  if ! wait_exit "$hpid" 120; then
    log "HAProxy did not stop on SIGUSR1; SIGTERM"
    kill -TERM "$hpid"
    wait_exit "$hpid" 60 || { kill -KILL "$hpid"; exit 1; }
  fi
  rm -f "$sock"

  local sink_spans=""
  if [ -n "$spid" ]; then
    echo usage >&"$sfd"
    wait_for 10 "the sink's usage" grep -q '"usage"' "$dir/sink.out" || true
    sink_spans=$(sed -n 's/.*"type":"usage".*"spans":\([0-9]*\).*/\1/p' "$dir/sink.out" | tail -1)
    exec {sfd}>&-
    wait_exit "$spid" 10 || stop "$spid"
  fi
  [ -z "$vpid" ] || stop "$vpid"
  if [ -n "$apid" ]; then
    [ -z "$lport" ] || wait_for 10 "the log intake to settle" log_records_settled "$mport" || true
    curl -sf "http://127.0.0.1:$mport/metrics" >"$dir/metrics.txt"
    stop "$apid"
  else
    : >"$dir/metrics.txt"
  fi

  local ir checks messages spans trees lrec ltraced
  ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$dir/callgrind.out")
  checks=$(metric "$dir/metrics.txt" spoa_tracer_healthchecks_total)
  messages=$(metric "$dir/metrics.txt" spoa_tracer_messages_received_total)
  spans=$(metric "$dir/metrics.txt" spoa_tracer_spans_finished_total)
  trees=$(metric "$dir/metrics.txt" spoa_tracer_trees_completed_total)
  lrec=$(metric "$dir/metrics.txt" spoa_tracer_log_records_received_total)
  ltraced=$(metric "$dir/metrics.txt" spoa_tracer_log_records_traced_total)

  # Cross-checks: the check task's and the check I/O's inclusive cost, and the
  # srv_is_up() fetch (a static function: named only when HAProxy has symbols).
  callgrind_annotate --auto=no --inclusive=yes --threshold=100 "$dir/callgrind.out" >"$dir/annotate-inclusive.txt" 2>/dev/null || true
  callgrind_annotate --auto=no --threshold=100 "$dir/callgrind.out" >"$dir/annotate-self.txt" 2>/dev/null || true
  local ir_chk ir_up
  ir_chk=$(awk '!/=>/ && /:(process_chk|srv_chk_io_cb)( |$)/ {gsub(/,/, "", $1); s += $1} END {print s + 0}' "$dir/annotate-inclusive.txt")
  ir_up=$(awk -v f=":${FETCH_SYM:-smp_fetch_srv_is_up}" '!/=>/ && index($0, f " ") {gsub(/,/, "", $1); s += $1} END {print s + 0}' "$dir/annotate-inclusive.txt")

  local -a row=("$round" "$mode" "$kind" "$n" "$ir" "${checks:-0}" "$resp" "$non2xx" "$traced" "$serr" "$stout" "$messages" "$spans" "$trees" "$lrec" "$ltraced" "$sink_spans" "$ir_chk" "$ir_up" "$name")
  (IFS=$'\t'; echo "${row[*]}") >>"$RESULTS"
  log "round $round, $mode $kind $n: Ir $ir, checks ${checks:-0}, responses $resp, traced $traced, SPOE errors $serr, messages $messages, spans $spans, log records $lrec (traced $ltraced), sink spans $sink_spans"
}

log "output in $OUT; $("$HAPROXY" -v | head -1); modes: $MODES; srv_is_up fetch: ${FETCH_SYM:-(not found)}"
if [ "$IDLE2" -gt 0 ]; then
  idle=""
  for mode in $MODES; do
    is_spoe "$mode" || continue
    case "$mode" in *-unguarded*) idle="$idle spoe-unguarded" ;; *) idle="$idle spoe" ;; esac
  done
  for mode in $(tr ' ' '\n' <<<"$idle" | awk 'NF && !seen[$0]++'); do
    run 0 "$mode" idle "$IDLE1"
    run 0 "$mode" idle "$IDLE2"
  done
fi
for ((round = 1; round <= REPEATS; round++)); do
  for mode in $MODES; do
    run "$round" "$mode" req "$N1"
    run "$round" "$mode" req "$N2"
  done
done

summary
log "runs: $RESULTS"
