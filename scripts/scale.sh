#!/usr/bin/env bash
# Scale check: full scans (all detectors) of 100k and 1M rows x 32 features, with and without a 100k-row reference,
# and in chunks against the reference (`--chunk-rows`): wall time, peak memory (RSS) and the size of the HTML report.
# Usage: bash scripts/scale.sh [ROWS...]; MODES="reference none chunked" picks the scans, CHUNK_ROWS (default
# 1000000) the chunk size. A 10M-row chunked run: MODES=chunked bash scripts/scale.sh 10000000
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin poisonscan --example make_scale
target="${CARGO_TARGET_DIR:-target}"
bin="$target/release/poisonscan"
chunk="${CHUNK_ROWS:-1000000}"
for rows in "${@:-100000 1000000}"; do
    dir="out/scale-$rows"
    [ -f "$dir/data.parquet" ] || "$target/release/examples/make_scale" "$dir" "$rows" 32 >/dev/null
    for mode in ${MODES:-reference none chunked}; do
        extra=(--html "$dir/report.html")
        case "$mode" in
            reference) extra+=(--reference "$dir/reference.parquet") ;;
            chunked) extra=(--reference "$dir/reference.parquet" --chunk-rows "$chunk") ;;
        esac
        rm -f "$dir/report.html"
        /usr/bin/time -f "%e s wall, %M KB peak RSS" -o "$dir/time.txt" \
            "$bin" scan -q "$dir/data.parquet" --label label --id id "${extra[@]}" --scores "$dir/scores.parquet" \
            --report "$dir/report.json" >"$dir/stdout.txt" 2>/dev/null || true
        html_kb=$(( $(stat -c %s "$dir/report.html" 2>/dev/null || echo 0) / 1024 ))
        [ "$mode" = chunked ] && mode="chunked ($chunk rows)"
        echo "$rows rows, $mode: $(tail -1 "$dir/time.txt"), HTML report $html_kb KB | $(tail -1 "$dir/stdout.txt")"
    done
done
