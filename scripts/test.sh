#!/usr/bin/env bash
# Runs every test: the Rust crate (unit, property, CLI end-to-end), then builds the Python wheel from source and runs
# its pytest suite. Needs Rust, Python >= 3.9 with pip, maturin and pytest; installs the Python test dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

# Unit, property, CLI end-to-end and doc tests (benches are compiled by clippy in CI, run with `cargo bench`).
cargo test

python3 -m pip install -q --disable-pip-version-check pyarrow polars pandas duckdb
wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
maturin build -q -m python/Cargo.toml -o "$wheels"
python3 -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$wheels"/poisonscan-*.whl
(cd "$wheels" && python3 -m pytest -q "$OLDPWD/python/tests")
