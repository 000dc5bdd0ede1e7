#!/usr/bin/env bash
# The RPC regression tests again, on the memory store: each argument is a
# fuzz_<rpc>_regress binary (replay_main.c), run on its corpus and its
# regressions exactly as its own test runs them on the SQLite store (the
# harness's default; OEE_FUZZ_STORE=memory chooses the memory store).
set -uo pipefail
export OEE_FUZZ_STORE=memory
failed=()
for bin in "$@"; do
  name=$(basename "$bin" _regress)
  dirs=("fuzz/corpus/$name")
  [ -d "fuzz/regressions/$name" ] && dirs+=("fuzz/regressions/$name")
  echo "memory store: $name"
  "$bin" "${dirs[@]}" || failed+=("$name")
done
echo "memory store: $# targets, ${#failed[@]} failed ${failed[*]:-}"
[ "${#failed[@]}" -eq 0 ]
