#!/usr/bin/env bash
# install.sh installs the real servers the local stack and the tests run, from Debian's packages.
#
#   deploy/local/install.sh [server...]     servers: prometheus alertmanager clickhouse redis mariadb
#                                            postgres nats victoria-metrics protoc (the protobuf compiler,
#                                            for make proto) chromium (headless, for the status page's
#                                            browser tests), or all (the default)
#
# A server whose binaries are already present is left alone; with everything present the script prints
# nothing and exits 0 at once. Missing packages are installed with apt-get when run as root (apt-get update
# runs at most once, and only when apt does not know a package yet); otherwise the script prints the command
# to run as root and exits 1.
#
# Used by `make stack-deps`. Debian 12 (bookworm) package versions: see /work/shared/ENV-FACTS.md.
set -euo pipefail

ALL_SERVERS=(prometheus alertmanager clickhouse redis mariadb postgres nats victoria-metrics protoc chromium)

# packages_of SERVER prints the Debian packages of a server.
packages_of() {
	case "$1" in
	prometheus) echo prometheus ;;
	alertmanager) echo prometheus-alertmanager ;;
	clickhouse) echo clickhouse-server clickhouse-client ;;
	redis) echo redis-server ;;
	mariadb) echo mariadb-server ;;
	postgres) echo postgresql ;;
	nats) echo nats-server ;;
	victoria-metrics) echo victoria-metrics ;;
	protoc) echo protobuf-compiler ;;
	chromium) echo chromium ;;
	*) return 1 ;;
	esac
}

# binaries_of SERVER prints the programs that must exist for a server to count as installed.
binaries_of() {
	case "$1" in
	prometheus) echo prometheus promtool ;;
	alertmanager) echo prometheus-alertmanager amtool ;;
	clickhouse) echo clickhouse-server clickhouse-client ;;
	redis) echo redis-server redis-cli ;;
	mariadb) echo mariadbd mariadb-install-db mariadb ;;
	postgres) echo postgres initdb ;;
	nats) echo nats-server ;;
	protoc) echo protoc ;;
	chromium) echo chromium ;;
	victoria-metrics) echo victoria-metrics ;;
	esac
}

# have BINARY succeeds when a program is on PATH, in an sbin folder a non-root PATH may lack, or in a
# PostgreSQL version's bin folder (Debian keeps postgres and initdb in /usr/lib/postgresql/15/bin).
have() {
	local p
	if command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" || -x "/sbin/$1" ]]; then
		return 0
	fi
	for p in /usr/lib/postgresql/*/bin/"$1"; do
		[[ -x $p ]] && return 0
	done
	return 1
}

usage() {
	local IFS='|'
	echo "usage: $0 [all|${ALL_SERVERS[*]}]..." >&2
	exit 2
}

servers=("$@")
if [[ ${#servers[@]} -eq 0 ]]; then
	servers=(all)
fi

missing=()
for server in "${servers[@]}"; do
	if [[ $server == all ]]; then
		candidates=("${ALL_SERVERS[@]}")
	else
		packages_of "$server" >/dev/null || { echo "install.sh: unknown server '$server'" >&2; usage; }
		candidates=("$server")
	fi
	for s in "${candidates[@]}"; do
		for bin in $(binaries_of "$s"); do
			if ! have "$bin"; then
				for pkg in $(packages_of "$s"); do
					[[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
				done
				break
			fi
		done
	done
done

if [[ ${#missing[@]} -eq 0 ]]; then
	exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
	echo "install.sh: missing packages: ${missing[*]}" >&2
	echo "run as root:" >&2
	echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
	echo "or: sudo $0 ${servers[*]}" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# apt-get update only when apt has no installable version of a package we need (a fresh machine has
# empty package lists).
for pkg in "${missing[@]}"; do
	policy=$(apt-cache policy "$pkg" 2>/dev/null || true)
	if [[ $policy != *"Candidate: "[!\(]* ]]; then
		echo "install.sh: apt-get update" >&2
		apt-get update -qq
		break
	fi
done

echo "install.sh: apt-get install -y ${missing[*]}" >&2
apt-get install -y -qq "${missing[@]}" >/dev/null
