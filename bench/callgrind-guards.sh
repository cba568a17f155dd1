#!/usr/bin/env bash
# What the fail-fast guards (haproxy/README.md, "When the agent fails") cost
# HAProxy in instructions per request (issue 11): bench/callgrind.sh with
# each of MODES ("spoe compact") as shipped and without the guards
# (<mode>-unguarded). Same options and environment as bench/callgrind.sh;
# VARIANTS ("guarded unguarded") picks either or both.
set -euo pipefail
modes=""
for m in ${MODES:-spoe compact}; do
  for v in ${VARIANTS:-guarded unguarded}; do
    case "$v" in
      guarded) modes="$modes $m" ;;
      unguarded) modes="$modes $m-unguarded" ;;
      *) echo "unknown variant: $v" >&2; exit 2 ;;
    esac
  done
done
MODES=${modes# } exec "$(dirname "${BASH_SOURCE[0]}")/callgrind.sh" "$@"
