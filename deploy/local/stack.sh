#!/usr/bin/env bash
# stack.sh runs the real servers of the local stack as plain background processes on 127.0.0.1.
#
#   deploy/local/stack.sh up     [server...]   start (default: all); waits until each answers
#   deploy/local/stack.sh down   [server...]   SIGTERM, wait for the pid to exit (SIGKILL after 30 s)
#   deploy/local/stack.sh status [server...]   pid, state and address of each
#
# `make stack` is `stack.sh up`, `make stack-down` is `stack.sh down`. Install the servers first with
# deploy/local/install.sh (`make stack-deps`).
#
# Ports, all on 127.0.0.1, each the server's usual port plus 10000:
#
#   server            port   speaks                    ready when
#   prometheus        19090  HTTP                      GET /-/ready is 200
#   alertmanager      19093  HTTP                      GET /-/ready is 200
#   clickhouse        19000  native TCP                GET /ping on 18123 is 200 and 19000 accepts
#                     18123  HTTP
#                     19009  interserver HTTP
#   redis             16379  RESP                      PING answers PONG
#   mariadb           13306  MySQL, root without password   SELECT 1 over TCP works
#   postgres          15432  PostgreSQL, superuser carpool, trust, database carpool   SELECT 1 over TCP works
#   nats              14222  NATS, JetStream on        GET /healthz?js-enabled-only=true on 18222 is 200
#                     18222  HTTP monitoring
#   victoria-metrics  18428  HTTP, Prometheus API      GET /health is 200
#
# Each server keeps its data, config, pid file and log in $STACK_DIR/<server>/ (default: .stack/ at the
# repository root, which git ignores). Data survives down/up; remove the folder to start afresh.
#
# PostgreSQL refuses to run as root: run as root, the script gives $STACK_DIR/postgres/ to the postgres
# system user (made by Debian's postgresql package) and runs initdb and postgres as that user, so every
# folder above $STACK_DIR must be enterable by it. It is stopped with SIGINT (fast shutdown), since its
# SIGTERM waits for every client to disconnect.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STACK_DIR=${STACK_DIR:-$ROOT/.stack}
mkdir -p "$STACK_DIR"
STACK_DIR=$(cd "$STACK_DIR" && pwd) # servers change folder: every path they get must be absolute
READY_TIMEOUT=${READY_TIMEOUT:-60} # seconds a server gets to become ready
STOP_TIMEOUT=${STOP_TIMEOUT:-30}   # seconds a server gets to exit after SIGTERM

ALL_SERVERS=(prometheus alertmanager clickhouse redis mariadb postgres nats victoria-metrics)

PROMETHEUS_PORT=19090
ALERTMANAGER_PORT=19093
CLICKHOUSE_TCP_PORT=19000
CLICKHOUSE_HTTP_PORT=18123
CLICKHOUSE_INTERSERVER_PORT=19009
REDIS_PORT=16379
MARIADB_PORT=13306
POSTGRES_PORT=15432
NATS_PORT=14222
NATS_MONITOR_PORT=18222
VICTORIA_METRICS_PORT=18428

die() {
	echo "stack.sh: $*" >&2
	exit 1
}

# binary NAME prints the path of a program, looking in the sbin folders a non-root PATH may lack and in
# the bin folders of Debian's PostgreSQL versions (/usr/lib/postgresql/15/bin), the newest first.
binary() {
	local p pgbins
	pgbins=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k4,4nr)
	# shellcheck disable=SC2086 # pgbins is a list of folders without spaces
	for p in "$(command -v "$1" 2>/dev/null || true)" "/usr/sbin/$1" "/sbin/$1" $(printf "%s/$1 " $pgbins); do
		if [[ -n $p && -x $p ]]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# need SERVER NAME... prints the path of the first program, or stops with what to install.
need() {
	local server=$1 name
	shift
	for name in "$@"; do
		binary "$name" >/dev/null || die "$name not found: run \`make stack-deps\` (deploy/local/install.sh $server) as root"
	done
	binary "$1"
}

# port_open PORT succeeds when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
	timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# http_ok PORT PATH succeeds when GET http://127.0.0.1:PORT/PATH answers 200 (bash's /dev/tcp: no curl
