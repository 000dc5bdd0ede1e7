#!/bin/sh
# --run_under wrapper of --config=tsan (see .bazelrc): runs the test with
# TSAN_OPTIONS naming tsan.supp by an absolute path, found next to this
# script's source (Bazel links the script to it), so the test binary and any
# server it starts (the variable is inherited) read the same suppressions.
here=$(dirname "$(readlink -f "$0")")
TSAN_OPTIONS="suppressions=$here/tsan.supp:halt_on_error=1:second_deadlock_stack=1${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
export TSAN_OPTIONS
exec "$@"
