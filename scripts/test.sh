#!/usr/bin/env bash
# vestibule's tests, in two tiers (CONTRIBUTING.md says what each holds):
#
#   scripts/test.sh         everything, after installing what the tests need (idempotent); the
#                           README's test command and exactly what CI runs (.ci/run)
#   scripts/test.sh fast    unit tests and the lifecycle against a fake backend on a paused
#                           clock: no Docker, browser, directory or identity provider needed
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

case "${1:-all}" in
fast)
    # The build's own C libraries (SAML's libxmlsec1), not the test peers.
    scripts/install-build-deps.sh
    echo "== cargo test --lib (fast tier)"
    exec cargo test --lib
    ;;
all) ;;
*)
    echo "usage: scripts/test.sh [fast]" >&2
    exit 2
    ;;
esac

venv="$(scripts/install-test-deps.sh)"
export VESTIBULE_TEST_VENV="$venv"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets -- -D warnings
echo "== cargo test"
cargo test --all-targets
