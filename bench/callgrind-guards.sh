#!/usr/bin/env bash
# What the fail-fast guards (haproxy/README.md, "When the agent fails") cost
# HAProxy, counted in instructions by valgrind's callgrind rather than timed:
# the count does not depend on what else the machine does, so a difference
# far below the wall-clock noise of `npm run bench -- wrk --ab` shows.
#
# For each mode (spoe: haproxy/spoe.cfg, the 9-span flow; compact:
# haproxy/spoe-compact.cfg with haproxy-compact.cfg's rules) and each variant
# (guarded: as shipped; unguarded: built as bench/guards.ts builds it, the
# srv_is_up() conditions taken off and the agent's backend as before the
# guards, BENCH_GUARDS=0), HAProxy (haproxy/bench/proxy.cfg, the wrk bench's
# configuration, one thread, option httpclose) runs under callgrind twice:
# N1 and N2 sequential requests (a new connection each). Instructions per
# request = (Ir(N2) - Ir(N1)) / (N2 - N1): start-up and shut-down cancel.
#
# The health checks cost instructions per unit of time, not per request, and
# a run lasts as long as valgrind makes it: the agent counts the checks it
# answers (spoa_tracer_healthchecks_total), two idle runs per variant (no
# request, IDLE1 and IDLE2 seconds) give the instructions per check, and the
# per-request figure is also given with the runs' checks taken off.
#
# Needs: valgrind, curl, node, a built dist/ (npm run build).
# Usage: bench/callgrind-guards.sh [--out DIR]
#        bench/callgrind-guards.sh --summary DIR   (the table of runs made before)
#   env: HAPROXY_BIN (/usr/sbin/haproxy), N1 (500), N2 (2500),
#        MODES ("spoe compact"), VARIANTS ("guarded unguarded"),
#        IDLE1 (10), IDLE2 (40) seconds (IDLE2=0: no idle runs),
#        REPEATS (3): rounds of the request runs, each variant in turn, so
#        that the spread between rounds shows what is left of timing effects
#        (how HAProxy's polling and the agent's answers interleave).
# Prints a table; every run's files (configurations, callgrind.out.*,
# callgrind_annotate output, logs) stay in the output directory.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HAPROXY=${HAPROXY_BIN:-/usr/sbin/haproxy}
N1=${N1:-500}
N2=${N2:-2500}
MODES=${MODES:-spoe compact}
VARIANTS=${VARIANTS:-guarded unguarded}
IDLE1=${IDLE1:-10}
IDLE2=${IDLE2:-40}
REPEATS=${REPEATS:-3}
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
[ -n "$OUT" ] || OUT=$(mktemp -d /tmp/callgrind-guards.XXXXXX)
mkdir -p "$OUT"

