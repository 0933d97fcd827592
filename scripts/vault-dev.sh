#!/usr/bin/env bash
# vault-dev.sh: a Vault on 127.0.0.1:8200 for trying EventVault's production
# mode by hand (make vault-dev). It uses the binary scripts/vault-bin.sh
# builds and caches, keeps its data in files so that the Transit root key
# survives a restart, initialises it once (one unseal key), unseals it at
# each start, enables Transit, creates the root key, writes the policies
# EventVault needs, and makes two tokens, written 0600 into the data folder
# and never printed: server.token with the policy eventvault only (the server
# and every other command) and rotate.token with eventvault and
# eventvault-rotate (eventvault rotate only). The tokens of the previous start
# are revoked. It prints what to export and runs in the foreground until
# Ctrl-C.
#
# Not for production: the unseal key and the root token sit in the data
# folder beside Vault's storage.
#
#   EVENTVAULT_VAULT_DEV_DIR   data folder (default data/vault-dev)
#   EVENTVAULT_VAULT_DEV_PORT  port (default 8200)
set -euo pipefail

prog=vault-dev
die() {
	echo "$prog: $*" >&2
	exit 1
}

cd "$(dirname "$0")/.."
vault="$(bash scripts/vault-bin.sh)" || die "no Vault binary (scripts/vault-bin.sh failed)"
dir="${EVENTVAULT_VAULT_DEV_DIR:-data/vault-dev}"
port="${EVENTVAULT_VAULT_DEV_PORT:-8200}"
mount=transit
key=eventvault-root
umask 077
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
export VAULT_ADDR="http://127.0.0.1:$port"
unset VAULT_TOKEN VAULT_NAMESPACE

if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
	die "127.0.0.1:$port is taken (another Vault?); stop it or set EVENTVAULT_VAULT_DEV_PORT"
fi

cat >"$dir/vault.hcl" <<HCL
storage "file" { path = "$dir/storage" }
listener "tcp" {
  address     = "127.0.0.1:$port"
  tls_disable = true
}
disable_mlock      = true
disable_clustering = true
api_addr           = "$VAULT_ADDR"
ui                 = false
HCL

"$vault" server -config="$dir/vault.hcl" >"$dir/vault.log" 2>&1 &
pid=$!
stop() {
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
trap stop EXIT
trap 'echo; echo "$prog: stopping Vault"; exit 0' INT TERM

for _ in $(seq 1 300); do
	kill -0 "$pid" 2>/dev/null || { cat "$dir/vault.log" >&2; die "vault server exited"; }
	status=0
	"$vault" status >/dev/null 2>&1 || status=$?
	[[ $status -eq 0 || $status -eq 2 ]] && break
	sleep 0.2
done

# json_field NAME FILE prints the first string value of NAME in FILE (the
# JSON of vault operator init, one value per field or a one-element array).
json_field() {
	tr -d ' \n\t' <"$2" | sed -n "s/.*\"$1\":\[\{0,1\}\"\([^\"]*\)\".*/\1/p"
}

if [[ ! -s "$dir/init.json" ]]; then
	"$vault" operator init -key-shares=1 -key-threshold=1 -format=json >"$dir/init.json.tmp"
	mv "$dir/init.json.tmp" "$dir/init.json"
	echo "$prog: initialised a new Vault in $dir" >&2
fi
unseal_key="$(json_field unseal_keys_b64 "$dir/init.json")"
root_token="$(json_field root_token "$dir/init.json")"
[[ -n "$unseal_key" && -n "$root_token" ]] || die "cannot read the unseal key and root token from $dir/init.json"
"$vault" operator unseal "$unseal_key" >/dev/null
for _ in $(seq 1 300); do
	"$vault" status >/dev/null 2>&1 && break
	sleep 0.2
done
export VAULT_TOKEN="$root_token"

# The mount list is read whole before it is searched: grep -q leaving the
# pipe early could kill vault with SIGPIPE, which pipefail reads as "not
# mounted", and enabling the mount again fails a restart.
mounts=$("$vault" secrets list -format=json)
if ! grep -q "\"$mount/\"" <<<"$mounts"; then
	"$vault" secrets enable -path="$mount" transit >/dev/null
fi
if ! "$vault" read "$mount/keys/$key" >/dev/null 2>&1; then
	"$vault" write -f "$mount/keys/$key" type=aes256-gcm96 derived=true >/dev/null
fi
"$vault" policy write eventvault - >/dev/null <<HCL
# What the EventVault server needs.
path "$mount/encrypt/$key" { capabilities = ["update"] }
path "$mount/decrypt/$key" { capabilities = ["update"] }
path "$mount/rewrap/$key"  { capabilities = ["update"] }
path "$mount/keys/$key"    { capabilities = ["read"] }
HCL
"$vault" policy write eventvault-rotate - >/dev/null <<HCL
# What root rotation needs on top (eventvault rotate).
path "$mount/keys/$key/rotate" { capabilities = ["update"] }
path "$mount/keys/$key/config" { capabilities = ["update"] }
HCL
# Least privilege: the server gets the policy eventvault only; rotation
# (eventvault rotate) gets another token that adds eventvault-rotate.
for f in server.token rotate.token; do
	if [[ -s "$dir/$f" ]]; then
		"$vault" token revoke "$(cat "$dir/$f")" >/dev/null 2>&1 || true
	fi
done
"$vault" token create -policy=eventvault -ttl=768h -display-name=eventvault-server \
	-field=token >"$dir/server.token"
"$vault" token create -policy=eventvault -policy=eventvault-rotate -ttl=768h \
	-display-name=eventvault-rotate -field=token >"$dir/rotate.token"
unset VAULT_TOKEN

cat <<TXT

Vault $("$vault" version | awk '{print $2}' | tr -d ,) is listening on $VAULT_ADDR (data in $dir, log in $dir/vault.log).
Transit key: $mount/keys/$key (aes256-gcm96, derived). Unseal key and root token: $dir/init.json.

Two Vault tokens (32 days; made anew, and the previous ones revoked, at each
start), in files readable by their owner only, so that no token is printed:

  $dir/server.token   policy eventvault: the server and every other command
  $dir/rotate.token   policies eventvault and eventvault-rotate: eventvault rotate only

Export these in the shell that runs EventVault:

  export EVENTVAULT_VAULT_ADDR=$VAULT_ADDR
  export EVENTVAULT_VAULT_TOKEN_FILE=$dir/server.token

and give 'eventvault rotate' the other token:

  EVENTVAULT_VAULT_TOKEN_FILE=$dir/rotate.token eventvault rotate cycle

Then follow docs/operations.md, "Production quick start": PostgreSQL roles
and database, eventvault migrate (as the owner), eventvault init, server.

Ctrl-C stops Vault; run make vault-dev again to bring it back with the same key.
TXT

wait "$pid"
