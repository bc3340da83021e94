#!/bin/sh
# run.sh: disaggd as a process: options, start-up, SIGHUP reload (a good
# file is applied, a bad one is refused and the daemon keeps running),
# SIGUSR1, and a clean exit 0 on SIGTERM.
. tests/lib.sh
scratch
D=daemon/disaggd

"$D" -V > "$T_TMP/out" 2>&1
check "daemon -V prints the version" grep -q '^disaggd [0-9]' "$T_TMP/out"
"$D" -x > "$T_TMP/out" 2>&1
check "daemon bad option exits 2 with usage" \
    sh -c "[ $? = 2 ] && grep -q '^usage: disaggd' '$T_TMP/out'"
"$D" -f etc/disagg.ini > "$T_TMP/out" 2>&1
check "daemon without -N exits 2 and lists sections" \
    sh -c "[ $? = 2 ] && grep -q 'controller, e0, t0, d0' '$T_TMP/out'"

cat > "$T_TMP/a.ini" <<EOI
[controller]
listen = ipc://$T_TMP/ctl
publish = ipc://$T_TMP/pub

[transformer t0]
peer = ipc://$T_TMP/t0
log_level = info
EOI
"$D" -d -f "$T_TMP/a.ini" -N t0 > "$T_TMP/log" 2>&1 &
pid=$!
check "daemon starts and logs its role" \
    wait_for 10 grep -q 'transformer t0 starting' "$T_TMP/log"

sed 's/log_level = info/log_level = debug/; s/^peer = .*/&\nworkers = 4/' \
    "$T_TMP/a.ini" > "$T_TMP/b.ini"
cp "$T_TMP/b.ini" "$T_TMP/a.ini"
kill -HUP $pid
check "daemon SIGHUP applies a reloadable key" \
    wait_for 10 grep -q 'log_level changed, applied' "$T_TMP/log"
check "daemon SIGHUP names a key that needs a restart" \
    grep -q 'workers changed; it takes effect only on restart' "$T_TMP/log"

echo 'max_batch = lots' >> "$T_TMP/a.ini"
kill -HUP $pid
check "daemon SIGHUP with a bad file keeps the old configuration" \
    wait_for 10 grep -q 'reload failed; keeping the old configuration' "$T_TMP/log"
check "daemon SIGHUP error names file and line" \
    grep -q "a.ini:9: bad value for 'max_batch'" "$T_TMP/log"
check "daemon still running after a failed reload" kill -0 $pid

kill -USR1 $pid
check "daemon SIGUSR1 reopens the log" \
    wait_for 10 grep -q 'log reopened' "$T_TMP/log"

kill -TERM $pid
gone() { ! kill -0 $pid 2>/dev/null; }
if wait_for 10 gone; then
	wait $pid
	rc=$?
	check "daemon SIGTERM exits 0" test $rc = 0
else
	kill -KILL $pid
	fail "daemon SIGTERM exits within 10s"
fi
check "daemon logs its drain" grep -q 'SIGTERM: draining' "$T_TMP/log"

summary daemon
