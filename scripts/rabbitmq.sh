#!/usr/bin/env bash
# Runs a private RabbitMQ node for amqproto's integration tests.
#
#   scripts/rabbitmq.sh up      install (if needed), configure and start the node
#   scripts/rabbitmq.sh down    stop it
#   scripts/rabbitmq.sh status  print "up" or "down" (exit status 0 or 3)
#   scripts/rabbitmq.sh env     print `export` lines for the tests
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
	{
		echo '#!/usr/bin/env bash'
		echo '# Generated by scripts/rabbitmq.sh: rabbitmqctl for the private test node.'
		local v
		for v in HOME LC_ALL LANG RABBITMQ_NODENAME RABBITMQ_CONFIG_FILE \
			RABBITMQ_ADVANCED_CONFIG_FILE RABBITMQ_ENABLED_PLUGINS_FILE \
			RABBITMQ_MNESIA_BASE RABBITMQ_LOG_BASE RABBITMQ_PID_FILE \
			RABBITMQ_NODE_IP_ADDRESS RABBITMQ_NODE_PORT RABBITMQ_DIST_PORT \
			RABBITMQ_CONF_ENV_FILE ERL_EPMD_ADDRESS ERL_CRASH_DUMP \
			RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS; do
			printf 'export %s=%q\n' "$v" "$(rmq_env; printenv "$v")"
		done
		printf 'exec %q "$@"\n' "$RMQ_BIN/rabbitmqctl"
	} >"$CTL_WRAPPER.tmp"
	chmod 0755 "$CTL_WRAPPER.tmp"
	mv -f "$CTL_WRAPPER.tmp" "$CTL_WRAPPER"
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
	local pid comm
	[ -s "$1" ] || return 1
	pid="$(tr -dc 0-9 <"$1")"
	[ -n "$pid" ] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
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
	rm -f "$PID_FILE" "$LAUNCHER_PID_FILE"
	mkdir -p "$LOG_DIR"
	rm -f "$LOG_DIR"/*.log
	: >"$SERVER_LOG"

	local start=$SECONDS
	echo "rabbitmq: starting $NODENAME (state in $STATE)"
	(
		rmq_env
		cd "$STATE"
		exec 9>&- # the lock stays with this script, not with the node
		exec setsid -w "$RMQ_BIN/rabbitmq-server" </dev/null >>"$SERVER_LOG" 2>&1
	) &
	echo $! >"$LAUNCHER_PID_FILE"

	# Wait for the PID file (the CLI's `wait` needs it), then for the node.
	local deadline=$((SECONDS + BOOT_TIMEOUT))
	while [ ! -s "$PID_FILE" ]; do
		if ! launcher_pid >/dev/null; then
			log "the node exited during startup"
			show_logs
			exit 1
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			log "no PID file after ${BOOT_TIMEOUT}s"
			show_logs
			exit 1
		fi
		sleep 0.2
	done
	local left=$((deadline - SECONDS))
	[ "$left" -gt 0 ] || left=1
	if ! timeout "$((left + 5))" "$CTL_WRAPPER" wait --timeout "$left" "$PID_FILE" >>"$SERVER_LOG" 2>&1; then
		log "the node did not start (rabbitmqctl wait failed)"
		show_logs
		exit 1
	fi
	until amqp_answers; do
		if ! node_pid >/dev/null; then
			log "the node exited during startup"
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
	echo "rabbitmq: up after $((SECONDS - start))s (pid $(node_pid), amqp://127.0.0.1:$PORT, amqps://localhost:$TLS_PORT)"
}

cmd_down() {
	local pid lpid
	pid="$(node_pid || true)"
	lpid="$(launcher_pid || true)"
	if [ -z "$pid" ] && [ -z "$lpid" ]; then
		echo "rabbitmq: already down"
		return 0
	fi
	if [ -n "$pid" ]; then
		timeout 60 "$CTL_WRAPPER" shutdown >/dev/null 2>&1 ||
			log "rabbitmqctl shutdown failed; killing the node"
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
		die "the node is still running"
	fi
	rm -f "$PID_FILE" "$LAUNCHER_PID_FILE"
	echo "rabbitmq: down"
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

usage() {
	echo "usage: $0 up|down|status|env" >&2
	exit 2
}

# Serialize up/down between concurrent callers (e.g. two `make test`).
lock() {
	mkdir -p "$STATE"
	exec 9>"$STATE/.lock"
	if command -v flock >/dev/null 2>&1; then
		flock -w 180 9 || die "timed out waiting for $STATE/.lock"
	fi
}

[ "$#" -eq 1 ] || usage
case "$1" in
up) lock; cmd_up ;;
down) lock; cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
*) usage ;;
esac