# needed).
http_ok() {
	# shellcheck disable=SC2016 # the inner script expands its own arguments
	timeout 2 bash -c '
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" "$2" >&3
		IFS=" " read -r _ code _ <&3
		[[ $code == 200 ]]' _ "$1" "$2" 2>/dev/null
}

# redis_ok PORT succeeds when Redis answers PING.
redis_ok() {
	# shellcheck disable=SC2016 # the inner script expands its own arguments
	timeout 2 bash -c '
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf "PING\r\n" >&3
		read -r reply <&3
		[[ $reply == "+PONG"* ]]' _ "$1" 2>/dev/null
}

# mariadb_ok CLIENT PORT succeeds when SELECT 1 works over TCP (mariadb-admin ping exits 0 even when
# access is denied).
mariadb_ok() {
	"$1" --no-defaults --protocol=TCP -h 127.0.0.1 -P "$2" -u root \
		--connect-timeout=1 -e 'SELECT 1' >/dev/null 2>&1
}

# postgres_ok PSQL PORT succeeds when SELECT 1 works over TCP as the carpool superuser.
postgres_ok() {
	PGCONNECT_TIMEOUT=1 "$1" -X -h 127.0.0.1 -p "$2" -U carpool -d postgres -tAc 'SELECT 1' >/dev/null 2>&1
}

# alive PID succeeds while a process runs. A process that has exited but not been reaped yet (a zombie:
# the server's parent is init once `up` returns, and init may reap late) counts as gone.
alive() {
	local stat
	{ read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
	stat=${stat##*) }
	[[ ${stat%% *} != Z ]]
}

# pid_of SERVER prints the pid of a running server of the stack, or fails.
pid_of() {
	local pidfile=$STACK_DIR/$1/pid pid cmdline
	[[ -f $pidfile ]] || return 1
	pid=$(<"$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
	# A pid file can outlive its process and the pid be reused: check it is still the server we started.
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmdline == *"$(signature "$1")"* ]] || return 1
	echo "$pid"
}

# signature SERVER prints what the command line of a running server of the stack contains: its folder,
# except for Redis, which rewrites its command line to "redis-server ADDR".
signature() {
	case "$1" in
	redis) echo "127.0.0.1:$REDIS_PORT" ;;
	*) echo "$STACK_DIR/$1/" ;;
	esac
}

# launch SERVER BINARY ARG... starts a server in the background, its output in its log, its pid in its
# pid file. The arguments must contain the server's signature.
launch() {
	local server=$1 dir=$STACK_DIR/$1
	shift
	# nohup execs the server, so $! is the server's own pid (no subshell in between).
	nohup "$@" >>"$dir/$server.log" 2>&1 </dev/null &
	echo $! >"$dir/pid"
}

# wait_ready SERVER CHECK ARG... polls CHECK every 0.1 s until it succeeds, the server exits or the
# deadline passes.
wait_ready() {
	local server=$1 pid start deadline now
	shift
	pid=$(<"$STACK_DIR/$server/pid")
	start=$(date +%s%N)
	deadline=$((start + READY_TIMEOUT * 1000000000))
	until "$@"; do
		now=$(date +%s%N)
		if ! alive "$pid"; then
			tail -n 20 "$STACK_DIR/$server/$server.log" >&2 || true
			die "$server exited before it was ready; log: $STACK_DIR/$server/$server.log"
		fi
		if ((now > deadline)); then
			tail -n 20 "$STACK_DIR/$server/$server.log" >&2 || true
			die "$server not ready after ${READY_TIMEOUT}s; log: $STACK_DIR/$server/$server.log"
		fi
		sleep 0.1
	done
	now=$(date +%s%N)
	printf '%-17s up    pid %-7s %s (ready in %d ms)\n' "$server" "$pid" "$(address "$server")" \
		$(((now - start) / 1000000))
}

