#!/usr/bin/env bash
# Runs every test: the Rust crate (unit, property, CLI end-to-end), then builds the Python wheel from source and runs
# its pytest suite in a virtual environment of its own (pyarrow, polars, pandas, duckdb, jsonschema, dagster, prefect, cryptography,
# maturin and pytest are installed there, never into the python3 on PATH). Needs Rust and Python >= 3.9 with venv.
# The environment is kept between runs at $POISONSCAN_VENV (default ~/.cache/poisonscan-ci/venv).
set -euo pipefail
cd "$(dirname "$0")/.."

# Unit, property, CLI end-to-end and doc tests (benches are compiled by clippy in CI, run with `cargo bench`).
cargo test

venv="${POISONSCAN_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/poisonscan-ci/venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
py="$venv/bin/python"
"$py" -m pip install -q --disable-pip-version-check --upgrade pip
"$py" -m pip install -q --disable-pip-version-check maturin pytest pyarrow polars pandas duckdb jsonschema dagster prefect cryptography
# POISONSCAN_WHEEL_DIR keeps the wheel (abi3: one build serves every venv, e.g. the engines' step of .ci/run).
if [ -n "${POISONSCAN_WHEEL_DIR:-}" ]; then
    wheels="$POISONSCAN_WHEEL_DIR"
    mkdir -p "$wheels"
    rm -f "$wheels"/poisonscan-*.whl
else
    wheels="$(mktemp -d)"
    trap 'rm -rf "$wheels"' EXIT
fi
"$venv/bin/maturin" build -q -m python/Cargo.toml -o "$wheels" --interpreter "$py"
"$py" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$wheels"/poisonscan-*.whl
(cd "$wheels" && "$py" -m pytest -q "$OLDPWD/python/tests")
