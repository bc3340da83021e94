#!/bin/sh
# run.sh: the transfer engine between two processes, on each provider
# the project supports on one host.
. tests/lib.sh
B=${B:-build}

for prov in shm "tcp;ofi_rxm"; do
	"$B/tests/xfer_test" --provider "$prov"
	rc=$?
	# Its own failures are "not ok" lines and exit 1; any other exit
	# (a crash, a signal) is a failure too.
	[ $rc = 0 ] || [ $rc = 1 ] || [ $rc = 77 ] ||
	    echo "not ok - xfer_test --provider $prov exited $rc"
done
