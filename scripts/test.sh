#!/usr/bin/env bash
# Sets up what the test suite needs and runs it. This is the test command of README.md.
#
# Needs: the Rust toolchain; make and a C compiler (zstd and jemalloc are built from C); nginx
# (Debian package `nginx`, with the WebDAV module) for the remote-cache tier; moto's S3 server
# (PyPI `moto[server]`, installed into a virtualenv under ~/.cache). All are installed when
# missing; the tests fail, never skip, without them.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${XDG_CACHE_HOME:-$HOME/.cache}"
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi

# Debian packages, with the package lists refreshed at most once per run.
apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ]; then $sudo apt-get update -qq; apt_updated=1; fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# zstd-sys and jemalloc (the binary's allocator) build C code: a C compiler and make.
if ! command -v make >/dev/null 2>&1 || ! command -v cc >/dev/null 2>&1; then
    echo "test.sh: installing make and a C compiler (Debian packages) to build zstd and jemalloc" >&2
    apt_install make gcc
fi

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    echo "test.sh: installing nginx (Debian package) for the remote-cache tests" >&2
    apt_install nginx
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
"$nginx_bin" -V 2>&1 | grep -q -- --with-http_dav_module || {
    echo "test.sh: $nginx_bin lacks the WebDAV module (--with-http_dav_module)" >&2
    exit 1
}
export TICKVAULT_TEST_NGINX="$nginx_bin"

moto_venv="$cache/tickvault-moto"
if [ ! -x "$moto_venv/bin/moto_server" ]; then
    echo "test.sh: installing moto[server] into $moto_venv for the S3 tests" >&2
    python3 -m venv "$moto_venv"
    "$moto_venv/bin/pip" install -q 'moto[server]==5.1.*'
fi
export TICKVAULT_TEST_MOTO_SERVER="$moto_venv/bin/moto_server"

exec cargo test --workspace --locked "$@"
