#!/usr/bin/env bash
# Runs a private RabbitMQ node for amqproto's integration tests.
#
#   scripts/rabbitmq.sh up      install (if needed), configure and start the node
#   scripts/rabbitmq.sh down    stop it
#   scripts/rabbitmq.sh status  print "up" or "down" (exit status 0 or 3)
#   scripts/rabbitmq.sh env     print `export` lines for the tests
#
# and a 3-node cluster for the recovery and failover tests (see "cluster"
# below for how it forms):
#
#   scripts/rabbitmq.sh cluster-up       start the three nodes (those that are
#                                        down) and wait until they form a cluster
#   scripts/rabbitmq.sh cluster-down     stop them
#   scripts/rabbitmq.sh cluster-status   each node's state (exit status 0 or 3)
#   scripts/rabbitmq.sh cluster-env     print `export` lines for the tests
#   scripts/rabbitmq.sh node-kill N      kill -9 node N's Erlang VM (N = 1..3)
#   scripts/rabbitmq.sh node-stop N      stop node N gracefully
#   scripts/rabbitmq.sh node-start N     start node N again and wait until it
#                                        answers and sees the whole cluster
#   scripts/rabbitmq.sh quorum-ready Q [SECONDS]
#                                        wait until quorum queue Q (vhost /) has
#                                        a leader and every other member follows
#
# The node runs as the current user (root on CI), without systemd and without
# the /usr/sbin wrappers (they switch to the rabbitmq user and drop every
# RABBITMQ_* variable). Everything lives under $AMQP_STATE_DIR
# (default /tmp/amqproto-rabbitmq) and listens on 127.0.0.1 only.
#
# Environment:
#   AMQP_STATE_DIR      state directory (default /tmp/amqproto-rabbitmq)
#   AMQP_PORT           AMQP port (default 5672)
#   AMQPS_PORT          AMQP over TLS port (default 5671)
#   AMQP_DIST_PORT      Erlang distribution port (default 25672)
#   AMQP_NODENAME       Erlang node name (default rabbit@localhost)
#   AMQP_BOOT_TIMEOUT   seconds to wait for the node (default 90)
#   AMQP_KEEP_DATA=1    keep the node's database between `up`s (default: wiped,
#                       so every start begins with only the fixture definitions)
#   AMQP_CLUSTER_DIR    the cluster's state directory (default /tmp/amqproto-cluster)
#   AMQP_CLUSTER_PORT   node 1's AMQP port (default 5673; nodes 2 and 3 take
#                       the next two; distribution ports are 20000 higher)
#   AMQP_CLUSTER_PREFIX node names are PREFIX1..3@localhost (default rabbit)
#   AMQP_CLUSTER_BOOT_TIMEOUT seconds to wait for the cluster (default 180)
set -euo pipefail

STATE="${AMQP_STATE_DIR:-/tmp/amqproto-rabbitmq}"
PORT="${AMQP_PORT:-5672}"
TLS_PORT="${AMQPS_PORT:-5671}"
DIST_PORT="${AMQP_DIST_PORT:-25672}"
BOOT_TIMEOUT="${AMQP_BOOT_TIMEOUT:-90}"
NODENAME="${AMQP_NODENAME:-rabbit@localhost}"
RMQ_BIN=/usr/lib/rabbitmq/bin

CERTS="$STATE/certs"
HOME_DIR="$STATE/home"
LOG_DIR="$STATE/log"
SERVER_LOG="$LOG_DIR/server.out"
PID_FILE="$STATE/rabbit.pid"
LAUNCHER_PID_FILE="$STATE/launcher.pid"
CTL_WRAPPER="$STATE/rabbitmqctl"

log() { printf 'rabbitmq.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# ---------------------------------------------------------------- install

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	else
		sudo "$@"
	fi
}

ensure_packages() {
	local missing=()
	[ -x "$RMQ_BIN/rabbitmq-server" ] || missing+=(rabbitmq-server)
	command -v openssl >/dev/null 2>&1 || missing+=(openssl)
	command -v amqp-get >/dev/null 2>&1 || missing+=(amqp-tools)
	/usr/bin/python3 -c 'import pika' >/dev/null 2>&1 || missing+=(python3-pika)
	[ "${#missing[@]}" -eq 0 ] && return 0
	log "installing ${missing[*]} with apt-get"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
	# Debian's package may try to start a service; there is no init system here,
	# and we run our own node anyway.
	[ -x "$RMQ_BIN/rabbitmq-server" ] || die "rabbitmq-server is still missing after apt-get"
}

# ---------------------------------------------------------------- environment

