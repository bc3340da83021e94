#!/bin/sh
# run.sh: [security] curve = on, end to end, on TCP control endpoints.
# A known client is served; a client whose key is unknown, or one with
# no key, is refused (and the refusal logged); drain, release and reload
# need an admin key; one client cannot cancel another's request; a
# stage's peer endpoint serves only the deployment's daemons; ipc
# endpoints are owner-only.
. tests/lib.sh
scratch
TOP=$(pwd)
DISAGG="$TOP/tui/disagg"
HOSTILE="$TOP/build/tests/hostile"
DISAGG_RUN="$T_TMP/run"
export DISAGG_RUN
unset DISAGG_CONTROLLER DISAGG_KEY DISAGG_SERVER_KEY
mkdir -p "$DISAGG_RUN"
K=$T_TMP/keys

as() {  # as KEY cmd...: run with client key KEY (none: no key at all)
	who=$1; shift
	if [ "$who" = none ]; then
		env -u DISAGG_KEY -u DISAGG_SERVER_KEY "$@"
	else
		DISAGG_KEY="$K/$who" DISAGG_SERVER_KEY="$K/server/server" "$@"
	fi
}
cleanup() {
	as admins/root_secret "$DISAGG" down --timeout 10 > /dev/null 2>&1
	rm -rf "$T_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

"$DISAGG" keygen -d "$K/server" server > /dev/null &&
"$DISAGG" keygen -d "$K/clients" alice bob > /dev/null &&
"$DISAGG" keygen -d "$K/admins" root > /dev/null &&
"$DISAGG" keygen -d "$K/strangers" mallory > /dev/null
check "curve: keygen makes the key pairs" test -s "$K/clients/alice_secret"

# Two free TCP ports for the controller.
ports=$(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')
set -- $ports
R=$DISAGG_RUN
{
	cat <<EOI
[controller]
listen = tcp://127.0.0.1:$1
publish = tcp://127.0.0.1:$2

[security]
curve = on
key_dir = $K/server
client_keys = $K/clients
admin_keys = $K/admins

[fabric]
provider = shm
EOI
	ref_stage encoder e0 "$R"
	ref_stage transformer t0 "$R" "step_ms = 20ms"
	ref_stage decoder d0 "$R" "output_dir = $T_TMP/out"
} > "$T_TMP/topo.ini"
CTL="tcp://127.0.0.1:$1"
# Without a key, up could never hear the controller: it says so at
# once, before starting anything.
env -u DISAGG_KEY timeout 30 "$DISAGG" up -f "$T_TMP/topo.ini" \
    -d "$T_TMP/nokey" --timeout 10 > "$T_TMP/nokey.out" 2>&1
rc=$?
check "curve: up without a client key fails at once, naming DISAGG_KEY" \
    sh -c "[ $rc = 1 ] && grep -q 'set DISAGG_KEY' '$T_TMP/nokey.out'"
if as admins/root_secret "$DISAGG" up -f "$T_TMP/topo.ini" --timeout 20 \
    > "$T_TMP/up.out" 2>&1; then
	ok "curve: the pipeline starts and every stage registers over CURVE"
else
	sed 's/^/# /' "$T_TMP/up.out"
	fail "curve: the pipeline starts and every stage registers over CURVE"
	summary curve
	exit 1
fi
check "curve: a daemon's ipc endpoint is owner-only" \
    sh -c "[ \"\$(stat -c %a '$R/e0.sock')\" = 600 ]"

as clients/alice_secret "$DISAGG" instances -c "$CTL" > "$T_TMP/i.out" 2>&1
check "curve: a known client is served" test $? = 0
as strangers/mallory_secret "$DISAGG" instances -c "$CTL" --timeout 1500 \
    > "$T_TMP/m.out" 2>&1
check "curve: an unknown client's key is refused (exit 3, no answer)" test $? = 3
check "curve: the controller logs the refusal" wait_for 10 grep -q \
    'curve: refused a client on the listen endpoint' "$R/controller.log"
as none "$DISAGG" instances -c "$CTL" --timeout 1500 > /dev/null 2>&1
check "curve: a client without a key is refused (exit 3)" test $? = 3
# Refusals are logged at most once a second per endpoint (a client
# retries every 100 ms): five strangers for 1.5 s each, at once, make
# a handful of lines, not a hundred.
for i in 1 2 3 4 5; do
	as strangers/mallory_secret "$DISAGG" instances -c "$CTL" \
	    --timeout 1500 > /dev/null 2>&1 &
done
wait
n=$(grep -c 'curve: refused a client on the listen endpoint' "$R/controller.log")
check "curve: refusals are rate-limited in the log ($n lines)" test "$n" -le 10
check "curve: the log says how many refusals it left unsaid, within a second" \
    wait_for 5 grep -q 'since the last line' "$R/controller.log"

as clients/alice_secret "$DISAGG" drain -c "$CTL" t0 > "$T_TMP/d.out" 2>&1
rc=$?
check "curve: drain from a plain client is denied (exit 1)" \
    sh -c "[ $rc = 1 ] && grep -q 'needs an admin key' '$T_TMP/d.out'"
as clients/alice_secret "$DISAGG" reload -c "$CTL" > "$T_TMP/r.out" 2>&1
check "curve: reload from a plain client is denied" test $? = 1
as clients/alice_secret "$DISAGG" release -c "$CTL" 1 > "$T_TMP/rel.out" 2>&1
check "curve: release from a plain client is denied" \
    grep -q 'needs an admin key' "$T_TMP/rel.out"
as admins/root_secret "$DISAGG" drain -c "$CTL" t0 > /dev/null 2>&1
check "curve: drain from an admin key is done" test $? = 0
as admins/root_secret "$DISAGG" undrain -c "$CTL" t0 > /dev/null 2>&1
check "curve: undrain from an admin key is done" test $? = 0

# Alice's slow request: Bob may not cancel it, an admin may.
id=$(as clients/alice_secret "$DISAGG" submit -c "$CTL" --json --steps 500 \
    --frames 1 --height 16 --width 16 | sed -n 's/.*"request":\([0-9]*\).*/\1/p')
as clients/bob_secret "$DISAGG" cancel -c "$CTL" "$id" > "$T_TMP/c.out" 2>&1
rc=$?
check "curve: a client cannot cancel another client's request" \
    sh -c "[ $rc = 1 ] && grep -q 'another client' '$T_TMP/c.out'"
as admins/root_secret "$DISAGG" cancel -c "$CTL" "$id" > "$T_TMP/ca.out" 2>&1
rc=$?
[ $rc = 0 ] || sed 's/^/# /' "$T_TMP/ca.out"
check "curve: an admin key can" test $rc = 0

timeout -k 5 60 env DISAGG_KEY="$K/clients/alice_secret" \
    DISAGG_SERVER_KEY="$K/server/server" "$DISAGG" submit -c "$CTL" --wait \
    --json --steps 2 --frames 1 --height 16 --width 16 > "$T_TMP/s.json" 2>&1
grep -q '"status":"done"' "$T_TMP/s.json" || sed 's/^/# /' "$T_TMP/s.json"
check "curve: a known client's request ends done" \
    grep -q '"status":"done"' "$T_TMP/s.json"

# A known client is still not a daemon: a stage's peer endpoint denies it.
as clients/alice_secret "$HOSTILE" "ipc://$R/e0.sock" early1 20 > "$T_TMP/h.out" 2>&1
check "curve: a stage's peer endpoint denies a client's manifests" \
    grep -q 'errors=20 ' "$T_TMP/h.out"
summary curve
