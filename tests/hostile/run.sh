#!/bin/sh
# run.sh: hostile input on every endpoint while a valid client keeps
# being served.  A pipeline of null stages runs a steady stream of valid
# requests (disagg bench pipeline) while build/tests/hostile throws
# garbage, truncated msgpack, unknown ops, junk multi-frame messages,
# oversized frames and a submit flood at the controller, and garbage,
# bad manifests and manifests for rooms that never exist at the stages'
# peer endpoints.  Every bad message gets an error reply (or, past the
# frame limit, is dropped by the socket), no daemon dies, the flood is
# bounded per client, and every valid request still ends done.
. tests/lib.sh
scratch
TOP=$(pwd)
DISAGG="$TOP/tui/disagg"
HOSTILE="$TOP/build/tests/hostile"
DISAGG_RUN="$T_TMP/run"
export DISAGG_RUN
unset DISAGG_CONTROLLER
mkdir -p "$DISAGG_RUN"

cleanup() {
	"$DISAGG" down --timeout 10 > /dev/null 2>&1
	[ -n "${BENCH:-}" ] && kill -KILL "$BENCH" 2> /dev/null
	rm -rf "$T_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

R=$DISAGG_RUN
cat > "$T_TMP/topo.ini" <<EOF
[controller]
listen = ipc://$R/ctl.sock
publish = ipc://$R/pub.sock
max_pending = 2048
max_pending_per_client = 256

[fabric]
provider = shm

[encoder e0]
peer = ipc://$R/e0.sock
stage = null
pool = 16M
slot = 4K

[transformer t0]
peer = ipc://$R/t0.sock
stage = null
pool = 16M
slot = 4K

[decoder d0]
peer = ipc://$R/d0.sock
stage = null
pool = 16M
slot = 4K
EOF
up_or_bail hostile "$T_TMP/topo.ini"
pids=$(awk '{ print $2 }' "$R/pids")

# The valid client: a steady stream for the whole test.
"$DISAGG" bench pipeline --requests 4000 --window 16 --timeout 120 \
    > "$T_TMP/bench.out" 2>&1 &
BENCH=$!

# hostile ENDPOINT KIND COUNT -> "sent=.. errors=.. busy=.. accepted=.."
field() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" "$2"; }
attack() {
	"$HOSTILE" "$1" "$2" "$3" > "$T_TMP/$4.out" 2> "$T_TMP/$4.err"
}

CTL="ipc://$R/ctl.sock"
for kind in garbage truncated unknown; do
	attack "$CTL" $kind 300 ctl-$kind
	check "hostile: the controller answers each of 300 $kind messages with an error" \
	    test "$(field errors "$T_TMP/ctl-$kind.out")" = 300
done
# Several frames in one message are a batch: each frame is answered.
attack "$CTL" frames 300 ctl-frames
check "hostile: the controller answers each junk frame of 300 three-frame messages" \
    test "$(field errors "$T_TMP/ctl-frames.out")" = 900
attack "$CTL" oversized 3 ctl-oversized
check "hostile: the controller drops oversized frames without answering" \
    test "$(field other "$T_TMP/ctl-oversized.out")$(field errors "$T_TMP/ctl-oversized.out")" = 00

attack "$CTL" flood 5000 ctl-flood
acc=$(field accepted "$T_TMP/ctl-flood.out")
bsy=$(field busy "$T_TMP/ctl-flood.out")
check "hostile: a flood of 5000 submits from one client is bounded ($acc accepted, $bsy busy)" \
    sh -c "[ '$bsy' -gt 0 ] && [ '$acc' -le 5000 ] && [ \$(( $acc + $bsy )) = 5000 ]"

phase=1
for st in e0 t0; do
	EP="ipc://$R/$st.sock"
	attack "$EP" garbage 300 $st-garbage
	check "hostile: $st's peer endpoint answers 300 garbage frames with errors" \
	    test "$(field errors "$T_TMP/$st-garbage.out")" = 300
	HOSTILE_PHASE=$phase attack "$EP" manifest 400 $st-manifest
	check "hostile: $st refuses 400 manifests that overlap, wrap or are stale" \
	    test "$(field errors "$T_TMP/$st-manifest.out")" = 400
	attack "$EP" early$phase 6000 $st-early
	b=$(field busy "$T_TMP/$st-early.out")
	# No more than its queues hold: 5 queues of queue_depth (1024).
	check "hostile: $st keeps at most 5120 manifests for unknown rooms ($b of 6000 refused busy)" \
	    test "$b" -ge 880
	phase=2
done

# The valid client was served all along.
wait_bench() { ! kill -0 "$BENCH" 2> /dev/null; }
wait_for 150 wait_bench
wait "$BENCH"
rc=$?
BENCH=
sed -n 's/^  \([0-9]* done.*\)/# valid client: \1/p' "$T_TMP/bench.out"
check "hostile: every one of the valid client's 4000 requests ended done" \
    sh -c "[ $rc = 0 ] && grep -q '4000 done, 0 failed' '$T_TMP/bench.out'"
alive() {
	for p in $pids; do
		kill -0 "$p" 2> /dev/null || return 1
	done
}
check "hostile: every daemon is still running" alive

# What the flood got accepted drains too: no room held in the end.
idle() {
	"$DISAGG" instances --json 2> /dev/null |
	    grep -q '"rooms":[1-9]' && return 1
	return 0
}
check "hostile: afterwards no instance holds a room" wait_for 60 idle
summary hostile