# The environment shared by the server and every CLI call.
rmq_env() {
	export HOME="$HOME_DIR"
	export LC_ALL=C.UTF-8 LANG=C.UTF-8
	export RABBITMQ_NODENAME="$NODENAME"
	export RABBITMQ_CONFIG_FILE="$STATE/rabbitmq.conf"
	export RABBITMQ_ADVANCED_CONFIG_FILE="$STATE/advanced.config"
	export RABBITMQ_ENABLED_PLUGINS_FILE="$STATE/enabled_plugins"
	export RABBITMQ_MNESIA_BASE="$STATE/mnesia"
	export RABBITMQ_LOG_BASE="$LOG_DIR"
	export RABBITMQ_PID_FILE="$PID_FILE"
	export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
	export RABBITMQ_NODE_PORT="$PORT"
	export RABBITMQ_DIST_PORT="$DIST_PORT"
	export RABBITMQ_CONF_ENV_FILE="$STATE/rabbitmq-env.conf"
	# epmd is started by the first Erlang program that needs it (the server or
	# rabbitmqctl) and then outlives them: both must ask for loopback.
	export ERL_EPMD_ADDRESS=127.0.0.1
	export ERL_CRASH_DUMP="$LOG_DIR/erl_crash.dump"
	export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

# rabbitmqctl with the node's environment, in a subshell so that the caller's
# environment stays untouched.
ctl() (
	rmq_env
	exec "$RMQ_BIN/rabbitmqctl" "$@"
)

# ---------------------------------------------------------------- certificates

gen_certs() {
	local f all=1
	for f in ca.pem server.pem server-key.pem client.pem client-key.pem \
		untrusted-client.pem untrusted-client-key.pem; do
		[ -s "$CERTS/$f" ] || all=0
	done
	if [ "$all" -eq 1 ]; then
		return 0
	fi
	log "generating certificates in $CERTS"
	rm -rf "$CERTS"
	mkdir -p "$CERTS"
	(
		cd "$CERTS"
		umask 077
		local days=3650 ossl=(openssl)

		# CA trusted by the broker.
		"${ossl[@]}" req -x509 -newkey rsa:2048 -nodes -sha256 -days "$days" \
			-subj "/CN=amqproto test CA" \
			-keyout ca-key.pem -out ca.pem \
			-addext "basicConstraints=critical,CA:TRUE" \
			-addext "keyUsage=critical,keyCertSign,cRLSign" \
			-addext "subjectKeyIdentifier=hash" 2>/dev/null

		# Server certificate.
		cat >server.ext <<-EOF
			basicConstraints=critical,CA:FALSE
			keyUsage=critical,digitalSignature,keyEncipherment
			extendedKeyUsage=serverAuth
			subjectAltName=DNS:localhost,IP:127.0.0.1
			subjectKeyIdentifier=hash
			authorityKeyIdentifier=keyid
		EOF
		"${ossl[@]}" req -new -newkey rsa:2048 -nodes -sha256 \
			-subj "/CN=localhost" -keyout server-key.pem -out server.csr 2>/dev/null
		"${ossl[@]}" x509 -req -sha256 -days "$days" -in server.csr \
			-CA ca.pem -CAkey ca-key.pem -CAcreateserial -CAserial ca.srl \
			-extfile server.ext -out server.pem 2>/dev/null

		# Client certificate: its CN is the user name for EXTERNAL.
		cat >client.ext <<-EOF
			basicConstraints=critical,CA:FALSE
			keyUsage=critical,digitalSignature,keyEncipherment
			extendedKeyUsage=clientAuth
			subjectKeyIdentifier=hash
			authorityKeyIdentifier=keyid
		EOF
		"${ossl[@]}" req -new -newkey rsa:2048 -nodes -sha256 \
			-subj "/CN=amqproto-client" -keyout client-key.pem -out client.csr 2>/dev/null
		"${ossl[@]}" x509 -req -sha256 -days "$days" -in client.csr \
			-CA ca.pem -CAkey ca-key.pem -CAserial ca.srl \
			-extfile client.ext -out client.pem 2>/dev/null

		# A client certificate with the same CN, from a CA the broker does not
		# trust: the broker must refuse it.
		"${ossl[@]}" req -x509 -newkey rsa:2048 -nodes -sha256 -days "$days" \
			-subj "/CN=amqproto untrusted CA" \
			-keyout untrusted-ca-key.pem -out untrusted-ca.pem \
			-addext "basicConstraints=critical,CA:TRUE" \
			-addext "keyUsage=critical,keyCertSign,cRLSign" \
			-addext "subjectKeyIdentifier=hash" 2>/dev/null
		"${ossl[@]}" req -new -newkey rsa:2048 -nodes -sha256 \
			-subj "/CN=amqproto-client" -keyout untrusted-client-key.pem \
			-out untrusted-client.csr 2>/dev/null
		"${ossl[@]}" x509 -req -sha256 -days "$days" -in untrusted-client.csr \
			-CA untrusted-ca.pem -CAkey untrusted-ca-key.pem \
			-CAcreateserial -CAserial untrusted-ca.srl \
			-extfile client.ext -out untrusted-client.pem 2>/dev/null

		rm -f ./*.csr ./*.ext
		chmod 0644 ./*.pem
		# Private keys: readable by the owner only (the broker runs as the
		# same user as this script).
		chmod 0600 ./*-key.pem
	) || die "certificate generation failed"
}

# ---------------------------------------------------------------- definitions

# rabbit_password_hashing_sha256: base64(salt ++ sha256(salt ++ password)),
# with a 4-byte random salt.
password_hash() {
	local tmp
	tmp="$(mktemp -d)"
	head -c 4 /dev/urandom >"$tmp/salt"
	{ cat "$tmp/salt"; printf '%s' "$1"; } | openssl dgst -sha256 -binary >"$tmp/digest"
	cat "$tmp/salt" "$tmp/digest" | openssl base64 -A
	rm -rf "$tmp"
}

write_definitions() {
	local guest limited noaccess algo=rabbit_password_hashing_sha256
	guest="$(password_hash guest)"
	limited="$(password_hash limited)"
	noaccess="$(password_hash noaccess)"
	cat >"$STATE/definitions.json" <<EOF
{
  "rabbit_version": "3.10.8",
  "users": [
    {"name": "guest", "password_hash": "$guest", "hashing_algorithm": "$algo", "tags": ["administrator"], "limits": {}},
    {"name": "limited", "password_hash": "$limited", "hashing_algorithm": "$algo", "tags": [], "limits": {}},
    {"name": "noaccess", "password_hash": "$noaccess", "hashing_algorithm": "$algo", "tags": [], "limits": {}},
    {"name": "amqproto-client", "password_hash": "", "hashing_algorithm": "$algo", "tags": [], "limits": {}}
  ],
  "vhosts": [
    {"name": "/"},
    {"name": "amqproto-limited"}
  ],
  "permissions": [
    {"user": "guest", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"},
    {"user": "guest", "vhost": "amqproto-limited", "configure": ".*", "write": ".*", "read": ".*"},
    {"user": "limited", "vhost": "amqproto-limited", "configure": "^limited\\\\..*", "write": "^limited\\\\..*", "read": "^limited\\\\..*"},
    {"user": "amqproto-client", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}
  ],
  "topic_permissions": [],
  "parameters": [],
  "global_parameters": [],
  "policies": [],
  "queues": [],
  "exchanges": [],
  "bindings": []
}
EOF
}

# ---------------------------------------------------------------- configuration

write_config() {
	mkdir -p "$STATE" "$HOME_DIR" "$LOG_DIR"
	if [ ! -s "$HOME_DIR/.erlang.cookie" ]; then
		rm -f "$HOME_DIR/.erlang.cookie"
		(umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr 'a-f' 'A-F' >"$HOME_DIR/.erlang.cookie")
	fi
	chmod 0400 "$HOME_DIR/.erlang.cookie"

	: >"$STATE/rabbitmq-env.conf"
	echo '[rabbitmq_auth_mechanism_ssl].' >"$STATE/enabled_plugins"
	echo '[].' >"$STATE/advanced.config"
	write_definitions

	cat >"$STATE/rabbitmq.conf" <<EOF
# Generated by scripts/rabbitmq.sh; edits are overwritten by "up".
listeners.tcp.default = 127.0.0.1:$PORT
listeners.ssl.default = 127.0.0.1:$TLS_PORT

ssl_options.cacertfile = $CERTS/ca.pem
ssl_options.certfile = $CERTS/server.pem
ssl_options.keyfile = $CERTS/server-key.pem
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
ssl_options.versions.1 = tlsv1.3
ssl_options.versions.2 = tlsv1.2

auth_mechanisms.1 = PLAIN
auth_mechanisms.2 = AMQPLAIN
auth_mechanisms.3 = EXTERNAL
ssl_cert_login_from = common_name

load_definitions = $STATE/definitions.json
loopback_users.guest = true

log.file.level = info
log.console = false
EOF

	# rabbitmqctl with this node's environment, for tests and humans.
	write_wrapper "$CTL_WRAPPER" rabbitmqctl "the private test node"
}

# Writes an executable script at $1 that runs the CLI tool $2 of $RMQ_BIN
# with the node's environment; $3 says for what, in its comment.
write_wrapper() {
	{
		echo '#!/usr/bin/env bash'
		echo "# Generated by scripts/rabbitmq.sh: $2 for $3."
		local v
		for v in HOME LC_ALL LANG RABBITMQ_NODENAME RABBITMQ_CONFIG_FILE \
			RABBITMQ_ADVANCED_CONFIG_FILE RABBITMQ_ENABLED_PLUGINS_FILE \
			RABBITMQ_MNESIA_BASE RABBITMQ_LOG_BASE RABBITMQ_PID_FILE \
			RABBITMQ_NODE_IP_ADDRESS RABBITMQ_NODE_PORT RABBITMQ_DIST_PORT \
			RABBITMQ_CONF_ENV_FILE ERL_EPMD_ADDRESS ERL_CRASH_DUMP \
			RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS; do
			printf 'export %s=%q\n' "$v" "$(rmq_env; printenv "$v")"
		done
		printf 'exec %q "$@"\n' "$RMQ_BIN/$2"
	} >"$1.tmp"
	chmod 0755 "$1.tmp"
	mv -f "$1.tmp" "$1"
}

# ---------------------------------------------------------------- probes

# True when something on 127.0.0.1:$PORT answers the AMQP 0-9-1 protocol
# header with a method frame (Connection.Start).
amqp_answers() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 5 bash -c '
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf "AMQP\x00\x00\x09\x01" >&3
		b="$(head -c 1 <&3 | od -An -tx1 | tr -d " \n")"
		exec 3<&- 3>&-
		[ "$b" = 01 ]
	' _ "$PORT" 2>/dev/null
}

port_open() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# Prints the pid recorded in file $1 if that process runs and its command
# name matches $2 (so that a stale pid file never designates another program).
live_pid() {
	local pid comm state
	[ -s "$1" ] || return 1
	pid="$(tr -dc 0-9 <"$1")"
	[ -n "$pid" ] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	# A killed process that nobody reaped (PID 1 may not reap orphans) is
	# a zombie: it no longer runs.
	state="$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1 || true)"
	[ -n "$state" ] && [ "$state" != Z ] || return 1
	comm="$(cat "/proc/$pid/comm" 2>/dev/null || true)"
	[[ "$comm" =~ $2 ]] || return 1
	echo "$pid"
}

# The broker's OS pid (the Erlang VM), if it is running.
node_pid() { live_pid "$PID_FILE" '^beam'; }

# The pid of rabbitmq-server's shell that setsid started, if it is running.
launcher_pid() { live_pid "$LAUNCHER_PID_FILE" '^(rabbitmq-server|setsid|sh|bash)$'; }

is_up() {
	node_pid >/dev/null && amqp_answers
}

show_logs() {
	log "server output: $SERVER_LOG"
	log "node logs:     $LOG_DIR/"
	if [ -f "$SERVER_LOG" ]; then
		log "---- tail $SERVER_LOG"
		tail -n 40 "$SERVER_LOG" >&2 || true
	fi
	local f
	for f in "$LOG_DIR"/*.log; do
		[ -f "$f" ] || continue
		log "---- tail $f"
		tail -n 40 "$f" >&2 || true
	done
}

# ---------------------------------------------------------------- one node

# Starts the node described by the globals (STATE, PORT, NODENAME, ...) in
# the background, in a session of its own, its output in $SERVER_LOG.
launch_node() {
	rm -f "$PID_FILE" "$LAUNCHER_PID_FILE"
	mkdir -p "$LOG_DIR"
	(
		rmq_env
		cd "$STATE"
		exec 9>&- # the lock stays with this script, not with the node
		exec setsid -w "$RMQ_BIN/rabbitmq-server" </dev/null >>"$SERVER_LOG" 2>&1
	) &
	echo $! >"$LAUNCHER_PID_FILE"
}

# Waits, until second $1 of $SECONDS, for the node that launch_node started
# to answer the AMQP header; exits the script with its logs when it does not.
await_node() {
	local deadline=$1
	# The PID file first (the CLI's `wait` needs it), then the node.
	while [ ! -s "$PID_FILE" ]; do
		if ! launcher_pid >/dev/null; then
			log "$NODENAME exited during startup"
			show_logs
			exit 1
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			log "$NODENAME: no PID file after ${BOOT_TIMEOUT}s"
			show_logs
			exit 1
		fi
		sleep 0.2
	done
	local left=$((deadline - SECONDS))
	[ "$left" -gt 0 ] || left=1
	if ! timeout "$((left + 5))" "$CTL_WRAPPER" wait --timeout "$left" "$PID_FILE" >>"$SERVER_LOG" 2>&1; then
		log "$NODENAME did not start (rabbitmqctl wait failed)"
		show_logs
		exit 1
	fi
	until amqp_answers; do
		if ! node_pid >/dev/null; then
			log "$NODENAME exited during startup"
			show_logs
			exit 1
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			log "127.0.0.1:$PORT does not answer the AMQP header after ${BOOT_TIMEOUT}s"
			show_logs
			exit 1
		fi
		sleep 0.2
	done
}

# Stops the node gracefully (rabbitmqctl shutdown), then whatever is left of
# it by pid; returns 1 when nothing was running.
stop_node() {
	local pid lpid
	pid="$(node_pid || true)"
	lpid="$(launcher_pid || true)"
	if [ -z "$pid" ] && [ -z "$lpid" ]; then
		return 1
	fi
	if [ -n "$pid" ]; then
		timeout 60 "$CTL_WRAPPER" shutdown >/dev/null 2>&1 ||
			log "rabbitmqctl shutdown failed; killing $NODENAME"
	fi
	# Leftovers: the beam process and the launcher (rabbitmq-server's shell),
	# by pid. Their process group is the session setsid created for them.
	local i sig pgid
	for i in $(seq 1 50); do
		pid="$(node_pid || true)"
		lpid="$(launcher_pid || true)"
		[ -z "$pid" ] && [ -z "$lpid" ] && break
		sig=
		[ "$i" -eq 20 ] && sig=TERM
		[ "$i" -eq 40 ] && sig=KILL
		if [ -n "$sig" ]; then
			pgid=
			[ -n "$pid" ] && pgid="$(ps -o pgid= -p "$pid" 2>/dev/null | tr -dc 0-9 || true)"
			if [ -n "$pid" ]; then kill "-$sig" "$pid" 2>/dev/null || true; fi
			if [ -n "$lpid" ]; then kill "-$sig" "$lpid" 2>/dev/null || true; fi
			# Only a group that setsid made for the node, never our own.
			if [ -n "$pgid" ] && [ "$pgid" != "$(ps -o pgid= -p $$ | tr -dc 0-9)" ]; then
				kill "-$sig" -- "-$pgid" 2>/dev/null || true
			fi
		fi
		sleep 0.2
	done
	if node_pid >/dev/null || launcher_pid >/dev/null; then
		die "$NODENAME is still running"
	fi
	rm -f "$PID_FILE" "$LAUNCHER_PID_FILE"
}

# ---------------------------------------------------------------- commands

cmd_up() {
	if is_up; then
		echo "rabbitmq: already up (pid $(node_pid), amqp://127.0.0.1:$PORT, amqps://localhost:$TLS_PORT)"
		return 0
	fi
	ensure_packages
	command -v openssl >/dev/null 2>&1 || die "openssl is missing"

	# A node of ours that runs but does not answer: start from scratch.
	if node_pid >/dev/null || launcher_pid >/dev/null; then
		log "a previous node is running but does not answer on $PORT: stopping it"
		cmd_down
	fi
	local p
	for p in "$PORT" "$TLS_PORT" "$DIST_PORT"; do
		if port_open "$p"; then
			die "127.0.0.1:$p is already in use by another process (not our node in $STATE)"
		fi
	done

	mkdir -p "$STATE"
	gen_certs
	write_config
	if [ "${AMQP_KEEP_DATA:-}" != 1 ]; then
		rm -rf "$STATE/mnesia"
	fi
	mkdir -p "$LOG_DIR"
	rm -f "$LOG_DIR"/*.log
	: >"$SERVER_LOG"

	local start=$SECONDS
	echo "rabbitmq: starting $NODENAME (state in $STATE)"
	launch_node
	await_node $((SECONDS + BOOT_TIMEOUT))
	echo "rabbitmq: up after $((SECONDS - start))s (pid $(node_pid), amqp://127.0.0.1:$PORT, amqps://localhost:$TLS_PORT)"
}

cmd_down() {
	if stop_node; then
		echo "rabbitmq: down"
	else
		echo "rabbitmq: already down"
	fi
}

cmd_status() {
	if is_up; then
		echo "up (pid $(node_pid), amqp://127.0.0.1:$PORT, amqps://localhost:$TLS_PORT, state $STATE)"
	elif node_pid >/dev/null; then
		echo "down (node process $(node_pid) runs but 127.0.0.1:$PORT does not answer)"
		return 3
	else
		echo "down"
		return 3
	fi
}

cmd_env() {
	q() { printf 'export %s=%q\n' "$1" "$2"; }
	q AMQP_URL "amqp://guest:guest@127.0.0.1:$PORT/"
	q AMQPS_URL "amqps://localhost:$TLS_PORT/"
	q AMQP_TLS_CA "$CERTS/ca.pem"
	q AMQP_TLS_CERT "$CERTS/client.pem"
	q AMQP_TLS_KEY "$CERTS/client-key.pem"
	q AMQP_TLS_UNTRUSTED_CERT "$CERTS/untrusted-client.pem"
	q AMQP_TLS_UNTRUSTED_KEY "$CERTS/untrusted-client-key.pem"
	q AMQP_LIMITED_URL "amqp://limited:limited@127.0.0.1:$PORT/amqproto-limited"
	q AMQP_NOACCESS_URL "amqp://noaccess:noaccess@127.0.0.1:$PORT/"
	q AMQP_RABBITMQCTL "$CTL_WRAPPER"
}

# ---------------------------------------------------------------- cluster
#
# Three nodes ${CLUSTER_PREFIX}1..3@localhost on AMQP ports CLUSTER_PORT..+2
# (Erlang distribution port = AMQP port + 20000), plain AMQP only, one shared
# Erlang cookie, state under $CLUSTER_DIR/nodeN. Node 1 boots as a
# standalone node and loads the definitions; then nodes 2 and 3, which name
# only node 1 (and themselves) in their classic_config peer discovery, join
# it. That makes the formation deterministic without RabbitMQ's randomized
# startup delay (5 to 60 s by default), which exists for nodes that all name
# each other. Nodes 2 and 3 must not join while node 1 creates the vhosts:
# they would never start them, and refuse every connection.open ("vhost '/'
# is down") while answering the AMQP header.
#
# A node that was part of the cluster and restarts (node-start) skips peer
# discovery: it rejoins from its own database. After all three stopped,
# cluster-up wipes the databases and forms the cluster again (unless
# AMQP_KEEP_DATA=1: then it starts all three together, since a node that did
# not stop last waits for its peers).

CLUSTER_DIR="${AMQP_CLUSTER_DIR:-/tmp/amqproto-cluster}"
CLUSTER_PORT="${AMQP_CLUSTER_PORT:-5673}"
CLUSTER_PREFIX="${AMQP_CLUSTER_PREFIX:-rabbit}"
CLUSTER_SIZE=3
CLUSTER_CTL="$CLUSTER_DIR/rabbitmqctl"
CLUSTER_QUEUES="$CLUSTER_DIR/rabbitmq-queues"
CLUSTER_SCRIPT="$CLUSTER_DIR/rabbitmq.sh"

cluster_node_name() { echo "${CLUSTER_PREFIX}$1@localhost"; }

# Points the globals that describe "the node" (used by rmq_env, launch_node,
# node_pid, amqp_answers, ...) at cluster node $1.
use_node() {
	case "$1" in
	1 | 2 | 3) ;;
	*) die "no cluster node \"$1\" (nodes are 1, 2 and 3)" ;;
	esac
	NODE=$1
	STATE="$CLUSTER_DIR/node$1"
	PORT=$((CLUSTER_PORT + $1 - 1))
	DIST_PORT=$((PORT + 20000))
	NODENAME="$(cluster_node_name "$1")"
	HOME_DIR="$CLUSTER_DIR/home" # one cookie for every node and the CLI
	LOG_DIR="$STATE/log"
	SERVER_LOG="$LOG_DIR/server.out"
	PID_FILE="$STATE/rabbit.pid"
	LAUNCHER_PID_FILE="$STATE/launcher.pid"
	CTL_WRAPPER="$STATE/rabbitmqctl" # this node's, for launch_node and stop_node
}

# rabbitmqctl for each node (the script's own), rabbitmqctl and
# rabbitmq-queues aimed at node 1 by default (-n picks another), and this
# script with the cluster's settings baked in, for tests.
write_cluster_tools() {
	local n
	for n in 3 2 1; do
		use_node "$n"
		mkdir -p "$STATE"
		write_wrapper "$CTL_WRAPPER" rabbitmqctl "$NODENAME"
	done
	write_wrapper "$CLUSTER_CTL" rabbitmqctl "the test cluster (node 1 unless -n NODE)"
	write_wrapper "$CLUSTER_QUEUES" rabbitmq-queues "the test cluster (node 1 unless -n NODE)"
	{
		echo '#!/usr/bin/env bash'
		echo '# Generated by scripts/rabbitmq.sh: its cluster commands for this cluster.'
		printf 'export AMQP_CLUSTER_DIR=%q AMQP_CLUSTER_PORT=%q AMQP_CLUSTER_PREFIX=%q\n' \
			"$CLUSTER_DIR" "$CLUSTER_PORT" "$CLUSTER_PREFIX"
		printf 'exec %q "$@"\n' "$SELF"
	} >"$CLUSTER_SCRIPT.tmp"
	chmod 0755 "$CLUSTER_SCRIPT.tmp"
	mv -f "$CLUSTER_SCRIPT.tmp" "$CLUSTER_SCRIPT"
}

write_cluster_config() {
	local n
	mkdir -p "$CLUSTER_DIR/home"
	if [ ! -s "$CLUSTER_DIR/home/.erlang.cookie" ]; then
		rm -f "$CLUSTER_DIR/home/.erlang.cookie"
		(umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr 'a-f' 'A-F' >"$CLUSTER_DIR/home/.erlang.cookie")
	fi
	chmod 0400 "$CLUSTER_DIR/home/.erlang.cookie"
	for n in 1 2 3; do
		use_node "$n"
		mkdir -p "$STATE" "$LOG_DIR"
		: >"$STATE/rabbitmq-env.conf"
		echo '[].' >"$STATE/enabled_plugins"
		echo '[].' >"$STATE/advanced.config"
		write_definitions
		cat >"$STATE/rabbitmq.conf" <<-CONF
			# Generated by scripts/rabbitmq.sh; edits are overwritten by "cluster-up".
			listeners.tcp.default = 127.0.0.1:$PORT
			load_definitions = $STATE/definitions.json
			loopback_users.guest = true
			log.file.level = info
			log.console = false
		CONF
		if [ "$n" -ne 1 ]; then
			cat >>"$STATE/rabbitmq.conf" <<-CONF
				cluster_formation.peer_discovery_backend = classic_config
				cluster_formation.classic_config.nodes.1 = $(cluster_node_name 1)
				cluster_formation.classic_config.nodes.2 = $NODENAME
				cluster_formation.randomized_startup_delay_range.min = 0
				cluster_formation.randomized_startup_delay_range.max = 1
				cluster_formation.discovery_retry_limit = $((BOOT_TIMEOUT * 2))
				cluster_formation.discovery_retry_interval = 500
			CONF
		fi
	done
	write_cluster_tools
}

# The number of running nodes in the cluster as node $1 sees it (0 when it
# does not answer).
cluster_running_count() {
	local out
	out="$(timeout 20 "$CLUSTER_CTL" -n "$(cluster_node_name "$1")" cluster_status --formatter json 2>/dev/null || true)"
	out="$(printf '%s' "$out" | tr -d ' \n' | grep -o '"running_nodes":\[[^]]*\]' || true)"
	printf '%s' "$out" | grep -o '@' | wc -l
}

# True when every virtual host runs on node $1. A node answers AMQP with a
# vhost that is not running there (connection.open then fails with "vhost
# '/' is down"): RabbitMQ 3.10 starts a new vhost only on the nodes that run
# when it is created, and a node that joined meanwhile never starts it.
vhosts_running() {
	local out
	out="$(timeout 20 "$CLUSTER_CTL" -n "$(cluster_node_name "$1")" eval \
		'lists:all(fun(V) -> rabbit_vhost_sup_sup:is_vhost_alive(V) end, rabbit_vhost:list_names()).' \
		2>/dev/null || true)"
	[ "$out" = true ]
}

# Starts on node $1 every vhost that does not run there.
restart_vhosts() {
	timeout 20 "$CLUSTER_CTL" -n "$(cluster_node_name "$1")" eval \
		'[rabbit_vhost_sup_sup:start_vhost(V) || V <- rabbit_vhost:list_names(), not rabbit_vhost_sup_sup:is_vhost_alive(V)].' \
		>/dev/null 2>&1 || true
}

# Waits until node $1 sees every node running and runs every vhost, or until
# second $2. A vhost still down 10 s after the node sees the whole cluster is
# started by hand, once.
await_cluster_view() {
	local whole_since=
	use_node "$1"
	until [ "$(cluster_running_count "$1")" -eq "$CLUSTER_SIZE" ] && vhosts_running "$1"; do
		node_pid >/dev/null || die "$NODENAME exited while joining the cluster"
		if [ "$SECONDS" -ge "$2" ]; then
			show_logs
			die "$NODENAME does not see $CLUSTER_SIZE running nodes, or does not run every vhost, after ${BOOT_TIMEOUT}s"
		fi
		if [ "$(cluster_running_count "$1")" -eq "$CLUSTER_SIZE" ]; then
			whole_since="${whole_since:-$SECONDS}"
			if [ "$whole_since" != done ] && [ $((SECONDS - whole_since)) -ge 10 ]; then
				log "$NODENAME does not run every vhost: starting them"
				restart_vhosts "$1"
				whole_since=done
			fi
		fi
		sleep 0.5
	done
}

# Starts the nodes given as arguments together and waits until each answers
# AMQP.
boot_nodes() {
	local n deadline=$((SECONDS + BOOT_TIMEOUT))
	for n in "$@"; do
		use_node "$n"
		: >>"$SERVER_LOG"
		echo "rabbitmq: starting $NODENAME (amqp://127.0.0.1:$PORT, state in $STATE)"
		launch_node
	done
	for n in "$@"; do
		use_node "$n"
		await_node "$deadline"
	done
}

# Starts the nodes given as arguments together and waits until each answers
# AMQP, sees the whole cluster running and runs every vhost.
start_nodes() {
	local n deadline=$((SECONDS + BOOT_TIMEOUT))
	boot_nodes "$@"
	for n in "$@"; do
		await_cluster_view "$n" "$deadline"
	done
}

# The first node that answers AMQP, for CLI calls that need any live node.
any_live_node() {
	local n
	for n in 1 2 3; do
		use_node "$n"
		if is_up; then
			echo "$n"
			return 0
		fi
	done
	return 1
}

cmd_cluster_up() {
	local n start=$SECONDS down=() running=0
	for n in 1 2 3; do
		use_node "$n"
		if node_pid >/dev/null || launcher_pid >/dev/null; then
			running=$((running + 1))
		else
			down+=("$n")
		fi
	done
	if [ "$running" -eq "$CLUSTER_SIZE" ] && cluster_healthy; then
		echo "rabbitmq: cluster already up ($(cluster_urls))"
		return 0
	fi
	ensure_packages
	if [ "$running" -gt 0 ]; then
		# Part of the cluster runs: start the rest, keeping the data.
		write_cluster_tools
		[ "${#down[@]}" -eq 0 ] || start_nodes "${down[@]}"
		for n in 1 2 3; do
			await_cluster_view "$n" $((SECONDS + BOOT_TIMEOUT))
		done
	else
		local p
		for n in 1 2 3; do
			use_node "$n"
			for p in "$PORT" "$DIST_PORT"; do
				if port_open "$p"; then
					die "127.0.0.1:$p is already in use by another process (not our node in $STATE)"
				fi
			done
		done
		write_cluster_config
		for n in 1 2 3; do
			use_node "$n"
			if [ "${AMQP_KEEP_DATA:-}" != 1 ]; then
				rm -rf "$STATE/mnesia"
			fi
			rm -f "$LOG_DIR"/*.log
			: >"$SERVER_LOG"
		done
		if [ "${AMQP_KEEP_DATA:-}" = 1 ]; then
			start_nodes 1 2 3
		else
			# Node 1 first, with its vhosts: a node that joins while
			# node 1 creates them would not run them (see vhosts_running).
			boot_nodes 1
			start_nodes 2 3
			await_cluster_view 1 $((SECONDS + BOOT_TIMEOUT))
		fi
	fi
	echo "rabbitmq: cluster up after $((SECONDS - start))s ($(cluster_urls))"
}

# True when every node answers AMQP and node 1 sees all of them running.
cluster_healthy() {
	local n
	for n in 1 2 3; do
		use_node "$n"
		is_up || return 1
	done
	[ "$(cluster_running_count 1)" -eq "$CLUSTER_SIZE" ] || return 1
	for n in 1 2 3; do
		vhosts_running "$n" || return 1
	done
}

cmd_cluster_down() {
	local n pids=()
	[ -d "$CLUSTER_DIR/node1" ] || { echo "rabbitmq: cluster already down"; return 0; }
	write_cluster_tools
	# In parallel: each stop waits for its node, and a node that stops
	# while its peers are still up only takes longer.
	for n in 1 2 3; do
		(
			use_node "$n"
			if stop_node; then echo "rabbitmq: $NODENAME down"; fi
		) &
		pids+=($!)
	done
	local failed=0
	for n in "${pids[@]}"; do
		wait "$n" || failed=1
	done
	[ "$failed" -eq 0 ] || die "a cluster node did not stop"
	echo "rabbitmq: cluster down"
}

cmd_cluster_status() {
	local n ok=0
	for n in 1 2 3; do
		use_node "$n"
		if is_up; then
			echo "$NODENAME: up (pid $(node_pid), amqp://127.0.0.1:$PORT)"
		else
			echo "$NODENAME: down"
			ok=3
		fi
	done
	if n="$(any_live_node)"; then
		echo "running nodes as $(cluster_node_name "$n") sees them: $(cluster_running_count "$n")"
		[ "$(cluster_running_count "$n")" -eq "$CLUSTER_SIZE" ] || ok=3
	fi
	return "$ok"
}

cluster_urls() {
	local n urls=()
	for n in 1 2 3; do
		urls+=("amqp://guest:guest@127.0.0.1:$((CLUSTER_PORT + n - 1))/")
	done
	(IFS=,; echo "${urls[*]}")
}

cmd_cluster_env() {
	q() { printf 'export %s=%q\n' "$1" "$2"; }
	local n nodes=()
	for n in 1 2 3; do nodes+=("$(cluster_node_name "$n")"); done
	q AMQP_CLUSTER_URLS "$(cluster_urls)"
	q AMQP_CLUSTER_NODES "$(IFS=,; echo "${nodes[*]}")"
	q AMQP_CLUSTER_CTL "$CLUSTER_CTL"
	q AMQP_CLUSTER_SCRIPT "$CLUSTER_SCRIPT"
}

# kill -9 of node $1's Erlang VM, as a crash or power loss would do it; waits
# until the process is gone.
cmd_node_kill() {
	use_node "$1"
	local pid i
	pid="$(node_pid)" || die "$NODENAME is not running"
	kill -KILL "$pid"
	for i in $(seq 1 100); do
		node_pid >/dev/null || break
		sleep 0.1
	done
	node_pid >/dev/null && die "$NODENAME (pid $pid) survived kill -9"
	rm -f "$PID_FILE" "$LAUNCHER_PID_FILE"
	echo "rabbitmq: killed $NODENAME (pid $pid)"
}

cmd_node_stop() {
	write_cluster_tools
	use_node "$1"
	if stop_node; then
		echo "rabbitmq: $NODENAME down"
	else
		echo "rabbitmq: $NODENAME already down"
	fi
}

# Starts node $1 again (a no-op when it is up) and waits until it answers
# AMQP and sees the whole cluster running.
cmd_node_start() {
	local start=$SECONDS
	[ -s "$CLUSTER_DIR/node$1/rabbitmq.conf" ] || die "cluster node $1 was never configured: run cluster-up"
	write_cluster_tools
	use_node "$1"
	if is_up; then
		await_cluster_view "$1" $((SECONDS + BOOT_TIMEOUT))
		echo "rabbitmq: $NODENAME already up"
		return 0
	fi
	if launcher_pid >/dev/null; then
		stop_node || true
	fi
	start_nodes "$1"
	echo "rabbitmq: $(cluster_node_name "$1") up and in the cluster after $((SECONDS - start))s"
}

# Prints how many times $1 occurs in $2. Not grep -o | wc -l: under
# pipefail, a grep that finds nothing fails the assignment, and set -e
# then ended quorum-ready silently at its first poll without a leader or
# a follower (as just after a member's node restarted).
count_of() {
	local rest=${2//"$1"/}
	echo $(((${#2} - ${#rest}) / ${#1}))
}

# Waits until quorum queue $1 (vhost /) has all its members up: one leader
# and the rest followers, as any live node reports them.
cmd_quorum_ready() {
	local queue=$1 timeout=${2:-$BOOT_TIMEOUT} n out leaders followers
	local deadline=$((SECONDS + timeout))
	while :; do
		if n="$(any_live_node)"; then
			out="$(timeout 20 "$CLUSTER_QUEUES" -n "$(cluster_node_name "$n")" \
				quorum_status "$queue" --formatter json 2>/dev/null || true)"
			out="$(printf '%s' "$out" | tr -d ' \n')"
			leaders="$(count_of '"RaftState":"leader"' "$out")"
			followers="$(count_of '"RaftState":"follower"' "$out")"
			if [ "$leaders" -eq 1 ] && [ $((leaders + followers)) -eq "$CLUSTER_SIZE" ]; then
				echo "rabbitmq: quorum queue $queue has $CLUSTER_SIZE members online"
				return 0
			fi
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			log "quorum queue $queue: not all members online after ${timeout}s; last status:"
			printf '%s\n' "$out" >&2
			exit 1
		fi
		sleep 0.5
	done
}

usage() {
	cat >&2 <<-USAGE
		usage: $0 up|down|status|env
		       $0 cluster-up|cluster-down|cluster-status|cluster-env
		       $0 node-kill N|node-stop N|node-start N   (N = 1, 2 or 3)
		       $0 quorum-ready QUEUE [SECONDS]
	USAGE
	exit 2
}

# Serialize up/down between concurrent callers (e.g. two `make test`).
lock() {
	mkdir -p "$1"
	exec 9>"$1/.lock"
	if command -v flock >/dev/null 2>&1; then
		flock -w 180 9 || die "timed out waiting for $1/.lock"
	fi
}

SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

[ "$#" -ge 1 ] || usage
cmd=$1
shift
case "$cmd" in
up | down | status | env | cluster-up | cluster-down | cluster-status | cluster-env)
	[ "$#" -eq 0 ] || usage
	;;
node-kill | node-stop | node-start) [ "$#" -eq 1 ] || usage ;;
quorum-ready) [ "$#" -ge 1 ] && [ "$#" -le 2 ] || usage ;;
esac
case "$cmd" in
cluster-* | node-* | quorum-*) BOOT_TIMEOUT="${AMQP_CLUSTER_BOOT_TIMEOUT:-180}" ;;
esac
case "$cmd" in
up) lock "$STATE"; cmd_up ;;
down) lock "$STATE"; cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
cluster-up) lock "$CLUSTER_DIR"; cmd_cluster_up ;;
cluster-down) lock "$CLUSTER_DIR"; cmd_cluster_down ;;
cluster-status) cmd_cluster_status ;;
cluster-env) cmd_cluster_env ;;
node-kill) lock "$CLUSTER_DIR"; cmd_node_kill "$1" ;;
node-stop) lock "$CLUSTER_DIR"; cmd_node_stop "$1" ;;
node-start) lock "$CLUSTER_DIR"; cmd_node_start "$1" ;;
quorum-ready) cmd_quorum_ready "$@" ;;
*) usage ;;
esac
