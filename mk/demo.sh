#!/bin/sh
# demo.sh: what `make demo` shows, after the build: `disagg up` starts a
# one-host pipeline serving tinywan (etc/tinywan.ini: a Wan-shaped PyTorch
# model in Python stages), four sample requests go through it, a summary says where their files are and how long the
# stages took, one file is compared byte for byte with what `disagg ref`
# computes in a single process, and `disagg down` stops it all, also when
# something fails on the way.  Everything it makes is under out/: the
# videos, out/ref/ and the run folder out/run/ (up.ini, pids, logs).
set -eu
cd "$(dirname "$0")/.."
TOP=$(pwd)
DISAGG="$TOP/tui/disagg"
OUT="$TOP/out"
DISAGG_RUN="$OUT/run"
export DISAGG_RUN
unset DISAGG_CONTROLLER
mkdir -p "$OUT"
results="$DISAGG_RUN/demo-results"

finish() {
	rc=$?
	trap - EXIT
	if [ -e "$DISAGG_RUN/pids" ]; then
		echo
		echo "Stopping the pipeline:"
		"$DISAGG" down || true
	fi
	if [ "$rc" = 130 ]; then
		echo
		echo "The demo was interrupted.  The daemons' logs are in" \
		    "out/run/*.log."
	elif [ "$rc" != 0 ]; then
		echo
		echo "The demo failed (exit $rc).  The daemons' logs are in" \
		    "out/run/*.log."
	fi
	exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM HUP

step() {
	echo
	echo "== $*"
}
rel() {
	echo "${1#"$TOP"/}"
}
# jstr/jnum FIELD < one JSON object: its string or number FIELD.
jstr() {
	sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"
}
jnum() {
	sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"
}

cat <<EOF
disagg demo: a text-to-video style pipeline on this machine

disagg runs a model in three stages, each its own daemon (disaggd): an
encoder (the prompt becomes embeddings), a transformer (denoising steps
on video latents) and a decoder (latents become frames, written as a
.y4m video).  A controller admits requests and hands each to one
instance of every stage; tensors move between the stages over libfabric,
here its shared-memory provider.  The model is tinywan: Wan 2.1's
architecture (a T5-style text encoder, a diffusion transformer with a
flow-matching sampler and classifier-free guidance, a causal 3-D VAE
decoder) at toy scale, in PyTorch, with untrained weights made from a
seed.  Each stage is a Python class that the daemon runs on embedded
CPython, so this runs on any machine, without a GPU.  The pictures are
what an untrained model paints: smooth colour fields that drift from
frame to frame, not a fox.
EOF

# An earlier demo that was killed may have left its daemons running.
if [ -e "$DISAGG_RUN/pids" ]; then
	echo
	echo "(Stopping what an earlier, interrupted demo left in out/run.)"
	"$DISAGG" down > /dev/null 2>&1 || true
fi

step "1. Start the pipeline: disagg up -f etc/tinywan.ini"
echo "(The first start makes tinywan's weights and saves them to"
echo "out/tinywan.pt; later starts load them.)"
"$DISAGG" up -f etc/tinywan.ini --timeout 120

step "2. Four sample requests, one after another: disagg submit --wait"
echo "Sizes follow Wan's rules made small (4k+1 frames, sides in multiples"
echo "of 16), so that each request takes seconds on a CPU (6 to 16 s on a"
echo "shared two-core machine; the first also loads the model)."
: > "$results"
n=0
submit() {
	n=$((n + 1))
	frames=$1 height=$2 width=$3 steps=$4 seed=$5
	shift 5
	printf '  [%d/4] "%s"\n' "$n" "$*"
	printf '        %s frames of %sx%s, %s steps, seed %s ... ' \
	    "$frames" "$width" "$height" "$steps" "$seed"
	# timeout(1): off a terminal, submit --wait has no deadline of its
	# own, and a SIGTERM does not end it, hence -k.
	if ! timeout -k 5 300 "$DISAGG" submit --wait --json --timeout 10000 \
	    --prompt "$*" --frames "$frames" --height "$height" \
	    --width "$width" --steps "$steps" --seed "$seed" \
	    > "$results.one" 2>&1; then
		echo "failed:"
		sed 's/^/        /' "$results.one"
		[ -s "$results.one" ] ||
		    echo "        (no result within 300 s)"
		exit 1
	fi
	out=$(jstr output < "$results.one")
	bytes=$(jnum bytes < "$results.one")
	echo "done in $(jnum total < "$results.one") ms: $(rel "$out")," \
	    "$(awk -v b="$bytes" 'BEGIN { printf "%.1f MiB", b / 1048576 }')"
	# One line per request for the summary and the check:
	# n request output bytes encoder transformer decoder total, then
	# what `disagg ref` needs to redo it.
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s %s %s %s %s\t%s\n' "$n" \
	    "$(jnum request < "$results.one")" "$out" "$bytes" \
	    "$(jnum encoder < "$results.one")" \
	    "$(jnum transformer < "$results.one")" \
	    "$(jnum decoder < "$results.one")" \
	    "$(jnum total < "$results.one")" \
	    "$frames" "$height" "$width" "$steps" "$seed" "$*" >> "$results"
}
submit 17 256 448 10 42 "a red fox running through fresh snow at dawn"
submit 17 256 448 10 7 "a paper boat drifting down a rain-soaked street at night"
submit 17 256 448 10 1234 "time-lapse of clouds rolling over a mountain lake"
submit 33 256 448 10 99 "a hummingbird hovering over a red flower, slow motion"

step "3. The stage instances the controller knows: disagg instances"
echo "(queue and room counts as of each instance's last heartbeat, at most"
echo "half a second old; REQ/S over that last half second, so 0 once idle;"
echo "P50MS and P99MS of each stage's own time over the last minute)"
"$DISAGG" instances

step "4. Summary"
echo "Output files (each a .y4m video: 8-bit 4:2:0 frames):"
awk -F '\t' -v top="$TOP/" '{
	f = $3; sub("^" top, "", f)
	printf "  %-14s %12d bytes  (%.1f MiB)\n", f, $4, $4 / 1048576
}' "$results"
echo
echo "Milliseconds per request.  Each stage counts its own part, from its"
echo "input being there (for the encoder, the request) until its output was"
echo "delivered (for the decoder, the file written), so the three add up to"
echo "about total, the controller's time from submit to result, which also"
echo "holds the hops between them."
awk -F '\t' '
BEGIN {
	printf "  %-3s %-8s %-14s %8s %12s %8s %8s\n", "#", "request",
	    "frames, size", "encoder", "transformer", "decoder", "total"
}
{
	split($9, p, " ")
	printf "  %-3s %-8s %-14s %8d %12d %8d %8d\n", $1, $2,
	    p[1] ", " p[3] "x" p[2], $5, $6, $7, $8
	e += $5; t += $6; d += $7; s += $8; k++
}
END {
	if (k)
		printf "  %-3s %-8s %-14s %8.0f %12.0f %8.0f %8.0f\n", "",
		    "mean", "", e / k, t / k, d / k, s / k
}' "$results"

