#!/usr/bin/env bash
# Fuzz every target in fuzz/ for SECONDS each (default 30), seeded from fixtures/, and the Python API with atheris.
# Usage: bash scripts/fuzz.sh [SECONDS]. Needs the nightly toolchain and cargo-fuzz (installed when missing), and
# $POISONSCAN_VENV (scripts/test.sh makes it) with the wheel for the atheris run. A crash stops the script: its
# input is in fuzz/artifacts/<target>/ (keep it as a regression test in tests/hostile.rs once fixed).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-30}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked -q cargo-fuzz
fuzz_target="${POISONSCAN_FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/poisonscan-ci/fuzz-target}"
py="${POISONSCAN_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/poisonscan-ci/venv}/bin/python"
bin="${CARGO_TARGET_DIR:-target}/debug/poisonscan"
[ -x "$bin" ] || cargo build -q --bin poisonscan

corpus="$(mktemp -d)"
trap 'rm -rf "$corpus"' EXIT
for t in parquet_source ipc_file ipc_stream csv_source contract_json policy_toml manifest row_digest; do
    mkdir -p "$corpus/$t"
done
cp fixtures/*.parquet fixtures/broken/*.parquet "$corpus/parquet_source/"
cp fixtures/*.csv "$corpus/csv_source/"
"$py" - "$corpus" <<'PY'
import sys, pyarrow as pa, pyarrow.parquet as pq, pyarrow.ipc as ipc
out = sys.argv[1]
t = pq.read_table("fixtures/train_clean.parquet").slice(0, 64)
with ipc.new_file(f"{out}/ipc_file/small.arrow", t.schema) as w:
    w.write_table(t, max_chunksize=16)
with ipc.new_stream(f"{out}/ipc_stream/small.arrows", t.schema) as w:
    w.write_table(t, max_chunksize=16)
PY
"$bin" profile fixtures/reference.parquet --label label --id id -o "$corpus/contract_json/contract.json" >/dev/null
printf 'require = ["label"]\n[label]\nerror_if = "> 1%%"\n[drift]\nwarn_if = "never"\n' > "$corpus/policy_toml/policy.toml"
"$bin" lineage fixtures/clean.parquet --id id -o "$corpus/manifest/manifest.parquet" >/dev/null
head -c 4096 /dev/urandom > "$corpus/row_digest/random"

cargo +nightly fuzz build -O --fuzz-dir fuzz --target-dir "$fuzz_target"
for t in parquet_source ipc_file ipc_stream csv_source contract_json policy_toml manifest row_digest; do
    t0=$SECONDS
    cargo +nightly fuzz run -O --fuzz-dir fuzz --target-dir "$fuzz_target" "$t" "$corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=20 -print_final_stats=1 \
        2>&1 | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY|==[0-9]+== ERROR)" | tr '\n' ' '
    echo " <- $t ($((SECONDS - t0)) s)"
done
# The Python API: arbitrary bytes as files and random Arrow tables through scan / profile / lineage.
if "$py" -c "import atheris" 2>/dev/null || "$py" -m pip install -q --disable-pip-version-check atheris; then
    mkdir -p "$corpus/atheris"
    cp fixtures/train_clean.parquet fixtures/clean.csv "$corpus/atheris/"
    (cd "$corpus" && "$py" "$OLDPWD/python/fuzz/atheris_scan.py" -max_total_time="$secs" -rss_limit_mb=2048 \
        "$corpus/atheris" 2>&1 | grep -E "^(Done|==[0-9]+== ERROR|SUMMARY)" ) || { echo "atheris found a crash"; exit 1; }
fi
