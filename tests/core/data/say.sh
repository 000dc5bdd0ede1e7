#!/bin/sh
# A model that ignores its input and prints its arguments (fixed text).
cat >/dev/null
printf '%s\n' "$*"
