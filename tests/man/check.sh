#!/bin/sh
# check.sh: the man pages are valid mdoc and document everything: every
# key of the configuration table in disagg.ini.5, every option of disaggd
# in disaggd.8, every command and option of disagg in disagg.1.
. tests/lib.sh
scratch
B=${B:-build}

if command -v mandoc > /dev/null; then
	for page in man/*.[1-9]; do
		if mandoc -T lint -W warning "$page" > "$T_TMP/lint" 2>&1; then
			ok "man $page lints clean"
		else
			sed 's/^/# /' "$T_TMP/lint"
			fail "man $page lints clean"
		fi
	done
else
	skip "man lint: mandoc not installed"
fi

# Every key of the table has an entry ".It Ic KEY Ns = ..." in the .5 page.
missing=""
"$B/tests/dg_keys" | cut -f2 | sort -u > "$T_TMP/keys"
[ -s "$T_TMP/keys" ] || missing="(no keys listed)"
while read -r key; do
	grep -q "^\.It Ic $key Ns" man/disagg.ini.5 || missing="$missing $key"
done < "$T_TMP/keys"
check "man disagg.ini.5 documents every key${missing:+ (missing:$missing)}" \
    test -z "$missing"

# Every option in disaggd's usage has ".It Fl X" in the .8 page.
missing=""
daemon/disaggd -h | sed -n 's/^  -\([A-Za-z]\).*/\1/p' > "$T_TMP/opts"
[ -s "$T_TMP/opts" ] || missing="(no options listed)"
while read -r o; do
	grep -q "^\.It Fl $o\b" man/disaggd.8 || missing="$missing -$o"
done < "$T_TMP/opts"
check "man disaggd.8 documents every option${missing:+ (missing:$missing)}" \
    test -z "$missing"

# Every command in disagg's help has ".It Cm NAME" in the .1 page.
missing=""
tui/disagg help | sed -n 's/^  \([a-z][a-z-]*\).*/\1/p' > "$T_TMP/cmds"
[ -s "$T_TMP/cmds" ] || missing="(no commands listed)"
while read -r c; do
	grep -q "^\.It Cm $c\b" man/disagg.1 || missing="$missing $c"
done < "$T_TMP/cmds"
check "man disagg.1 documents every command${missing:+ (missing:$missing)}" \
    test -z "$missing"

summary man
