#!/usr/bin/env bash
# Fetches DuckDB for the build, as DESIGN.md says: libduckdb.so 1.5.6 from the
# npm package @duckdb/node-bindings-linux-x64 and the C header from the npm
# package duckdb@1.4.4 (no 1.5 header is published on npm; every function it
# declares is exported by 1.5.6). Both tarballs are checked against their
# sha512 integrity before anything is unpacked. The result is cached outside
# the repository, in $TARN_CACHE (default ~/.cache/tarn), and never committed.
#
# To build against another DuckDB install instead, run make with
# DUCKDB_INCLUDE=<dir with duckdb.h> DUCKDB_LIB=<dir with libduckdb.so>.
set -euo pipefail
cache=${TARN_CACHE:-$HOME/.cache/tarn}
dest="$cache/duckdb-1.5.6"
[ -f "$dest/.ok" ] && exit 0

lib_pkg='@duckdb/node-bindings-linux-x64@1.5.6-r.1'
lib_sri='sha512-IXcrZJE6kEqM0Z4wwdVnGBHX/frOS33VPNAwDXQ/Q+Fs84b058Qe94chrCCIcNJlG8Y3UHIUU4eBeCQxW5mN1Q=='
hdr_pkg='duckdb@1.4.4'
hdr_sri='sha512-hEJJ5hyVF0VLj3dmOLpsWrQR0b3d4Ykqtygm6iUXjHJDDnSqg/USKxcb5qvNrOhFYPgktayU6dXCtgPqcmmpog=='

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
echo "fetch-duckdb: npm pack $lib_pkg $hdr_pkg"
# --loglevel=error, not --silent: --silent drops the error message too.
npm pack --loglevel=error "$lib_pkg" "$hdr_pkg" >/dev/null 2>npm.err || {
  cat npm.err >&2
  echo "fetch-duckdb: npm pack failed (the npm registry must be reachable)" >&2
  exit 1
}

check() { # file expected-sri
  local got="sha512-$(openssl dgst -sha512 -binary "$1" | base64 -w0)"
  if [ "$got" != "$2" ]; then
    echo "fetch-duckdb: integrity mismatch for $1: got $got, want $2" >&2
    exit 1
  fi
}
check duckdb-node-bindings-linux-x64-1.5.6-r.1.tgz "$lib_sri"
check duckdb-1.4.4.tgz "$hdr_sri"

mkdir -p lib include
tar xzf duckdb-node-bindings-linux-x64-1.5.6-r.1.tgz -C lib --strip-components=1 package/libduckdb.so
tar xzf duckdb-1.4.4.tgz -C include --strip-components=5 package/src/duckdb/src/include/duckdb.h
strip --strip-unneeded lib/libduckdb.so 2>/dev/null || true

mkdir -p "$dest"
rm -rf "$dest.new"; mkdir -p "$dest.new"
mv lib include "$dest.new/"
rm -rf "$dest"; mv "$dest.new" "$dest"
touch "$dest/.ok"
echo "fetch-duckdb: DuckDB 1.5.6 cached in $dest"
