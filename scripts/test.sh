#!/usr/bin/env bash
# Runs every test vestibule has, after installing what the tests need (idempotent).
# This is the README's test command and exactly what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv="$(scripts/install-test-deps.sh)"
export VESTIBULE_TEST_VENV="$venv"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets -- -D warnings
echo "== cargo test"
cargo test --all-targets
