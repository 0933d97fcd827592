#!/usr/bin/env bash
# Prints the path of a HashiCorp Vault binary, building it from source
# through the Go module proxy the first time (Vault is not in Debian; about
# 8 to 10 minutes on 2 cores) and caching it outside the repository, keyed by
# version. Later calls return at once.
#
#   VAULT_VERSION        version to build (default 1.21.0)
#   EVENTVAULT_CACHE_DIR cache folder (default ${XDG_CACHE_HOME:-$HOME/.cache}/eventvault)
#   VAULT_BIN            use this binary instead (no build)
set -euo pipefail

if [[ -n "${VAULT_BIN:-}" ]]; then
	[[ -x "$VAULT_BIN" ]] || { echo "vault-bin: VAULT_BIN=$VAULT_BIN is not an executable" >&2; exit 1; }
	echo "$VAULT_BIN"
	exit 0
fi

version="${VAULT_VERSION:-1.21.0}"
cache="${EVENTVAULT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/eventvault}"
bin="$cache/vault-$version/vault"
if [[ -x "$bin" ]]; then
	echo "$bin"
	exit 0
fi

command -v go >/dev/null || { echo "vault-bin: Go is needed to build Vault $version (https://go.dev/dl/)" >&2; exit 1; }
mkdir -p "$cache"
exec 9>"$cache/vault-$version.lock"
flock 9 # two test runs at once build it once
if [[ -x "$bin" ]]; then
	echo "$bin"
	exit 0
fi

echo "vault-bin: building Vault $version from source (first run only, about 10 minutes)..." >&2
src_dir="$(go mod download -json "github.com/hashicorp/vault@v$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -d "$src_dir" ]] || { echo "vault-bin: could not download github.com/hashicorp/vault@v$version through the Go module proxy" >&2; exit 1; }
work="$(mktemp -d "$cache/vault-build.XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -r "$src_dir/." "$work/src"
chmod -R u+w "$work/src"
# The module zip lacks the nested modules (api/, api/auth/*, sdk/) that
# go.mod replaces with local folders; the versions it requires are
# published, so drop those replace lines and build against them.
sed -i -E '/^replace github.com\/hashicorp\/vault\/[a-z/]+ => \.\//d' "$work/src/go.mod"
if grep -qE '^replace .* => \./' "$work/src/go.mod"; then
	echo "vault-bin: unexpected replace directives left in Vault's go.mod" >&2
	exit 1
fi
(cd "$work/src" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -o "$work/vault" .) >&2
mkdir -p "$(dirname "$bin")"
mv "$work/vault" "$bin"
echo "vault-bin: built $bin" >&2
echo "$bin"
