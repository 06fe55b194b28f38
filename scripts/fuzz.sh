#!/usr/bin/env bash
# Fuzz every target in fuzz/ and the Python API (atheris), seeded from fixtures/ and fixtures/fuzz/seeds/.
# Usage: bash scripts/fuzz.sh [RUNS_SCALE]   (default 1: about 20 s per target here; 10 for a longer search)
# Deterministic by default: a fixed libFuzzer seed, a fixed number of runs per target and committed seed files, so
# that CI gives the same result on the same code (a longer search: POISONSCAN_FUZZ_SEED=random, a larger scale).
# Needs the nightly toolchain and cargo-fuzz (installed when missing), and $POISONSCAN_VENV (scripts/test.sh makes
# it) with the wheel for the atheris run. A crash stops the script; its input is in fuzz/artifacts/<target>/: keep it
# as a regression test (tests/hostile.rs, fixtures/fuzz/) once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
scale="${1:-1}"
seed="${POISONSCAN_FUZZ_SEED:-1}"
[ "$seed" = random ] && seed=0   # libFuzzer: 0 picks a seed from the clock
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked -q cargo-fuzz
fuzz_target="${POISONSCAN_FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/poisonscan-ci/fuzz-target}"
py="${POISONSCAN_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/poisonscan-ci/venv}/bin/python"

corpus="$(mktemp -d)"
trap 'rm -rf "$corpus"' EXIT
# target:runs (runs chosen for about 20 s each on this machine's 2 cores)
targets="parquet_source:1500 ipc_file:12000 ipc_stream:12000 csv_source:1500 contract_json:250000 policy_toml:300000 manifest:20000 row_digest:400000 attestation:100000"
for tr in $targets; do mkdir -p "$corpus/${tr%%:*}"; done
seeds=fixtures/fuzz/seeds
cp fixtures/*.parquet fixtures/broken/*.parquet "$corpus/parquet_source/"
cp fixtures/*.csv "$corpus/csv_source/"
cp "$seeds/small.arrow" "$corpus/ipc_file/"
cp "$seeds/small.arrows" "$corpus/ipc_stream/"
cp "$seeds/contract.json" "$corpus/contract_json/"
cp "$seeds/policy.toml" "$corpus/policy_toml/"
cp "$seeds/manifest.parquet" fixtures/fuzz/manifest-*.parquet "$corpus/manifest/"
cp "$seeds/row_digest.bin" "$corpus/row_digest/"
cp "$seeds/attestation.json" "$seeds/public_key.pem" "$corpus/attestation/"

cargo +nightly fuzz build -O --fuzz-dir fuzz --target-dir "$fuzz_target"
for tr in $targets; do
    t="${tr%%:*}"
    runs=$(( ${tr##*:} * scale ))
    t0=$SECONDS
    cargo +nightly fuzz run -O --fuzz-dir fuzz --target-dir "$fuzz_target" "$t" "$corpus/$t" -- \
        -seed="$seed" -runs="$runs" -max_total_time=$(( 120 * scale )) -rss_limit_mb=2048 -malloc_limit_mb=2048 \
        -timeout=20 -print_final_stats=1 \
        2>&1 | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY|==[0-9]+== ERROR)" | tr '\n' ' '
    echo " <- $t ($((SECONDS - t0)) s)"
done
# The Python API: arbitrary bytes as files and random Arrow tables through scan / profile / lineage.
"$py" -c "import atheris" 2>/dev/null || "$py" -m pip install -q --disable-pip-version-check atheris
mkdir -p "$corpus/atheris"
cp fixtures/train_clean.parquet fixtures/clean.csv "$corpus/atheris/"
(cd "$corpus" && "$py" "$OLDPWD/python/fuzz/atheris_scan.py" -seed="$seed" -runs=$(( 20000 * scale )) \
    -max_total_time=$(( 120 * scale )) -rss_limit_mb=2048 "$corpus/atheris" 2>&1 \
    | grep -E "^(Done|==[0-9]+== ERROR|SUMMARY)") || { echo "atheris found a crash"; exit 1; }
