#!/bin/sh
# demo.sh: what `make demo` shows.  The pipeline (controller and stage
# work, `disagg up`) is not built yet; until it is, the demo checks the
# example topology and says plainly what is missing.
set -eu
echo "disagg demo"
echo
echo "Checking the one-host topology etc/disagg.ini:"
daemon/disaggd -n -f etc/disagg.ini
echo
echo "The pipeline itself (controller, encoder, transformer, decoder carrying"
echo "requests, and 'disagg up') arrives with the next release: there are no"
echo "sample requests to run and no output files yet."
echo "What exists today: the configuration, the wire protocol, disaggd's"
echo "options and signals.  Run 'make check' to see them tested."
