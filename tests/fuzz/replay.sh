#!/bin/sh
# replay.sh: run every committed fuzz corpus through its target once
# (build/tests/replay_NAME, a plain main()), as part of `make check`.
. tests/lib.sh
B=${B:-build}

for dir in tests/fuzz/corpus/*/; do
	name=$(basename "$dir")
	bin=$B/tests/replay_$name
	if [ ! -x "$bin" ]; then
		fail "fuzz corpus $name: $bin not built"
		continue
	fi
	n=$(find "$dir" -type f | wc -l | tr -d ' ')
	if [ "$n" = 0 ]; then
		fail "fuzz corpus $name is empty"
		continue
	fi
	if find "$dir" -type f -print0 | xargs -0 "$bin" > /dev/null 2> "${TMPDIR:-/tmp}/replay.$$"; then
		ok "fuzz corpus $name: $n inputs replayed"
	else
		sed 's/^/# /' "${TMPDIR:-/tmp}/replay.$$" | tail -30
		fail "fuzz corpus $name"
	fi
	rm -f "${TMPDIR:-/tmp}/replay.$$"
done

summary fuzz
