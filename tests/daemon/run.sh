#!/bin/sh
# run.sh: disaggd as a process: options, start-up, SIGHUP reload (a good
# file is applied, a bad one is refused and the daemon keeps running),
# SIGUSR1, and a clean exit 0 on SIGTERM; and the systemd notify
# protocol (READY=1 once serving, RELOADING=1 and READY=1 around a
# reload, STOPPING=1 when draining) to a NOTIFY_SOCKET of our own.
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

# The whole chain is described; only t0 runs.
cat > "$T_TMP/a.ini" <<EOI
[controller]
listen = ipc://$T_TMP/ctl
publish = ipc://$T_TMP/pub

[encoder e0]
peer=ipc://$T_TMP/e0
[decoder d0]
peer=ipc://$T_TMP/d0

[transformer t0]
peer = ipc://$T_TMP/t0
log_level = info
EOI
# What systemd would hear: one line per datagram.
: > "$T_TMP/notify"
/usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as f:
    while True:
        f.write(s.recv(4096).decode().replace("\n", " ") + "\n")
        f.flush()' "$T_TMP/notify.sock" "$T_TMP/notify" &
listener=$!
trap 'kill $listener 2> /dev/null; rm -rf "$T_TMP"' EXIT
wait_for 10 test -S "$T_TMP/notify.sock"
NOTIFY_SOCKET="$T_TMP/notify.sock" "$D" -d -f "$T_TMP/a.ini" -N t0 \
    > "$T_TMP/log" 2>&1 &
pid=$!
check "daemon tells systemd READY=1 with its pid once serving" \
    wait_for 10 grep -q "^READY=1 MAINPID=$pid STATUS=transformer t0 serving" \
    "$T_TMP/notify"
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
check "daemon tells systemd RELOADING=1 then READY=1 on SIGHUP" \
    wait_for 10 sh -c "grep -A1 '^RELOADING=1' '$T_TMP/notify' | \
    grep -q '^READY=1'"

echo 'max_batch = lots' >> "$T_TMP/a.ini"
kill -HUP $pid
check "daemon SIGHUP with a bad file keeps the old configuration" \
    wait_for 10 grep -q 'reload failed; keeping the old configuration' "$T_TMP/log"
check "daemon SIGHUP error names file and line" \
    grep -q "a.ini:14: bad value for 'max_batch'" "$T_TMP/log"
check "daemon still running after a failed reload" kill -0 $pid

# A folder where the file was: refused, never read, the old kept.
mv "$T_TMP/a.ini" "$T_TMP/a.ini.keep"
mkdir "$T_TMP/a.ini"
kill -HUP $pid
check "daemon SIGHUP to a folder is refused: not a regular file" \
    wait_for 10 grep -q 'a.ini: not a regular file' "$T_TMP/log"
check "daemon still running after a reload of a folder" kill -0 $pid
rmdir "$T_TMP/a.ini"
mv "$T_TMP/a.ini.keep" "$T_TMP/a.ini"

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
check "daemon tells systemd STOPPING=1 when it drains" \
    grep -q '^STOPPING=1' "$T_TMP/notify"

# A folder it trusts that anyone can write: it refuses to start, and
# says which and why (a link planted there would be written through).
mkdir "$T_TMP/shared"
chmod 0777 "$T_TMP/shared"
sed -e "s|^peer=ipc://$T_TMP/d0|&\noutput_dir = $T_TMP/shared|" \
    -e '/max_batch = lots/d' "$T_TMP/a.ini" > "$T_TMP/shared.ini"
timeout 20 "$D" -d -f "$T_TMP/shared.ini" -N d0 > "$T_TMP/shared.log" 2>&1
rc=$?
sed 's/^/# /' "$T_TMP/shared.log" | tail -3
check "daemon refuses a world-writable output folder, naming it" \
    sh -c "[ $rc != 0 ] && [ $rc != 124 ] && grep -q 'output folder $T_TMP/shared is writable by everyone' '$T_TMP/shared.log'"

summary daemon