# The table, from $OUT/runs.tsv: per variant the instructions per check (idle
# runs); per mode and variant the instructions per request, raw and with the
# runs' checks taken off; where the difference goes, by function.
summary() {
node - "$OUT" "$N1" "$N2" "$IDLE1" "$IDLE2" <<'EOF'
const fs = require('fs')
const [out, n1, n2, i1, i2] = process.argv.slice(2)
const rows = fs.readFileSync(`${out}/runs.tsv`, 'utf8').trim().split('\n')
const head = rows.shift().split('\t')
const runs = rows.map((l) => Object.fromEntries(l.split('\t').map((v, i) => [head[i], v])))
const find = (rd, m, v, k, n) => runs.find((r) => r.round === String(rd) && r.mode === m && r.variant === v && r.kind === k && r.n === String(n))
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const h = s.length >> 1; return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2 }
const signed = (x, d = 0) => (x >= 0 ? '+' : '') + x.toFixed(d)
const variants = [...new Set(runs.map((r) => r.variant))]
const rounds = [...new Set(runs.filter((r) => r.kind === 'req').map((r) => r.round))]
const perCheck = {}
for (const v of variants) {
  const a = find(0, 'spoe', v, 'idle', i1), b = find(0, 'spoe', v, 'idle', i2)
  if (!a || !b) continue
  const dc = b.checks - a.checks
  perCheck[v] = dc > 0 ? (b.Ir - a.Ir) / dc : NaN
  console.log(`${v}: ${perCheck[v].toFixed(0)} instructions per health check, idle runs of ${i1} s and ${i2} s: ` +
    `${a.checks} and ${b.checks} checks (${(dc / (i2 - i1)).toFixed(2)}/s), Ir ${a.Ir} and ${b.Ir}; ` +
    `in process_chk + srv_chk_io_cb: ${((b.Ir_check_fns - a.Ir_check_fns) / dc).toFixed(0)} per check`)
}
console.log('')
console.log('Instructions per request, (Ir(N2) - Ir(N1)) / (N2 - N1); "net": each run\'s health checks taken off (instructions per check x checks)')
console.log('mode     variant    round  Ir/request      net  in srv_is_up  checks N1/N2  SPOE err/timeouts/non-2xx N1 N2')
for (const m of new Set(runs.filter((r) => r.kind === 'req').map((r) => r.mode))) {
  const per = {}
  for (const v of variants) {
    per[v] = []
    for (const rd of rounds) {
      const a = find(rd, m, v, 'req', n1), b = find(rd, m, v, 'req', n2)
      if (!a || !b) continue
      const raw = (b.Ir - a.Ir) / (n2 - n1)
      const k = perCheck[v] ?? NaN
      const net = (b.Ir - k * b.checks - (a.Ir - k * a.checks)) / (n2 - n1)
      per[v].push({ raw, net })
      const errs = [a, b].map((r) => `${r.spoe_err}/${r.spoe_tout}/${r.non2xx}` + (r.responses !== r.n || r.trees !== r.n ? ` (${r.responses} responses, ${r.trees} traces)` : '')).join(' ')
      const up = (b.Ir_srv_is_up - a.Ir_srv_is_up) / (n2 - n1)
      console.log(`${m.padEnd(8)} ${v.padEnd(10)} ${rd.padStart(5)}  ${raw.toFixed(0).padStart(10)}  ${net.toFixed(0).padStart(7)}  ${up.toFixed(1).padStart(12)}  ${(a.checks + '/' + b.checks).padStart(12)}  ${errs}`)
    }
  }
  const g = per.guarded, u = per.unguarded
  if (g?.length && u?.length) {
    for (const key of ['raw', 'net']) {
      const gm = median(g.map((x) => x[key])), um = median(u.map((x) => x[key]))
      const spread = (xs) => `${Math.min(...xs.map((x) => x[key])).toFixed(0)}..${Math.max(...xs.map((x) => x[key])).toFixed(0)}`
      console.log(`${m} ${key}: guarded ${gm.toFixed(0)} (${spread(g)}), unguarded ${um.toFixed(0)} (${spread(u)}), ` +
        `guards ${signed(gm - um)} instructions/request (${signed(((gm - um) / um) * 100, 3)}%)`)
    }
  }
  // Where the difference goes: per function (callgrind's self cost), the
  // guarded runs' (N2 - N1) less the unguarded runs', per request; the median
  // over the rounds. What the condition costs shows as a fixed amount in the
  // condition's functions; timer and polling functions move either way.
  const selfCost = (r) => {
    const f = `${out}/${r.round}-${r.mode}-${r.variant}-${r.kind}-${r.n}/annotate-self.txt`
    const c = new Map()
    if (!fs.existsSync(f)) return c
    for (const l of fs.readFileSync(f, 'utf8').split('\n')) {
      const x = /^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S.*)$/.exec(l)
      if (x && !x[2].startsWith('PROGRAM TOTALS') && !x[2].startsWith('=>')) c.set(x[2], (c.get(x[2]) ?? 0) + Number(x[1].replaceAll(',', '')))
    }
    return c
  }
  const diffs = []
  for (const rd of rounds) {
    const rs = [['guarded', n2], ['guarded', n1], ['unguarded', n2], ['unguarded', n1]].map(([v, n]) => find(rd, m, v, 'req', n))
    if (rs.some((r) => !r)) continue
    const [g2, g1, u2, u1] = rs.map(selfCost)
    const d = new Map()
    for (const k of new Set([...g2.keys(), ...g1.keys(), ...u2.keys(), ...u1.keys()])) {
      d.set(k, ((g2.get(k) ?? 0) - (g1.get(k) ?? 0) - (u2.get(k) ?? 0) + (u1.get(k) ?? 0)) / (n2 - n1))
    }
    diffs.push(d)
  }
  if (diffs.length) {
    const med = new Map([...new Set(diffs.flatMap((d) => [...d.keys()]))].map((k) => [k, median(diffs.map((d) => d.get(k) ?? 0))]))
    const top = [...med].sort((a, b) => Math.abs(b[1]) - Math.abs(a[1])).slice(0, 12)
    console.log(`${m}: guarded minus unguarded per request, by function (median of ${diffs.length} rounds), the largest:`)
    for (const [k, v] of top) console.log(`  ${signed(v, 1).padStart(9)}  ${k}`)
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

for t in valgrind callgrind_annotate curl node "$HAPROXY"; do
  command -v "$t" >/dev/null || { echo "missing: $t" >&2; exit 1; }
done
[ -f "$ROOT/dist/src/run.js" ] || { echo "dist/ is not built: npm run build" >&2; exit 1; }

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

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

# A free TCP port on 127.0.0.1 (bound and released: the processes here start
# right after, on an otherwise quiet loopback).
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

# wait_exit PID SECONDS: waits for PID (a child of this shell) to end, bounded.
wait_exit() {
  local pid=$1 end=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.2
  done
  wait "$pid" 2>/dev/null || true
}

agent_up() { curl -sf "http://127.0.0.1:$1/healthz"; }
server_up() {
  [ -S "$1" ] && cli "$1" 'show stat' | awk -F, '$1=="spoa-tracer" && $2=="agent" {print $18}' | grep -qx UP
}
metric() { awk -v n="$2" '$1==n {print $2}' "$1"; }
proc_var() { cli "$1" "get var proc.$2" | sed -n 's/.*value=<\([0-9]*\)>.*/\1/p'; }

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
printf 'round\tmode\tvariant\tkind\tn\tIr\tchecks\tresponses\tnon2xx\tspoe_err\tspoe_tout\tmessages\tspans\ttrees\tIr_check_fns\tIr_srv_is_up\n' >"$RESULTS"

# run ROUND MODE VARIANT KIND N: one HAProxy under callgrind; KIND req (N
# requests) or idle (N seconds without a request). Appends a line to runs.tsv.
run() {
  local round=$1 mode=$2 variant=$3 kind=$4 n=$5
  local dir=$OUT/$round-$mode-$variant-$kind-$n
  mkdir -p "$dir"
  local spoe proxy=$PROXY_CFG profile=""
  case "$mode" in
    spoe) spoe=$ROOT/haproxy/spoe.cfg ;;
    compact) spoe=$ROOT/haproxy/spoe-compact.cfg; profile=compact ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
  if [ "$variant" = unguarded ]; then
    local removed
    removed=$(unguarded "$spoe" "$dir/unguarded-$(basename "$spoe")")
    spoe=$dir/unguarded-$(basename "$spoe")
    if [ "$mode" = compact ]; then
      removed=$((removed + $(unguarded "$PROXY_CFG" "$dir/unguarded-proxy.cfg")))
      proxy=$dir/unguarded-proxy.cfg
    fi
    [ "$removed" -gt 0 ] || { echo "$mode: no guard found to take off" >&2; exit 1; }
  fi

  # The agent, fresh for each run: its counters are this run's.
  local aport mport
  aport=$(free_port); mport=$(free_port)
  node "$ROOT/bin/spoa-tracer" -a 127.0.0.1 -p "$aport" --exporter none --no-supervise \
    --metrics-address "127.0.0.1:$mport" -i 0 -d warn >"$dir/agent.log" 2>&1 &
  local apid=$!
  PIDS+=("$apid")
  wait_for 30 agent agent_up "$mport"

  local port sock=$dir/stats.sock
  port=$(free_port)
  # timeout processing: valgrind slows HAProxy 50-fold; no event may time out.
  env BENCH_BIND="127.0.0.1:$port" ORIGIN_ADDR="127.0.0.1:$ORIGIN_PORT" STATS_SOCK="$sock" \
    SPOE_CONF="$spoe" SPOE_ENGINE=spoa-tracer SPOE_ERR_VAR=txn.spoa.err AGENT_ADDR="127.0.0.1:$aport" \
    SPOA_TIMEOUT_PROCESSING=60s BENCH_GUARDS="$([ "$variant" = guarded ] && echo 1 || echo 0)" \
    ${profile:+BENCH_PROFILE=$profile} \
    valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" \
    "$HAPROXY" -db -f "$proxy" >"$dir/haproxy.log" 2>&1 &
  local hpid=$!
  PIDS+=("$hpid")
  wait_for 180 "agent UP in HAProxy ($mode $variant)" server_up "$sock"

  if [ "$kind" = req ]; then
    local i cfg=$dir/curl.cfg
    : >"$cfg"
    for ((i = 0; i < n; i++)); do
      printf 'url = "http://127.0.0.1:%s/"\noutput = "/dev/null"\n' "$port" >>"$cfg"
    done
    curl -s -K "$cfg" -w '%{http_code}\n' --max-time 120 >"$dir/codes.txt" || true
    local ok
    ok=$(grep -cx 200 "$dir/codes.txt" || true)
    [ "$ok" -eq "$n" ] || { log "$mode $variant: $ok of $n requests answered 200"; }
  else
    sleep "$n" # the measurement itself: n seconds of an idle HAProxy
  fi

  local resp non2xx serr stout
  resp=$(proc_var "$sock" bench_resp); non2xx=$(proc_var "$sock" bench_non2xx)
  serr=$(proc_var "$sock" bench_spoe_err); stout=$(proc_var "$sock" bench_spoe_tout)
  cli "$sock" 'show stat' >"$dir/show-stat.csv"

  # A soft stop (SIGUSR1): HAProxy exits and callgrind writes its file.
  kill -USR1 "$hpid"
  if ! wait_exit "$hpid" 120; then
    log "HAProxy did not stop on SIGUSR1; SIGTERM"
    kill -TERM "$hpid"
    wait_exit "$hpid" 60 || { kill -KILL "$hpid"; exit 1; }
  fi

  curl -sf "http://127.0.0.1:$mport/metrics" >"$dir/metrics.txt"
  kill -TERM "$apid"
  wait_exit "$apid" 30 || kill -KILL "$apid"

  local ir checks messages spans trees
  ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$dir/callgrind.out")
  checks=$(metric "$dir/metrics.txt" spoa_tracer_healthchecks_total)
  messages=$(metric "$dir/metrics.txt" spoa_tracer_messages_received_total)
  spans=$(metric "$dir/metrics.txt" spoa_tracer_spans_finished_total)
  trees=$(metric "$dir/metrics.txt" spoa_tracer_trees_completed_total)

  # Cross-checks: the check task's and the check I/O's inclusive cost, and the
  # srv_is_up() fetch (a static function: named only when HAProxy has symbols).
  callgrind_annotate --auto=no --inclusive=yes --threshold=100 "$dir/callgrind.out" >"$dir/annotate-inclusive.txt" 2>/dev/null || true
  callgrind_annotate --auto=no --threshold=100 "$dir/callgrind.out" >"$dir/annotate-self.txt" 2>/dev/null || true
  local ir_chk ir_up
  ir_chk=$(awk '!/=>/ && /:(process_chk|srv_chk_io_cb)( |$)/ {gsub(/,/, "", $1); s += $1} END {print s + 0}' "$dir/annotate-inclusive.txt")
  ir_up=$(awk -v f=":${FETCH_SYM:-smp_fetch_srv_is_up}" '!/=>/ && index($0, f " ") {gsub(/,/, "", $1); s += $1} END {print s + 0}' "$dir/annotate-inclusive.txt")

  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$round" "$mode" "$variant" "$kind" "$n" "$ir" "$checks" "$resp" "$non2xx" "$serr" "$stout" "$messages" "$spans" "$trees" "$ir_chk" "$ir_up" >>"$RESULTS"
  log "round $round, $mode $variant $kind $n: Ir $ir, checks $checks, responses $resp, SPOE errors $serr, messages $messages, spans $spans"
}

log "output in $OUT; $("$HAPROXY" -v | head -1); srv_is_up fetch: ${FETCH_SYM:-(not found)}"
if [ "$IDLE2" -gt 0 ]; then
  for variant in $VARIANTS; do
    run 0 spoe "$variant" idle "$IDLE1"
    run 0 spoe "$variant" idle "$IDLE2"
  done
fi
for ((round = 1; round <= REPEATS; round++)); do
  for mode in $MODES; do
    for variant in $VARIANTS; do
      run "$round" "$mode" "$variant" req "$N1"
      run "$round" "$mode" "$variant" req "$N2"
    done
  done
done

summary
log "runs: $RESULTS"
