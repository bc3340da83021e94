#!/bin/sh
# run.sh: the configuration error matrix.  Every tests/config/bad-*.ini
# names the errors it must produce in '; expect: LINE: message' comments;
# `disaggd -n` must print each as FILE:LINE: message and exit 1.  The
# shipped examples must pass, and -T output must read back unchanged.
. tests/lib.sh
scratch
D=daemon/disaggd

for f in tests/config/bad-*.ini; do
	"$D" -n -f "$f" > "$T_TMP/out" 2>&1
	rc=$?
	good=1
	sed -n 's/^; expect: //p' "$f" > "$T_TMP/expect"
	[ -s "$T_TMP/expect" ] || good=0
	while IFS= read -r e; do
		grep -qxF -- "$f:$e" "$T_TMP/out" || { good=0; echo "# missing: $f:$e"; }
	done < "$T_TMP/expect"
	grep -q 'configuration OK' "$T_TMP/out" && good=0
	if [ $rc = 1 ] && [ $good = 1 ]; then
		ok "config $(basename "$f")"
	else
		sed 's/^/# /' "$T_TMP/out"
		fail "config $(basename "$f") (exit $rc)"
	fi
done

for f in "$T_TMP" /dev/urandom; do
	timeout 10 "$D" -n -f "$f" > "$T_TMP/out" 2>&1
	rc=$?
	check "config $f is refused at once: not a regular file" \
	    sh -c "[ $rc = 1 ] && grep -q 'not a regular file' '$T_TMP/out'"
done

"$D" -n -f "$T_TMP/does-not-exist.ini" > "$T_TMP/out" 2>&1
rc=$?
check "config missing file names the file" \
    sh -c "[ $rc = 1 ] && grep -q 'does-not-exist.ini: cannot open: No such file' '$T_TMP/out'"

for f in etc/*.ini; do
	out=$("$D" -n -f "$f" 2>&1)
	check "config $f is OK" test "$out" = "configuration OK"
	"$D" -T -f "$f" > "$T_TMP/dump1" 2>&1
	"$D" -T -f "$T_TMP/dump1" > "$T_TMP/dump2" 2>&1
	sed 1d "$T_TMP/dump1" > "$T_TMP/a"
	sed 1d "$T_TMP/dump2" > "$T_TMP/b"
	check "config $f -T reads back unchanged" cmp -s "$T_TMP/a" "$T_TMP/b"
	# Safe by default: no TCP endpoint any local process could reach
	# (they were all on 127.0.0.1); sockets in the run folder instead.
	DISAGG_RUN=/run-folder "$D" -T -f "$f" > "$T_TMP/dump3" 2>&1
	check "config $f: every endpoint a socket in the run folder" sh -c \
	    "! grep -q '= *tcp://' '$T_TMP/dump3' &&
	     ! grep -E '^(listen|publish|peer) *=' '$T_TMP/dump3' |
	         grep -v '= *ipc:///run-folder/'"
done

"$D" -n -f etc/disagg.ini -N nosuch > "$T_TMP/out" 2>&1
rc=$?
check "config -N unknown section is refused" \
    sh -c "[ $rc = 1 ] && grep -q \"no section for 'nosuch'\" '$T_TMP/out'"

summary config
