#!/usr/bin/env bash
# Prints the folder of message-db's database scripts (the npm package
# @eventide/message-db, pinned, with its install.sh), fetching the package
# through npm the first time and caching it outside the repository, keyed by
# version, as scripts/vault-bin.sh caches Vault. Later calls return at once.
# `make bench` runs message-db beside EventVault from it.
#
#   MESSAGE_DB_VERSION   version to fetch (default 1.3.1; the integrity below pins 1.3.1)
#   EVENTVAULT_CACHE_DIR cache folder (default ${XDG_CACHE_HOME:-$HOME/.cache}/eventvault)
#   MESSAGE_DB_DIR       use this unpacked database/ folder instead (no fetch)
set -euo pipefail

if [[ -n "${MESSAGE_DB_DIR:-}" ]]; then
	[[ -f "$MESSAGE_DB_DIR/install.sh" ]] || { echo "message-db: MESSAGE_DB_DIR=$MESSAGE_DB_DIR holds no install.sh" >&2; exit 1; }
	echo "$MESSAGE_DB_DIR"
	exit 0
fi

version="${MESSAGE_DB_VERSION:-1.3.1}"
# npm's dist.integrity of @eventide/message-db@1.3.1: the tarball must match.
integrity_1_3_1="sha512-n3hdE5YAZNXTr2HK9gG0GJ6dusgdE544LTvS+21/yOEHBvNuUzNmXXw5vS05vpe6RSuhzTRy5Wg0q7c1VfJg+A=="
cache="${EVENTVAULT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/eventvault}"
dir="$cache/message-db-$version/package/database"
if [[ -f "$dir/install.sh" ]]; then
	echo "$dir"
	exit 0
fi

command -v npm >/dev/null || { echo "message-db: npm is needed to fetch @eventide/message-db@$version (Debian/Ubuntu: sudo apt-get install npm)" >&2; exit 1; }
command -v psql >/dev/null || { echo "message-db: psql is needed to run its install script (Debian/Ubuntu: sudo apt-get install postgresql-client)" >&2; exit 1; }
mkdir -p "$cache"
exec 9>"$cache/message-db-$version.lock"
flock 9
if [[ -f "$dir/install.sh" ]]; then
	echo "$dir"
	exit 0
fi
work="$(mktemp -d "$cache/message-db-fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "message-db: fetching @eventide/message-db@$version with npm (first run only)..." >&2
(cd "$work" && npm pack --silent "@eventide/message-db@$version" >/dev/null)
tgz="$work/eventide-message-db-$version.tgz"
[[ -f "$tgz" ]] || { echo "message-db: npm pack left no $tgz" >&2; exit 1; }
if [[ "$version" == 1.3.1 ]]; then
	got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
	[[ "$got" == "$integrity_1_3_1" ]] || { echo "message-db: the tarball's integrity $got is not the pinned one" >&2; exit 1; }
fi
mkdir -p "$work/out"
tar -xzf "$tgz" -C "$work/out"
rm -rf "$cache/message-db-$version"
mv "$work/out" "$cache/message-db-$version"
echo "$dir"
