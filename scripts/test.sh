#!/usr/bin/env bash
# Sets up what the test suite needs and runs it. This is the test command of README.md.
#
# Needs: the Rust toolchain; make and a C compiler (zstd and jemalloc are built from C); nginx
# (Debian package `nginx`, with the WebDAV module) for the remote-cache tier; moto's S3 server
# (PyPI `moto[server]`, installed into a virtualenv under ~/.cache); pyarrow, polars and DuckDB
# (PyPI, pinned, in another virtualenv) for the partitioned-lake reader matrix. All are
# installed when missing; the tests fail, never skip, without them.
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

# The Parquet readers a partitioned lake must satisfy (tests/it/lake.rs). Bump the pins here.
readers_pins=(pyarrow==26.0.1 polars==2.1.0 duckdb==2.0.0)
readers_venv="$cache/tickvault-readers"
if ! "$readers_venv/bin/python" -c '
import sys, pyarrow, polars, duckdb
want = dict(p.split("==") for p in sys.argv[1:])
have = {"pyarrow": pyarrow.__version__, "polars": polars.__version__, "duckdb": duckdb.__version__}
sys.exit(0 if have == want else 1)' "${readers_pins[@]}" >/dev/null 2>&1; then
    echo "test.sh: installing ${readers_pins[*]} into $readers_venv for the reader matrix" >&2
    python3 -m venv "$readers_venv"
    "$readers_venv/bin/pip" install -q "${readers_pins[@]}"
fi
export TICKVAULT_TEST_PYTHON="$readers_venv/bin/python"

exec cargo test --workspace --locked "$@"
