#!/usr/bin/env bash
# Installs what Tarn needs on a Debian machine, only what is missing.
# Debian packages (build and test), the npm tools the tests use as independent
# peers, and DuckDB (scripts/fetch-duckdb.sh). Safe to run repeatedly.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

pkgs=(gcc make pkg-config libmicrohttpd-dev libcurl4-openssl-dev libjansson-dev
      libsqlite3-dev libyaml-dev zlib1g-dev libdeflate-dev libssl-dev curl awscli python3-boto3)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
# Node.js and npm may come from outside Debian (the machine image ships them);
# install Debian's only when the commands are absent.
command -v python3 >/dev/null || missing+=(python3)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
fi

"$here/scripts/fetch-duckdb.sh"

# npm peers for tests: an independent Parquet reader.
if [ "${TARN_SKIP_NPM:-}" != 1 ] && [ ! -f "$here/tests/node_modules/hyparquet/package.json" ]; then
  echo "deps: installing npm test peers into tests/node_modules"
  (cd "$here/tests" && npm install --no-audit --no-fund --silent >/dev/null)
fi
