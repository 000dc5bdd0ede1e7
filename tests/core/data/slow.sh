#!/bin/sh
# A model that sleeps ${1:-30} seconds, then echoes its input.
sleep "${1:-30}"
cat
