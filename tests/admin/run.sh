#!/bin/sh
# run.sh: the admin ops end to end, through the CLI, against real daemons
# started by `disagg up -f` on a generated file (ipc endpoints in a scratch
# folder, so it runs beside other tests), once per fabric provider: what
# an operator looks at (threads, sockets, queues, rooms), what it does
# (release, reload) and the exit codes a script relies on (0 ok, 1
# refused or failed, 2 usage, 3 controller not reachable).
#
#   ADMIN_PROVIDERS="shm"   only these providers (default: shm, tcp;ofi_rxm)
. tests/lib.sh
scratch
TOP=$(pwd)
DISAGG="$TOP/tui/disagg"
unset DISAGG_CONTROLLER
providers=${ADMIN_PROVIDERS:-"shm tcp;ofi_rxm"}
PY=$(command -v /usr/bin/python3)

cleanup() {
	for run in "$T_TMP"/*/run; do
		[ -s "$run/pids" ] || continue
		DISAGG_RUN=$run "$DISAGG" down --timeout 10 > /dev/null 2>&1
		while read -r _ pid; do
			kill -CONT "$pid" 2> /dev/null
			kill -KILL "$pid" 2> /dev/null
		done < "$run/pids"
	done
	rm -rf "$T_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# parses FILE: every line of FILE is JSON (python3), else it looks like it.
parses() {
	if [ -n "$PY" ]; then
		"$PY" -c 'import json,sys
for l in open(sys.argv[1]): json.loads(l)' "$1"
	else
		grep -q '^{' "$1"
	fi
}
# py EXPR FILE: EXPR over the JSON object `o` of FILE is true.
py() {
	[ -z "$PY" ] && return 0
	"$PY" -c 'import json,sys
o = json.load(open(sys.argv[2]))
sys.exit(0 if eval(sys.argv[1]) else 1)' "$1" "$2"
}
# exits CODE ARGS...: disagg ARGS exits with CODE.
exits() {
	want=$1
	shift
	"$DISAGG" "$@" > "$T_TMP/out" 2> "$T_TMP/err"
	got=$?
	[ "$got" = "$want" ] && return 0
	echo "# disagg $*: exit $got, wanted $want" >&2
	sed 's/^/#   /' "$T_TMP/err" >&2
	return 1
}

write_ini() { # FILE DIR PROVIDER TRANSFORMER_EXTRA
	cat > "$1" <<INI
[controller]
listen  = ipc://$2/ctl.sock
publish = ipc://$2/pub.sock
heartbeat_ms = 100ms
policy = least-loaded

[fabric]
provider = $3
verify = on

[encoder e0]
peer = ipc://$2/e0.sock
stage = ref-encoder
pool = 16M
slot = 64K

[transformer t0]
peer = ipc://$2/t0.sock
stage = ref-transformer
pool = 16M
slot = 64K
workers = 1
step_ms = 1s
$4

[decoder d0]
peer = ipc://$2/d0.sock
stage = ref-decoder
pool = 16M
slot = 64K
output_dir = $2/out
INI
}

rooms_has() { "$DISAGG" rooms --json 2> /dev/null | grep -q "\"room\":$1,"; }
rooms_empty() { "$DISAGG" rooms --json 2> /dev/null | grep -q '"rooms":\[\]'; }
queues_busy() { "$DISAGG" queues t0 --json 2> /dev/null | grep -q '"queue"'; }
queues_has() { "$DISAGG" queues t0 --json 2> /dev/null | grep -q "\"room\":$1,"; }

one_provider() {
	prov=$1
	tag="[$prov]"
	dir="$T_TMP/$(echo "$prov" | tr -c 'a-z0-9\n' _)"
	mkdir -p "$dir"
	ini="$dir/admin.ini"
	write_ini "$ini" "$dir" "$prov" ""
	DISAGG_RUN="$dir/run"
	export DISAGG_RUN
	DISAGG_CONTROLLER="ipc://$dir/ctl.sock"
	export DISAGG_CONTROLLER
	if ! (cd "$dir" && "$DISAGG" up -f "$ini" --timeout 20) \
	    > "$dir/up.out" 2>&1; then
		if grep -q "no libfabric provider" "$dir"/run/*.log 2>/dev/null; then
			skip "admin: provider $prov unavailable"
			return
		fi
		sed 's/^/# /' "$dir/up.out"
		fail "up -f admin.ini $tag"
		return
	fi
	ok "up -f admin.ini $tag"

	# ---- threads
	check "threads e0 exits 0 $tag" exits 0 threads e0
	cp "$T_TMP/out" "$dir/threads.txt"
	for t in main progress watchdog worker0 worker1 ZMQbg/IO/0; do
		check "threads e0 lists $t $tag" \
		    grep -q "^ *[0-9]* $t " "$dir/threads.txt"
	done
	check "threads e0 --json parses $tag" exits 0 threads e0 --json
	cp "$T_TMP/out" "$dir/threads.json"
	check "threads e0 --json parses $tag" parses "$dir/threads.json"
	check "the main loop has used CPU time and reports progress $tag" \
	    py '[t for t in o["threads"] if t["name"] == "main" and
	        t["cpu_us"] > 0 and 0 <= t["progress_age_ms"] < 2000]' \
	    "$dir/threads.json"
	check "ZeroMQ's I/O thread shows its kernel state $tag" \
	    py '[t for t in o["threads"] if t["name"].startswith("ZMQbg/IO")
	        and t["kernel"] in ("sleeping", "running")]' "$dir/threads.json"
	check "threads controller answers for the controller $tag" \
	    exits 0 threads controller

	# ---- sockets, before any request
	check "sockets e0 --json exits 0 $tag" exits 0 sockets e0 --json
	cp "$T_TMP/out" "$dir/sockets0.json"
	check "sockets e0 shows the DEALER to the controller $tag" \
	    py '[s for s in o["sockets"] if s["type"] == "DEALER" and
	        s["endpoint"].endswith("/ctl.sock") and not s["bind"] and
	        s["msgs_out"] > 0]' "$dir/sockets0.json"
	check "sockets e0 shows its peer ROUTER, bound $tag" \
	    py '[s for s in o["sockets"] if s["type"] == "ROUTER" and
	        s["endpoint"].endswith("/e0.sock") and s["bind"]]' \
	    "$dir/sockets0.json"
	check "sockets e0 shows its fabric rail $tag" \
	    py '[r for r in o["rails"] if r["peer"].startswith("local:")
	        and not r["quarantined"]]' "$dir/sockets0.json"
	check "sockets e0 prints columns $tag" exits 0 sockets e0
	check "sockets e0 human output names the ROUTER $tag" \
	    grep -q '^ROUTER  bind ' "$T_TMP/out"

	# ---- requests held by the slow transformer (one worker, 60 steps
	# of 1 s each, so that none ends before the release below, however
	# loaded the machine: with 4 the last one's 12 s were seen to run
	# out): queues and rooms show them.
	"$DISAGG" submit --count 3 --frames 1 --height 64 --width 64 \
	    --steps 60 --json > "$dir/submit.json" 2>&1
	check "three requests submitted $tag" \
	    test "$(grep -c '"request"' "$dir/submit.json")" = 3
	check "queues t0 shows rooms while they are held $tag" \
	    wait_for 10 queues_busy
	check "queues t0 --json parses $tag" exits 0 queues t0 --json
	cp "$T_TMP/out" "$dir/queues.json"
	check "queues t0 --json parses $tag" parses "$dir/queues.json"
	check "queues t0 prints columns $tag" exits 0 queues t0
	check "queues t0 names the queue of each room $tag" \
	    grep -Eq '^(incoming|waiting|ready|running|sending) ' "$T_TMP/out"
	check "rooms --json exits 0 $tag" exits 0 rooms --json
	cp "$T_TMP/out" "$dir/rooms.json"
	check "rooms lists the live rooms with their placements $tag" \
	    py 'len(o["rooms"]) >= 2 and all(r["transformer"] == "t0"
	        and r["encoder"] == "e0" for r in o["rooms"])' "$dir/rooms.json"
	check "rooms t0 filters by instance $tag" exits 0 rooms t0
	check "rooms d9 (no such instance) exits 1 $tag" exits 1 rooms d9
	check "... saying not-found, as the others do $tag" \
	    grep -q "not-found: no instance 'd9'" "$T_TMP/err"
	check "rooms d9 --json gives the error as JSON $tag" \
	    exits 1 rooms d9 --json
	check "... not-found $tag" grep -q '"error":"not-found"' "$T_TMP/out"

	# ---- release the newest room: its request fails with the reason,
	# and the room leaves every listing.
	room=$(sed -n 's/.*"room":\([0-9]*\),"request":\([0-9]*\).*/\1/p' \
	    "$dir/rooms.json" | tail -n 1)
	if [ -n "$PY" ]; then
		room=$("$PY" -c 'import json,sys
print(json.load(open(sys.argv[1]))["rooms"][-1]["room"])' "$dir/rooms.json")
		req=$("$PY" -c 'import json,sys
print(json.load(open(sys.argv[1]))["rooms"][-1]["request"])' "$dir/rooms.json")
	fi
	check "release ROOM exits 0 $tag" exits 0 release --reason test "$room"
	check "release says so $tag" grep -q "room $room released" "$T_TMP/out"
	if [ -n "${req:-}" ]; then
		"$DISAGG" status --json "$req" > "$dir/status.json" 2>&1
		check "the released room's request failed, saying why $tag" \
		    grep -q '"state":"failed".*released by an operator: test' \
		    "$dir/status.json"
	fi
	check "rooms no longer lists the released room $tag" \
	    sh -c "! '$DISAGG' rooms --json | grep -q '\"room\":$room,'"
	check "queues t0 no longer lists the released room $tag" \
	    wait_for 5 sh -c "! '$DISAGG' queues t0 --json | grep -q '\"room\":$room,'"
	check "release of that room again is refused (1) $tag" \
	    exits 1 release "$room"
	check "release of no room is a usage error (2) $tag" exits 2 release
	check "release of a word is a usage error (2) $tag" exits 2 release abc

	# ---- cancel the others; rooms empty and slots come back
	for r in $(sed -n 's/.*"request":\([0-9]*\).*/\1/p' "$dir/submit.json"); do
		[ "$r" = "${req:-}" ] || "$DISAGG" cancel "$r" > /dev/null 2>&1
	done
	check "rooms is empty once the requests are over $tag" \
	    wait_for 10 rooms_empty
	check "instances shows t0 with no rooms $tag" \
	    wait_for 5 sh -c "'$DISAGG' instances | grep -q '^transformer *t0 *up .* 0 *[0-9]*s\$'"
	check "sockets e0 counts the messages of the requests $tag" \
	    exits 0 sockets e0 --json
	cp "$T_TMP/out" "$dir/sockets1.json"
	if [ -n "$PY" ]; then
		check "sockets e0 counters grew $tag" "$PY" -c 'import json,sys
a = json.load(open(sys.argv[1]))["sockets"]
b = json.load(open(sys.argv[2]))["sockets"]
k = lambda l, t: [s for s in l if s["type"] == t][0]
assert k(b, "ROUTER")["msgs_in"] > k(a, "ROUTER")["msgs_in"]
assert k(b, "DEALER")["msgs_out"] > k(a, "DEALER")["msgs_out"]
assert k(b, "DEALER")["bytes_in"] > k(a, "DEALER")["bytes_in"]' \
		    "$dir/sockets0.json" "$dir/sockets1.json"
	fi

	# ---- reload: a changed log level applies; a broken file is refused
	# and the old configuration stays.
	cp "$ini" "$dir/good.ini"
	write_ini "$ini" "$dir" "$prov" "log_level = debug"
	sed -i 's/^policy = least-loaded/policy = round-robin/' "$ini"
	check "reload t0 exits 0 $tag" exits 0 reload t0
	check "reload t0 names the changed key $tag" \
	    grep -q 't0\] log_level applied' "$T_TMP/out"
	check "reload (the controller) applies the policy $tag" \
	    exits 0 reload --json
	check "reload --json says what changed $tag" \
	    grep -q '"reloaded":true.*policy applied' "$T_TMP/out"
	echo "bogus_key = 1" >> "$ini"
	check "reload of a broken file is refused (1) $tag" exits 1 reload t0
	check "reload of a broken file names the error $tag" \
	    grep -q "bogus_key.*old configuration stays" "$T_TMP/err"
	check "reload of a broken file at the controller is refused (1) $tag" \
	    exits 1 reload --json
	check "the refusal is JSON with --json $tag" parses "$T_TMP/out"
	cp "$dir/good.ini" "$ini"
	check "t0 still answers after a refused reload $tag" \
	    exits 0 threads t0

	# ---- exit codes
	check "threads of an unknown daemon is refused (1) $tag" \
	    exits 1 threads nosuch
	check "threads with no name is a usage error (2) $tag" exits 2 threads
	check "queues with two names is a usage error (2) $tag" \
	    exits 2 queues t0 e0
	check "a bad --timeout is a usage error (2) $tag" \
	    exits 2 rooms --timeout soon
	check "a malformed endpoint is a usage error (2) $tag" \
	    exits 2 rooms -c nowhere
	t0s=$(date +%s)
	check "a controller nobody runs is unreachable (3) $tag" \
	    exits 3 rooms -c "ipc://$dir/nobody.sock" --timeout 1000
	check "... and says so within a few seconds $tag" \
	    test $(( $(date +%s) - t0s )) -le 4
	pid=$(sed -n 's/^e0 //p' "$DISAGG_RUN/pids")
	kill -STOP "$pid"
	t0s=$(date +%s)
	check "a daemon that does not answer gives an error (1) $tag" \
	    exits 1 threads e0
	kill -CONT "$pid"
	check "... named timeout, within ~2 s $tag" \
	    sh -c "grep -q 'timeout: e0 did not answer' '$T_TMP/err' &&
	        [ $(( $(date +%s) - t0s )) -le 4 ]"

	# ---- watch
	if command -v timeout > /dev/null; then
		timeout 10 "$DISAGG" watch -n 2 --json > "$dir/watch.json" 2>&1
		check "watch -n 2 --json exits 0 $tag" test $? = 0
		check "watch prints two JSON lines $tag" \
		    sh -c "[ \$(wc -l < '$dir/watch.json') = 2 ]"
		check "watch --json parses $tag" parses "$dir/watch.json"
		# An event may come first: look among the first three lines.
		timeout 12 "$DISAGG" watch -n 3 > "$dir/watch.txt" 2> /dev/null
		check "watch prints a snapshot line $tag" \
		    grep -q ' snapshot  3 instances (3 up)' "$dir/watch.txt"
	fi
	check "watch with an operand is a usage error (2) $tag" \
	    exits 2 watch now

	"$DISAGG" down --timeout 10 > "$dir/down.out" 2>&1
	check "down $tag" test $? = 0
}

# --help on every command the CLI lists (and on each benchmark, and on
# disaggd): usage on stdout, nothing on stderr, exit 0, no controller
# needed.
helps() { # ARGS...: "$@" --help prints its usage and exits 0
	"$@" --help > "$T_TMP/help.out" 2> "$T_TMP/help.err"
	rc=$?
	[ $rc = 0 ] && grep -q '^usage: ' "$T_TMP/help.out" &&
	    [ ! -s "$T_TMP/help.err" ] && return 0
	echo "# $*: exit $rc" >&2
	sed 's/^/#   /' "$T_TMP/help.out" "$T_TMP/help.err" >&2
	return 1
}
cmds=$("$DISAGG" help | sed -n 's/^  \([a-z][a-z]*\) .*/\1/p')
check "help lists at least 20 commands" \
    test "$(echo "$cmds" | wc -l)" -ge 20
for cmd in $cmds; do
	check "disagg $cmd --help: usage on stdout, exit 0" helps "$DISAGG" "$cmd"
done
for b in xfer pipeline rooms; do
	check "disagg bench $b --help: usage on stdout, exit 0" \
	    helps "$DISAGG" bench "$b"
done
check "disaggd --help: usage on stdout, exit 0" helps daemon/disaggd
check "disagg status -h is --help" \
    sh -c "'$DISAGG' status -h | grep -q '^usage: disagg status'"

for prov in $providers; do
	one_provider "$prov"
done
summary admin
