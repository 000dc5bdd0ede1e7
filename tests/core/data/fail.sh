#!/bin/sh
# A model that always fails: consumes its input, complains, exits 2.
cat >/dev/null
echo "model broke" >&2
exit 2
