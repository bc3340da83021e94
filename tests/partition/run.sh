#!/bin/sh
# run.sh: a network partition between two stage daemons, made with
# network namespaces.  The controller, the encoder, a spare transformer
# and the decoder live in one namespace, transformer t0 in another,
# joined by a veth pair; everything speaks TCP (control and tcp;ofi_rxm).
# A blackhole route in t0's namespace then cuts t0 off from e0 alone:
# t0 still reaches the controller.  Requests placed across the cut end
# failed by their deadline with a reason, none hangs, no daemon dies;
# once the route is gone new requests through t0 end done, and no room
# is left held.  Skips (77) where namespaces cannot be made.
. tests/lib.sh
scratch
TOP=$(pwd)
DISAGG="$TOP/tui/disagg"
DISAGGD="$TOP/daemon/disaggd"
A=dgpa$$
B=dgpb$$

if ! ip netns add "$A" 2> /dev/null; then
	skip "partition: network namespaces cannot be made here"
	summary partition
	exit 77
fi
if ! ip netns add "$B" 2> /dev/null ||
    ! ip link add "va$$" type veth peer name "vb$$" 2> /dev/null; then
	ip netns del "$A" 2> /dev/null
	ip netns del "$B" 2> /dev/null
	skip "partition: veth pairs cannot be made here"
	summary partition
	exit 77
fi
cleanup() {
	for p in $(cat "$T_TMP/pids" 2> /dev/null); do
		kill -KILL "$p" 2> /dev/null
	done
	ip netns del "$A" 2> /dev/null
	ip netns del "$B" 2> /dev/null
	rm -rf "$T_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

ip link set "va$$" netns "$A"
ip link set "vb$$" netns "$B"
ip -n "$A" addr add 10.99.0.1/24 dev "va$$"
for ip in 10.99.0.3 10.99.0.4 10.99.0.5; do
	ip -n "$A" addr add "$ip/24" dev "va$$"
done
ip -n "$B" addr add 10.99.0.2/24 dev "vb$$"
for ns in "$A" "$B"; do
	ip -n "$ns" link set lo up
done
ip -n "$A" link set "va$$" up
ip -n "$B" link set "vb$$" up

cat > "$T_TMP/topo.ini" <<EOF
[controller]
listen = tcp://10.99.0.1:7700
publish = tcp://10.99.0.1:7701
dead_after_ms = 2s

[fabric]
provider = tcp;ofi_rxm

[encoder e0]
host = 10.99.0.3
peer = tcp://10.99.0.3:7710
stage = ref-encoder
pool = 64M

[transformer t0]
host = 10.99.0.2
peer = tcp://10.99.0.2:7720
stage = ref-transformer
pool = 64M

[transformer t1]
host = 10.99.0.5
peer = tcp://10.99.0.5:7721
stage = ref-transformer
pool = 64M

[decoder d0]
host = 10.99.0.4
peer = tcp://10.99.0.4:7730
stage = ref-decoder
pool = 64M
output_dir = $T_TMP/out
EOF
: > "$T_TMP/pids"
start() {   # start NS NAME
	ip netns exec "$1" "$DISAGGD" -d -f "$T_TMP/topo.ini" -N "$2" \
	    > "$T_TMP/$2.log" 2>&1 < /dev/null &
	echo $! >> "$T_TMP/pids"
}
start "$A" controller
start "$A" e0
start "$B" t0
start "$A" t1
start "$A" d0

# The CLI talks to the controller from inside its namespace.
inst() { ip netns exec "$A" "$DISAGG" instances --json -c tcp://10.99.0.1:7700 2> /dev/null; }
all_up() { [ "$(inst | grep -o '"state":"up"' | wc -l)" = 4 ]; }
check "partition: four stages in two namespaces register" wait_for 30 all_up
submit() {   # submit DEADLINE_MS -> id
	ip netns exec "$A" "$DISAGG" submit -c tcp://10.99.0.1:7700 --json \
	    --steps 2 --frames 1 --height 32 --width 32 --deadline "$1" |
	    sed -n 's/.*"request":\([0-9]*\).*/\1/p'
}
state_of() {
	ip netns exec "$A" "$DISAGG" status -c tcp://10.99.0.1:7700 --json "$1" |
	    sed -n 's/.*"state":"\([a-z0-9]*\)".*/\1/p'
}
ended() {
	for id in $ids; do
		case $(state_of "$id") in done|failed|cancelled) ;; *) return 1 ;; esac
	done
}
all_done() {
	for id in $ids; do [ "$(state_of "$id")" = done ] || return 1; done
}

# Through t0 before the cut: it works.
ip netns exec "$A" "$DISAGG" drain -c tcp://10.99.0.1:7700 t1 > /dev/null
ids="$(submit 20000) $(submit 20000)"
check "partition: before the cut, requests through t0 end done" \
    wait_for 30 all_done

# The cut: t0 can no longer reach e0 (but still the controller).
ip -n "$B" route add blackhole 10.99.0.3/32
ids="$(submit 4000) $(submit 4000) $(submit 4000)"
check "partition: across the cut every request ends by its deadline" \
    wait_for 30 ended
nfailed=0
for id in $ids; do
	[ "$(state_of "$id")" = failed ] && nfailed=$((nfailed + 1))
done
check "partition: ... failed, with a reason ($nfailed of 3)" test "$nfailed" = 3
alive() {
	for p in $(cat "$T_TMP/pids"); do kill -0 "$p" 2> /dev/null || return 1; done
}
check "partition: no daemon died" alive
check "partition: t0 stays registered (it still reaches the controller)" \
    sh -c "ip netns exec '$A' '$DISAGG' instances --json -c tcp://10.99.0.1:7700 |
        grep -q '\"name\":\"t0\",[^}]*\"state\":\"up\"'"

# Healed.
ip -n "$B" route del blackhole 10.99.0.3/32
ids="$(submit 30000) $(submit 30000)"
check "partition: healed, requests through t0 end done again" \
    wait_for 40 all_done
idle() { [ "$(inst | grep -o '"rooms":0' | wc -l)" = 4 ]; }
check "partition: no room is left held anywhere" wait_for 20 idle
for n in controller e0 t0 t1 d0; do
	grep -h ' error: \| warn: ' "$T_TMP/$n.log" | head -3 | sed "s/^/# $n: /"
done
summary partition
