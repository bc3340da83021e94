#!/bin/sh
# run.sh: the whole pipeline with real daemons on loopback (a controller,
# encoders, transformers and decoders, each its own disaggd process), once
# per provider the project supports on one host.  pipeline_test prints
# TAP lines and a closing "pipeline(PROVIDER): ..." line; a provider that
# cannot be opened here is skipped (exit 77).  See pipeline_test.c for
# what each group proves.
#
#   B=build sh tests/pipeline/run.sh
#   PIPELINE_PROVIDERS=shm      only these providers (default: shm, tcp;ofi_rxm)
#   DISAGGD=path                the daemon to test (default daemon/disaggd)
#   DG_TEST_KEEP=1              keep every group's folder (INI, logs, outputs)
B=${B:-build}
bin="$B/tests/pipeline_test"
providers=${PIPELINE_PROVIDERS:-"shm tcp;ofi_rxm"}

if [ ! -x "$bin" ]; then
	echo "not ok - pipeline: $bin is not built"
	exit 1
fi
# A hang must not hang 'make check': every wait inside has a deadline,
# and this bounds the whole run too (the test kills its daemons on
# SIGTERM; they also die with it).
limit=""
command -v timeout > /dev/null 2>&1 && limit="timeout -k 10 300"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/disagg-pipeline-run.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
status=0
for prov in $providers; do
	{
		$limit "$bin" --provider "$prov" --disaggd "${DISAGGD:-daemon/disaggd}"
		echo $? > "$tmp/rc"
	} | tee "$tmp/out"
	rc=$(cat "$tmp/rc")
	case $rc in
	0|77) ;;
	1)	status=1
		grep -q '^not ok' "$tmp/out" ||
		    echo "not ok - pipeline($prov): pipeline_test failed with no failing test" ;;
	124)	status=1
		echo "not ok - pipeline($prov): pipeline_test ran past 300 s and was stopped" ;;
	*)	status=1
		echo "not ok - pipeline($prov): pipeline_test exited with status $rc" ;;
	esac
done
exit $status
