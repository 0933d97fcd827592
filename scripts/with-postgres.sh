#!/usr/bin/env bash
# with-postgres.sh CMD [ARGS...]
#
# Runs CMD with EVENTVAULT_TEST_DATABASE_URL set to a PostgreSQL superuser
# URL. If the variable is set already, CMD simply runs against that server.
# Otherwise a throwaway PostgreSQL is started on 127.0.0.1 (port chosen at
# random, trust auth, data in a fresh temporary directory) and removed when
# this script exits, whether CMD succeeds or not. The script exits with CMD's
# status.
#
# Knobs:
#   EVENTVAULT_TEST_DATABASE_URL  use this server instead of starting one
#   EVENTVAULT_PG_FSYNC=on        keep fsync on (benchmarks); default off
#   EVENTVAULT_PG_BINDIR          directory holding initdb, pg_ctl, postgres
set -euo pipefail

prog=with-postgres

die() {
	echo "$prog: $*" >&2
	exit 1
}

if [ $# -eq 0 ]; then
	echo "usage: $0 CMD [ARGS...]" >&2
	exit 2
fi

if [ -n "${EVENTVAULT_TEST_DATABASE_URL:-}" ]; then
	exec "$@"
fi

# find_bindir prints the directory of the newest PostgreSQL server binaries.
find_bindir() {
	local d
	if [ -n "${EVENTVAULT_PG_BINDIR:-}" ] && [ -x "$EVENTVAULT_PG_BINDIR/initdb" ]; then
		echo "$EVENTVAULT_PG_BINDIR"
		return 0
	fi
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
	if [ -n "$d" ] && [ -x "$d/initdb" ]; then
		echo "$d"
		return 0
	fi
	if command -v pg_config >/dev/null 2>&1; then
		d=$(pg_config --bindir 2>/dev/null || true)
		if [ -n "$d" ] && [ -x "$d/initdb" ]; then
			echo "$d"
			return 0
		fi
	fi
	if command -v initdb >/dev/null 2>&1; then
		dirname "$(command -v initdb)"
		return 0
	fi
	return 1
}

how_to_get_it="install the PostgreSQL server (Debian/Ubuntu: sudo apt-get install postgresql; Fedora: sudo dnf install postgresql-server; macOS: brew install postgresql), or set EVENTVAULT_TEST_DATABASE_URL to a PostgreSQL superuser URL such as postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

if ! bindir=$(find_bindir); then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "$prog: PostgreSQL server not found; installing it with apt-get" >&2
		install_log=$(mktemp)
		if ! { DEBIAN_FRONTEND=noninteractive apt-get update &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql; } >"$install_log" 2>&1; then
			cat "$install_log" >&2
			rm -f "$install_log"
			die "apt-get install postgresql failed; $how_to_get_it"
		fi
		rm -f "$install_log"
		bindir=$(find_bindir) || die "PostgreSQL server binaries still not found after apt-get install; $how_to_get_it"
	else
		die "PostgreSQL server binaries (initdb, pg_ctl) not found; $how_to_get_it"
	fi
fi

# PostgreSQL refuses to run as root: as root, run the server as the postgres
# system user (which the Debian package creates).
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
	useradd --system --user-group --home-dir /var/lib/postgresql --shell /usr/sbin/nologin postgres ||
		die "cannot create the postgres system user to run the server as"
fi

# as_server runs its arguments as the server's user.
as_server() {
	if [ "$(id -u)" -ne 0 ]; then
		"$@"
	elif command -v runuser >/dev/null 2>&1; then
		runuser -u postgres -- "$@"
	else
		su -s /bin/sh -c "$(printf '%q ' "$@")" postgres
	fi
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/evpg.XXXXXXXX")
data="$tmp/data"
log="$tmp/server.log"
started=""

cleanup() {
	set +e
	if [ -n "$started" ]; then
		(cd "$tmp" && as_server "$bindir/pg_ctl" -D "$data" -m immediate -w stop) >/dev/null 2>&1
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$(id -u)" -eq 0 ]; then
	chown postgres: "$tmp"
fi

# run_server runs a server binary as the server's user, from a directory it
# can read (root's home usually is not).
run_server() {
	(cd "$tmp" && as_server "$@")
}

if ! run_server "$bindir/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --no-locale --no-sync >"$tmp/initdb.log" 2>&1; then
	cat "$tmp/initdb.log" >&2
	die "initdb failed"
fi

fsync=off
case "${EVENTVAULT_PG_FSYNC:-off}" in
on | true | 1) fsync=on ;;
esac
{
	echo "listen_addresses = '127.0.0.1'"
	echo "unix_socket_directories = '$tmp'"
	echo "max_connections = 200"
	echo "fsync = $fsync"
	if [ "$fsync" = off ]; then
		echo "synchronous_commit = off"
		echo "full_page_writes = off"
	fi
	# Statement statistics for the benchmark's account of where the time
	# goes under overload, when the server has the module.
	if [ -f "$("$bindir/pg_config" --pkglibdir 2>/dev/null || echo "$bindir/../lib")/pg_stat_statements.so" ]; then
		echo "shared_preload_libraries = 'pg_stat_statements'"
	fi
} >>"$data/postgresql.conf"

port_in_use() {
	(: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

port=""
for _ in 1 2 3 4 5 6 7 8 9 10; do
	candidate=$((20000 + RANDOM % 40000))
	if port_in_use "$candidate"; then
		continue
	fi
	: >"$log"
	[ "$(id -u)" -eq 0 ] && chown postgres: "$log"
	if run_server "$bindir/pg_ctl" -D "$data" -l "$log" -o "-p $candidate" -w -t 60 start >"$tmp/pg_ctl.log" 2>&1; then
		port=$candidate
		started=1
		break
	fi
	if ! grep -qi "address already in use\|could not bind" "$log"; then
		break
	fi
done

if [ -z "$port" ]; then
	echo "$prog: PostgreSQL did not start; its log follows" >&2
	cat "$tmp/pg_ctl.log" "$log" >&2 2>/dev/null || true
	exit 1
fi

version=$("$bindir/postgres" --version 2>/dev/null | awk '{print $3}')
export EVENTVAULT_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
echo "$prog: throwaway PostgreSQL $version on 127.0.0.1:$port (fsync=$fsync, data in $tmp, removed on exit)" >&2

set +e
"$@"
status=$?
set -e
exit "$status"
