#!/usr/bin/env bash
# Installs everything vestibule's test suite needs on a fresh Debian 12 machine: what the
# build needs (scripts/install-build-deps.sh: the C libraries under SAML login),
# Debian packages (browser, R Shiny, nginx, load tools, Redis, OpenLDAP, PostgreSQL and
# InfluxDB for usage statistics, Prometheus for the Grafana dashboard's queries, xmlsec1 for the test SAML IdP) and a Python
# virtualenv with the Python app frameworks. Idempotent, and quick when all is
# already there, so CI can call it on every run.
#
# Usage: scripts/install-test-deps.sh            (prints the venv path last)
# Env:   VESTIBULE_TEST_VENV  venv location (default ~/.cache/vestibule/venv)
#        VESTIBULE_PYTHON     interpreter that creates the venv (default /usr/bin/python3,
#                             Debian's, so the venv does not depend on a per-user pyenv)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
requirements="$repo_root/tests/apps/requirements.txt"
venv="${VESTIBULE_TEST_VENV:-$HOME/.cache/vestibule/venv}"
python="${VESTIBULE_PYTHON:-/usr/bin/python3}"

"$repo_root/scripts/install-build-deps.sh"

# python3-venv: Debian's python3 cannot create a venv (no ensurepip) without it.
debs=(chromium chromium-driver r-cran-shiny nginx-light wrk redis-server procps curl
    python3 python3-venv slapd ldap-utils openssl busybox-static postgresql influxdb prometheus xmlsec1)
# Debian's kubernetes-client gives `kubectl kustomize` (renders deploy/kubernetes); any kubectl
# already installed does as well, and would conflict with it.
if ! command -v kubectl >/dev/null 2>&1; then
    debs+=(kubernetes-client)
fi

log() { printf 'install-test-deps: %s\n' "$*" >&2; }

missing=()
for pkg in "${debs[@]}"; do
    # dpkg-query exits 0 for removed-but-configured packages too, so check the status text.
    status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
    if [[ "$status" != "installed" ]]; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} > 0)); then
    log "installing Debian packages: ${missing[*]}"
    sudo=()
    if [[ "$(id -u)" != 0 ]]; then
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
else
    log "Debian packages present"
fi

marker="$venv/.vestibule-requirements"
if [[ -x "$venv/bin/python" && -f "$marker" ]] && cmp -s "$marker" "$requirements"; then
    log "Python venv up to date"
else
    if [[ ! -x "$venv/bin/python" ]]; then
        log "creating venv at $venv"
        mkdir -p "$(dirname "$venv")"
        "$python" -m venv "$venv"
    fi
    log "installing Python packages from $requirements"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
    # Written last, so an interrupted install is retried on the next run.
    cp "$requirements" "$marker"
fi

echo "$venv"