step "5. The same request in one process: disagg ref"
# The first request again, without daemons or transfers.
line=$(sed -n 1p "$results")
request=$(echo "$line" | cut -f2)
piped=$(echo "$line" | cut -f3)
# shellcheck disable=SC2046 # five numbers, split on purpose
set -- $(echo "$line" | cut -f9)
prompt=$(echo "$line" | cut -f10)
rm -rf "$OUT/ref"
echo "  disagg ref -f etc/tinywan.ini -o out/ref --request $request" \
    "--frames $1 --height $2 --width $3 --steps $4 --seed $5" \
    "--prompt \"$prompt\""
"$DISAGG" ref -f etc/tinywan.ini -o "$OUT/ref" --request "$request" \
    --frames "$1" \
    --height "$2" --width "$3" --steps "$4" --seed "$5" \
    --prompt "$prompt" | sed 's/^/    /'
if cmp "$piped" "$OUT/ref/$request.y4m"; then
	echo "  $(rel "$piped") and out/ref/$request.y4m are identical, byte for byte:"
	echo "  split over three processes, its tensors sent over the fabric and"
	echo "  checksummed, the pipeline computes exactly what the same PyTorch"
	echo "  stages compute in one process."
else
	echo "  $(rel "$piped") and out/ref/$request.y4m DIFFER: the pipeline did not"
	echo "  compute what the same stages compute in one process."
	exit 1
fi

step "6. Stop the pipeline: disagg down"
"$DISAGG" down

# Ids continue across demos (out/ keeps the earlier videos): name the
# file this one wrote.
first=$(rel "$(sed -n 1p "$results" | cut -f3)")
cat <<EOF

Done.  The videos are in out/ (play one with: ffplay $first or mpv
$first); the daemons' logs are in out/run/.  To run the pipeline by
hand:

  tui/disagg up -f etc/tinywan.ini   # the same one-host pipeline
  tui/disagg up                  # the built-in one: C reference stages
  tui/disagg submit --wait       # a request, following its progress
  tui/disagg instances           # what the controller sees
  tui/disagg                     # the operator console (? for help, q to leave)
  tui/disagg down                # stop it

and 'make check' runs every test.
EOF
