#!/bin/sh
# bench-tinywan.sh: the Python stage host's cost.  tinywan through the
# daemons (`disagg bench pipeline`, one request at a time) against the
# same three stages called directly from Python (python3 -m
# disagg.tinywan.run), at the same size, alternating ROUNDS times in one
# session so that both see the same machine.  Prints per-stage medians
# and the ratio pipeline / direct.  A pipeline stage's time runs from its
# input being here to its output delivered, so it also holds the output's
# transfer (and, for the decoder, reading the file back for its digest).
#
#   sh mk/bench-tinywan.sh [ROUNDS] [REQUESTS]      (default 3 and 10)
set -eu
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
N=${2:-10}
SIZE="--frames 17 --height 256 --width 448 --steps 10"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/disagg-bench-tw.XXXXXX")
DISAGG_RUN="$tmp/run"
export DISAGG_RUN
trap 'tui/disagg down > /dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
sed -e "s|weights = out/tinywan.pt|weights = $tmp/tinywan.pt|" \
    -e "s|output_dir = out|output_dir = $tmp/out|" etc/tinywan.ini > "$tmp/tw.ini"
tui/disagg up -f "$tmp/tw.ini" --timeout 120 > /dev/null
# warm: torch's first calls, the weights file made
# shellcheck disable=SC2086
tui/disagg submit --wait --json $SIZE > /dev/null
r=1
while [ "$r" -le "$ROUNDS" ]; do
	# shellcheck disable=SC2086
	tui/disagg bench pipeline --requests "$N" --window 1 $SIZE --json \
	    > "$tmp/pipe.$r"
	# shellcheck disable=SC2086
	PYTHONPATH=lib/python /usr/bin/python3 -m disagg.tinywan.run $SIZE \
	    --repeat "$((N + 1))" --weights "$tmp/tinywan.pt" \
	    -o "$tmp/direct" --json > "$tmp/direct.$r"
	r=$((r + 1))
done
/usr/bin/python3 - "$tmp" "$ROUNDS" <<'PY'
import json, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
print("tinywan 17x448x256, 10 steps: pipeline (daemons) against direct "
      "Python, %d rounds" % rounds)
print("  %-5s %-12s %12s %12s %8s" % ("round", "stage", "pipeline ms",
                                       "direct ms", "ratio"))
for r in range(1, rounds + 1):
    pipe = json.load(open("%s/pipe.%d" % (tmp, r)))
    direct = json.load(open("%s/direct.%d" % (tmp, r)))
    runs = direct["runs"][1:]          # the first run warms the process
    for stage in ("encoder", "transformer", "decoder", "total"):
        p = pipe["hops"][stage]["p50_ms"]
        d = statistics.median(x[stage] for x in runs)
        print("  %-5d %-12s %12.0f %12.1f %8.3f" % (r, stage, p, d, p / d))
    print("  %-5d %-12s %12.2f %12.2f %8.3f" % (
        r, "requests/s", pipe["rps"], 1000 / statistics.median(
            x["total"] for x in runs), pipe["rps"] * statistics.median(
            x["total"] for x in runs) / 1000))
PY