address() {
	case "$1" in
	prometheus) echo "http://127.0.0.1:$PROMETHEUS_PORT" ;;
	alertmanager) echo "http://127.0.0.1:$ALERTMANAGER_PORT" ;;
	clickhouse) echo "tcp://127.0.0.1:$CLICKHOUSE_TCP_PORT http://127.0.0.1:$CLICKHOUSE_HTTP_PORT" ;;
	redis) echo "redis://127.0.0.1:$REDIS_PORT" ;;
	mariadb) echo "root@tcp(127.0.0.1:$MARIADB_PORT)/" ;;
	postgres) echo "postgres://carpool@127.0.0.1:$POSTGRES_PORT/carpool?sslmode=disable" ;;
	nats) echo "nats://127.0.0.1:$NATS_PORT http://127.0.0.1:$NATS_MONITOR_PORT" ;;
	victoria-metrics) echo "http://127.0.0.1:$VICTORIA_METRICS_PORT" ;;
	esac
}

ports() {
	case "$1" in
	prometheus) echo "$PROMETHEUS_PORT" ;;
	alertmanager) echo "$ALERTMANAGER_PORT" ;;
	clickhouse) echo "$CLICKHOUSE_TCP_PORT $CLICKHOUSE_HTTP_PORT $CLICKHOUSE_INTERSERVER_PORT" ;;
	redis) echo "$REDIS_PORT" ;;
	mariadb) echo "$MARIADB_PORT" ;;
	postgres) echo "$POSTGRES_PORT" ;;
	nats) echo "$NATS_PORT $NATS_MONITOR_PORT" ;;
	victoria-metrics) echo "$VICTORIA_METRICS_PORT" ;;
	esac
}

