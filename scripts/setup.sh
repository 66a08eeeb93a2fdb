#!/usr/bin/env bash
# Prepares a Debian machine to build and test Courier. Idempotent: installs only what is
# missing and reuses services that already run.
#
#   scripts/setup.sh            build dependencies (C toolchain for librdkafka, zlib, curl)
#   scripts/setup.sh postgres   the same, then reuse or start PostgreSQL on 127.0.0.1:5432
#   scripts/setup.sh bench      the same as postgres, plus Python's venv for bench/run.sh
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=0
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        log "missing packages ${missing[*]} and no apt-get: install them by hand"
        return 1
    fi
    if [ "$apt_updated" -eq 0 ]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    log "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# librdkafka is built from source by rdkafka-sys: it needs a C compiler, make, perl-free
# bash configure, pkg-config and zlib. curl and procps serve the demo.
apt_install build-essential pkg-config zlib1g-dev ca-certificates curl procps

if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
    log "no Rust toolchain: installing rustup from Debian and the stable toolchain"
    apt_install rustup
    rustup default stable
fi
log "$(cargo --version)"

if [ "${1:-}" = "bench" ]; then
    python3 -m venv --help >/dev/null 2>&1 || apt_install python3-venv
    set -- postgres
fi

if [ "${1:-}" = "postgres" ]; then
    if command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432; then
        log "PostgreSQL already accepts connections on 127.0.0.1:5432"
    else
        installed_here=0
        dpkg -s postgresql >/dev/null 2>&1 || installed_here=1
        apt_install postgresql
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        if [ "$installed_here" -eq 1 ]; then
            # A throwaway test database: trust local TCP connections, as the tests connect
            # as postgres without a password (COURIER_TEST_POSTGRES_URL overrides that).
            hba=/etc/postgresql/$version/main/pg_hba.conf
            as_root sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
        fi
        log "starting PostgreSQL $version"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        for _ in $(seq 1 30); do
            pg_isready -q -h 127.0.0.1 -p 5432 && break
            sleep 1
        done
        pg_isready -h 127.0.0.1 -p 5432
    fi
fi
