#!/usr/bin/env bash
# Scale check: full scans (all detectors) of 100k and 1M rows x 32 features, with and without a 100k-row reference:
# wall time, peak memory (RSS) and the size of the HTML report. Usage: bash scripts/scale.sh [ROWS...]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin poisonscan --example make_scale
target="${CARGO_TARGET_DIR:-target}"
bin="$target/release/poisonscan"
for rows in "${@:-100000 1000000}"; do
    dir="out/scale-$rows"
    [ -f "$dir/data.parquet" ] || "$target/release/examples/make_scale" "$dir" "$rows" 32 >/dev/null
    for mode in reference none; do
        extra=()
        [ "$mode" = reference ] && extra=(--reference "$dir/reference.parquet")
        /usr/bin/time -f "%e s wall, %M KB peak RSS" -o "$dir/time.txt" \
            "$bin" scan -q "$dir/data.parquet" --label label --id id "${extra[@]}" --scores "$dir/scores.parquet" \
            --report "$dir/report.json" --html "$dir/report.html" >"$dir/stdout.txt" 2>/dev/null || true
        html_kb=$(( $(stat -c %s "$dir/report.html" 2>/dev/null || echo 0) / 1024 ))
        echo "$rows rows, reference=$mode: $(tail -1 "$dir/time.txt"), HTML report $html_kb KB | $(tail -1 "$dir/stdout.txt")"
    done
done
