#!/bin/sh
# bench/run.sh - Tarn's benchmarks (see bench/README.md). `make bench` builds
# build/tarn first, then runs this.
#
#   bench/run.sh            full run (about 5 minutes)
#   bench/run.sh quick      smaller data, shorter runs (about 2 minutes)
#   bench/run.sh --only 1,3 only some benchmarks (numbers as in the README)
#
# Builds the peer programs and the query client into bench/out/bin, installs
# wrk (Debian package) if it is missing, then runs bench/tarnbench.py. Results: bench/out/results.md.
set -eu
cd "$(dirname "$0")/.."

CC=${CC:-cc}
DUCKDB_DIR=${DUCKDB_DIR:-$HOME/.cache/tarn/duckdb-1.5.6}
DUCKDB_INCLUDE=${DUCKDB_INCLUDE:-$DUCKDB_DIR/include}
OUT=bench/out
BIN=$OUT/bin

if [ ! -x build/tarn ]; then
    echo "bench: build/tarn is missing: run 'make bench' (or make build/tarn)" >&2
    exit 1
fi
if [ ! -f "$DUCKDB_INCLUDE/duckdb.h" ] || [ ! -f build/lib/libduckdb.so ]; then
    echo "bench: DuckDB not found ($DUCKDB_INCLUDE/duckdb.h, build/lib/libduckdb.so): run make build/tarn" >&2
    exit 1
fi

if ! command -v wrk >/dev/null 2>&1; then
    echo "bench: installing wrk (Debian package)"
    SUDO=
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get install -y -q wrk >/dev/null 2>&1 ||
        { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q wrk >/dev/null; }
fi
command -v wrk >/dev/null 2>&1 || { echo "bench: wrk is needed (apt-get install wrk)" >&2; exit 1; }

mkdir -p "$BIN"
CFLAGS="-std=c11 -O2 -g -Wall -Wextra -pthread"
$CC $CFLAGS -o "$BIN/fsync_writer" bench/peers/fsync_writer.c
$CC $CFLAGS -o "$BIN/post_server" bench/peers/post_server.c -lmicrohttpd
$CC $CFLAGS -o "$BIN/query_client" bench/clients/query_client.c
# The peers use the library Tarn runs with (build/lib/libduckdb.so).
for p in duckdb_copy duckdb_query; do
    $CC $CFLAGS -isystem "$DUCKDB_INCLUDE" -o "$BIN/$p" "bench/peers/$p.c" \
        -L"$(pwd)/build/lib" -lduckdb -Wl,-rpath,"$(pwd)/build/lib"
done

exec python3 bench/tarnbench.py "$@"
