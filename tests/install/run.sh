#!/bin/sh
# run.sh: `make install` into a staging root: programs, man pages, the
# example configuration (never over an existing one) and systemd units
# whose paths point at the installed daemon and configuration; the
# installed daemon validates the installed configuration, as the units'
# ExecStartPre does.
. tests/lib.sh
scratch
R="$T_TMP/root"

make --no-print-directory install DESTDIR="$R" PREFIX=/usr SYSCONFDIR=/etc \
    > "$T_TMP/out" 2>&1
check "install: make install into a staging root succeeds" test $? = 0
for f in usr/bin/disagg usr/sbin/disaggd usr/share/man/man1/disagg.1 \
    usr/share/man/man5/disagg.ini.5 usr/share/man/man7/disagg-protocol.7 \
    usr/share/man/man8/disaggd.8 etc/disagg/disagg.ini \
    usr/share/man/man3/disagg-stage.3 usr/share/man/man7/disagg-python.7 \
    usr/share/man/man7/disagg-client.7 usr/include/disagg/stage.h \
    usr/share/disagg/grafana-disagg.json \
    usr/lib/python3.11/dist-packages/disagg/client.py \
    usr/lib/python3.11/dist-packages/disagg/tinywan/stages.py \
    etc/systemd/system/disagg-controller.service \
    etc/systemd/system/disaggd@.service; do
	check "install: $f" test -s "$R/$f"
done
check "install: units name the installed daemon and configuration" \
    sh -c "grep -q '^ExecStart=/usr/sbin/disaggd -d -f /etc/disagg/disagg.ini -N %i' \
    '$R/etc/systemd/system/disaggd@.service' &&
    ! grep -q '@' '$R/etc/systemd/system/disagg-controller.service'"
check "install: units are Type=notify with a check before start and HUP on reload" \
    sh -c "for u in '$R'/etc/systemd/system/*.service; do
        grep -q '^Type=notify' \"\$u\" &&
        grep -q '^ExecStartPre=/usr/sbin/disaggd -n ' \"\$u\" &&
        grep -q '^ExecReload=/bin/kill -HUP \$MAINPID' \"\$u\" || exit 1; done"
check "install: the installed daemon accepts the installed configuration" \
    "$R/usr/sbin/disaggd" -n -f "$R/etc/disagg/disagg.ini"
# The installed header is the whole plugin ABI: a plugin builds with it
# alone.
check "install: a stage plugin builds against the installed stage.h alone" \
    ${CC:-cc} -std=gnu11 -Wall -Werror -shared -fPIC \
    -I"$R/usr/include/disagg" -o "$T_TMP/plugin.so" \
    tests/plugins/example_stage.c
check "install: /usr/bin/python3 imports the installed package" \
    env -u PYTHONPATH PYTHONPATH="$R/usr/lib/python3.11/dist-packages" \
    PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 -c \
    "import disagg, disagg.client, disagg.stage, disagg.tinywan as t
assert disagg.__file__.startswith('$R'), disagg.__file__
assert t.__file__.startswith('$R'), t.__file__"

echo "; edited by the operator" >> "$R/etc/disagg/disagg.ini"
make --no-print-directory install DESTDIR="$R" PREFIX=/usr SYSCONFDIR=/etc \
    > "$T_TMP/out" 2>&1
check "install: a second install keeps the operator's configuration" \
    grep -q 'edited by the operator' "$R/etc/disagg/disagg.ini"
if command -v systemd-analyze > /dev/null 2>&1 &&
    systemd-analyze --version > /dev/null 2>&1; then
	# Installed where the units' paths really exist; the machine's own
	# gaps (no man pages, no sysinit.target in a container) are not
	# the units' fault, an unknown key or a bad value is.
	P="$T_TMP/p"
	make --no-print-directory install PREFIX="$P" SYSCONFDIR="$P/etc" \
	    > /dev/null 2>&1
	systemd-analyze verify "$P/etc/systemd/system/disagg-controller.service" \
	    > "$T_TMP/verify" 2>&1
	cp "$P/etc/systemd/system/disaggd@.service" "$T_TMP/disaggd@e0.service"
	systemd-analyze verify "$T_TMP/disaggd@e0.service" >> "$T_TMP/verify" 2>&1
	if grep -Eqi 'unknown (key|section)|failed to parse|invalid|not executable: No such' \
	    "$T_TMP/verify"; then
		sed 's/^/# /' "$T_TMP/verify"
		fail "install: systemd-analyze finds no bad key or value in the units"
	else
		ok "install: systemd-analyze finds no bad key or value in the units"
	fi
else
	skip "install: systemd-analyze not available"
fi
summary install
