#!/usr/bin/env bash
# Installs the Debian packages that building vestibule needs beyond cargo and gcc: the C
# libraries under SAML login (samael on libxmlsec1; bindgen reads its headers with libclang).
# Idempotent and quick when all is there. `cargo build --no-default-features` needs none of
# them (a build without SAML).
set -euo pipefail

debs=(libxmlsec1-dev libxml2-dev libssl-dev pkg-config libclang-dev)

missing=()
for pkg in "${debs[@]}"; do
    # dpkg-query exits 0 for removed-but-configured packages too, so check the status text.
    status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
    if [[ "$status" != "installed" ]]; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} > 0)); then
    printf 'install-build-deps: installing Debian packages: %s\n' "${missing[*]}" >&2
    sudo=()
    if [[ "$(id -u)" != 0 ]]; then
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
else
    printf 'install-build-deps: Debian packages present\n' >&2
fi