up_prometheus() {
	local bin dir=$STACK_DIR/prometheus
	bin=$(need prometheus prometheus)
	mkdir -p "$dir/data" "$dir/rules"
	# Rule files dropped into rules/ are picked up by `curl -X POST http://127.0.0.1:19090/-/reload`.
	cat >"$dir/prometheus.yml" <<EOF
# Written by deploy/local/stack.sh.
global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files:
  - $dir/rules/*.yml
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['127.0.0.1:$ALERTMANAGER_PORT']
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['127.0.0.1:$PROMETHEUS_PORT']
EOF
	launch prometheus "$bin" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
		--web.listen-address="127.0.0.1:$PROMETHEUS_PORT" --web.enable-lifecycle \
		--rules.alert.resend-delay=1s
	wait_ready prometheus http_ok "$PROMETHEUS_PORT" /-/ready
}

up_alertmanager() {
	local bin dir=$STACK_DIR/alertmanager
	bin=$(need alertmanager prometheus-alertmanager)
	mkdir -p "$dir/data"
	cat >"$dir/alertmanager.yml" <<EOF
# Written by deploy/local/stack.sh: every alert goes nowhere.
route:
  receiver: blackhole
receivers:
  - name: blackhole
EOF
	# An empty --cluster.listen-address turns gossip off.
	launch alertmanager "$bin" --config.file="$dir/alertmanager.yml" --storage.path="$dir/data" \
		--web.listen-address="127.0.0.1:$ALERTMANAGER_PORT" --cluster.listen-address=
	wait_ready alertmanager http_ok "$ALERTMANAGER_PORT" /-/ready
}

up_clickhouse() {
	local bin dir=$STACK_DIR/clickhouse
	bin=$(need clickhouse clickhouse-server)
	[[ -r /etc/clickhouse-server/config.xml ]] || die "/etc/clickhouse-server/config.xml missing: reinstall clickhouse-server"
	mkdir -p "$dir/data/tmp" "$dir/data/user_files" "$dir/data/format_schemas" "$dir/log"
	cp /etc/clickhouse-server/users.xml "$dir/users.xml"
	# Copy the packaged config and move every path and port into the stack.
	sed -e "s#/var/lib/clickhouse/#$dir/data/#g" \
		-e "s#/var/log/clickhouse-server/#$dir/log/#g" \
		-e "s#<http_port>[0-9]*</http_port>#<http_port>$CLICKHOUSE_HTTP_PORT</http_port>#" \
		-e "s#<tcp_port>[0-9]*</tcp_port>#<tcp_port>$CLICKHOUSE_TCP_PORT</tcp_port>#" \
		-e "s#<interserver_http_port>[0-9]*</interserver_http_port>#<interserver_http_port>$CLICKHOUSE_INTERSERVER_PORT</interserver_http_port>#" \
		/etc/clickhouse-server/config.xml >"$dir/config.xml"
	launch clickhouse "$bin" --config-file="$dir/config.xml"
	# A port ClickHouse cannot bind is only logged: check the native one as well.
	wait_ready clickhouse clickhouse_ok
}

clickhouse_ok() {
	http_ok "$CLICKHOUSE_HTTP_PORT" /ping && port_open "$CLICKHOUSE_TCP_PORT"
}

up_redis() {
	local bin dir=$STACK_DIR/redis
	bin=$(need redis redis-server)
	mkdir -p "$dir/data"
	launch redis "$bin" --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --dir "$dir/data"
	wait_ready redis redis_ok "$REDIS_PORT"
}

up_mariadb() {
	local bin client dir=$STACK_DIR/mariadb
	bin=$(need mariadb mariadbd mariadb-install-db mariadb)
	client=$(need mariadb mariadb)
	mkdir -p "$dir/data" "$dir/tmp"
	cat >"$dir/my.cnf" <<EOF
# Written by deploy/local/stack.sh.
[mariadbd]
user=$(id -un)
datadir=$dir/data
port=$MARIADB_PORT
bind-address=127.0.0.1
socket=$dir/mariadb.sock
pid-file=$dir/mariadbd.pid
log-error=$dir/mariadb.log
tmpdir=$dir/tmp
innodb-buffer-pool-size=64M
innodb-log-file-size=8M
EOF
	if [[ ! -d $dir/data/mysql ]]; then
		"$(need mariadb mariadb-install-db)" --defaults-file="$dir/my.cnf" \
			--auth-root-authentication-method=normal --skip-test-db >"$dir/install-db.log" 2>&1 ||
			{
				tail -n 20 "$dir/install-db.log" >&2
				die "mariadb-install-db failed; log: $dir/install-db.log"
			}
	fi
	# --defaults-file must be the first argument, or /etc/mysql is read as well.
	launch mariadb "$bin" --defaults-file="$dir/my.cnf"
	wait_ready mariadb mariadb_ok "$client" "$MARIADB_PORT"
}

up_postgres() {
	local bin initdb psql dir=$STACK_DIR/postgres as=()
	bin=$(need postgres postgres initdb psql)
	initdb=$(need postgres initdb)
	psql=$(need postgres psql)
	mkdir -p "$dir"
	if [[ $(id -u) -eq 0 ]]; then
		id postgres >/dev/null 2>&1 || die "PostgreSQL refuses to run as root and there is no postgres user: run \`make stack-deps\` (deploy/local/install.sh postgres)"
		chown -R postgres:postgres "$dir"
		# setpriv execs the server, so the pid launch records is the server's own.
		as=(setpriv --reuid=postgres --regid=postgres --init-groups --)
		"${as[@]}" test -w "$dir" ||
			die "the postgres user cannot write $dir: give it access to every folder above, or set STACK_DIR to a folder it can reach"
	fi
	if [[ ! -f $dir/data/PG_VERSION ]]; then
		rm -rf "$dir/data"
		(cd "$dir" && LC_ALL=C "${as[@]}" "$initdb" -D "$dir/data" -A trust -U carpool -E UTF8 --locale=C \
			--no-instructions >"$dir/initdb.log" 2>&1) ||
			{
				tail -n 20 "$dir/initdb.log" >&2
				die "initdb failed; log: $dir/initdb.log"
			}
	fi
	# -k '': no unix socket (its path is limited to 107 bytes); clients use TCP.
	(cd "$dir" && LC_ALL=C launch postgres "${as[@]}" "$bin" -D "$dir/data" -h 127.0.0.1 -p "$POSTGRES_PORT" -k '')
	wait_ready postgres postgres_ok "$psql" "$POSTGRES_PORT"
	if [[ -z $("$psql" -X -h 127.0.0.1 -p "$POSTGRES_PORT" -U carpool -d postgres -tAc \
		"SELECT 1 FROM pg_database WHERE datname = 'carpool'") ]]; then
		"$psql" -X -q -h 127.0.0.1 -p "$POSTGRES_PORT" -U carpool -d postgres -c 'CREATE DATABASE carpool' ||
			die "creating the database carpool failed"
	fi
}

up_nats() {
	local bin dir=$STACK_DIR/nats
	bin=$(need nats nats-server)
	mkdir -p "$dir/data"
	launch nats "$bin" -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MONITOR_PORT" -js -sd "$dir/data"
	wait_ready nats http_ok "$NATS_MONITOR_PORT" '/healthz?js-enabled-only=true'
}

up_victoria-metrics() {
	local bin dir=$STACK_DIR/victoria-metrics
	bin=$(need victoria-metrics victoria-metrics)
	mkdir -p "$dir/data"
	# Without -search.latencyOffset=0s, samples younger than 30 s are invisible to queries.
	launch victoria-metrics "$bin" -httpListenAddr="127.0.0.1:$VICTORIA_METRICS_PORT" \
		-storageDataPath="$dir/data" -retentionPeriod=1d -search.latencyOffset=0s
	wait_ready victoria-metrics http_ok "$VICTORIA_METRICS_PORT" /health
}

up() {
	local server=$1 pid port
	if pid=$(pid_of "$server"); then
		printf '%-17s up    pid %-7s %s (already running)\n' "$server" "$pid" "$(address "$server")"
		return 0
	fi
	for port in $(ports "$server"); do
		if port_open "$port"; then
			die "$server: port $port on 127.0.0.1 is taken by another process"
		fi
	done
	mkdir -p "$STACK_DIR/$server"
	rm -f "$STACK_DIR/$server/pid"
	"up_$server"
}

# stop_signal SERVER prints the signal that stops a server cleanly without waiting for its clients.
stop_signal() {
	case "$1" in
	postgres) echo INT ;; # SIGTERM is PostgreSQL's smart shutdown: it waits for every client
	*) echo TERM ;;
	esac
}

down() {
	local server=$1 pid deadline start
	if ! pid=$(pid_of "$server"); then
		rm -f "$STACK_DIR/$server/pid"
		printf '%-17s down  (was not running)\n' "$server"
		return 0
	fi
	start=$(date +%s%N)
	kill "-$(stop_signal "$server")" "$pid" 2>/dev/null || true
	deadline=$((SECONDS + STOP_TIMEOUT))
	while alive "$pid"; do
		if ((SECONDS >= deadline)); then
			echo "stack.sh: $server (pid $pid) still running ${STOP_TIMEOUT}s after SIGTERM: SIGKILL" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
		sleep 0.05
	done
	rm -f "$STACK_DIR/$server/pid"
	printf '%-17s down  pid %-7s (stopped in %d ms)\n' "$server" "$pid" $((($(date +%s%N) - start) / 1000000))
}

status() {
	local server=$1 pid
	if pid=$(pid_of "$server"); then
		printf '%-17s up    pid %-7s %s\n' "$server" "$pid" "$(address "$server")"
	else
		printf '%-17s down\n' "$server"
	fi
}

usage() {
	local IFS='|'
	echo "usage: $0 up|down|status [all|${ALL_SERVERS[*]}]..." >&2
	exit 2
}

[[ $# -ge 1 ]] || usage
action=$1
shift
case "$action" in
up | down | status) ;;
*) usage ;;
esac

servers=()
for s in "${@:-all}"; do
	if [[ $s == all ]]; then
		servers+=("${ALL_SERVERS[@]}")
	elif [[ " ${ALL_SERVERS[*]} " == *" $s "* ]]; then
		servers+=("$s")
	else
		echo "stack.sh: unknown server '$s'" >&2
		usage
	fi
done

# Stop in reverse order, so Prometheus goes before the Alertmanager it sends to.
if [[ $action == down ]]; then
	for ((i = ${#servers[@]} - 1; i >= 0; i--)); do
		down "${servers[i]}"
	done
else
	for s in "${servers[@]}"; do
		"$action" "$s"
	done
fi
