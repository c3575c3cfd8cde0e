#!/usr/bin/env bash
# Collects the connection pool's performance baseline, or checks a rerun
# against the checked-in one.
#
#   scripts/collect_baseline.sh [--note TEXT] [runner flags...]
#       runs every case in release mode and writes
#       performance_baselines/connection_pool_baseline.json (+ .md)
#   scripts/collect_baseline.sh --compare [--tolerance 0.15] [--confirm 2] [runner flags...]
#       reruns with the baseline's settings and flags every ratio to the
#       floor or to a peer that moved the wrong way by more than the
#       tolerance against the checked-in JSON. Each case with a flagged
#       ratio is then measured again, whole, up to --confirm N more times
#       (default 2, stopping once nothing in it is still flagged; 0: no
#       reruns). A ratio is a regression only if it is beyond the tolerance
#       in the first pass and in every rerun: noise on a shared machine does
#       not reproduce, a real regression does. Prints every run of each
#       flagged ratio with its verdict (ok / noise / REGRESSED), writes
#       baseline-compare.json (+ .md, with the confirmations) under
#       $CARGO_TARGET_DIR (default target/), and exits 0 (no regression),
#       1 (regressed) or 2 (error)
#
#   scripts/collect_baseline.sh --only cached/
#       the prepared-statement cases alone (issue 14: pool of 8, 1/8/64
#       tasks, ours against a dedicated prepared client, deadpool-postgres
#       with query(&str) and prepare_cached, sqlx), about a minute; like
#       every partial run (--only, --quick, --skip-postgres) it writes
#       baseline-partial.json (+ .md) under $CARGO_TARGET_DIR (default
#       target/), never the checked-in baseline, and prints the tables
#
# Runner flags (see `--help`): --rounds N, --acquire-round-ms MS,
# --postgres-round-ms MS, --skip-postgres, --quick, --only TEXT, --out PATH,
# --confirm N. Takes about 3 minutes on 2 cores (compare mode: plus about
# 5 s per rerun of an acquire case, 10 s of a PostgreSQL one), plus the
# first release build. Needs the
# PostgreSQL server binaries (initdb, postgres) unless --skip-postgres.
# Respects CARGO_TARGET_DIR. Run it on a quiet machine: the file records the
# load average before and after. A full collection (no --compare, --out,
# --only, --quick or --skip-postgres) also copies the tables into
# docs/performance.md, between its baseline markers.
set -euo pipefail
cd "$(dirname "$0")/.."

baseline=performance_baselines/connection_pool_baseline.json
tables=performance_baselines/connection_pool_baseline.md
doc=docs/performance.md
args=()
compare=0
partial=0
while [ $# -gt 0 ]; do
  case "$1" in
    --compare) compare=1 ;;
    --out|--only|--quick|--skip-postgres) partial=1; args+=("$1") ;;
    -h|--help)
      awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
      exit 0 ;;
    *) args+=("$1") ;;
  esac
  shift
done

if [ "$compare" = 1 ]; then
  if [ ! -f "$baseline" ]; then
    echo "error: no baseline at $baseline; collect one first (without --compare)" >&2
    exit 2
  fi
  args=(--compare "$baseline" "${args[@]}")
fi

# Replaces what lies between the baseline markers of the doc with the tables.
update_doc() {
  local begin='<!-- baseline:begin -->' end='<!-- baseline:end -->'
  if ! grep -qF "$begin" "$doc" || ! grep -qF "$end" "$doc"; then
    echo "note: $doc has no baseline markers; tables not copied" >&2
    return 0
  fi
  awk -v begin="$begin" -v end="$end" -v tables="$tables" '
    index($0, begin) { print; while ((getline line < tables) > 0) print line; skip = 1; next }
    index($0, end) { skip = 0 }
    !skip { print }
  ' "$doc" > "$doc.tmp"
  mv "$doc.tmp" "$doc"
  echo "copied the tables into $doc" >&2
}

# cargo run passes the runner's exit status on: 0 ok, 1 regressed, 2 error.
status=0
cargo run --release --quiet -p benches --bin baseline -- "${args[@]}" || status=$?
if [ "$status" = 0 ] && [ "$compare" = 0 ] && [ "$partial" = 0 ]; then
  update_doc
fi
exit "$status"
