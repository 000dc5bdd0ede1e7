#!/bin/sh
# runtime_split_test.sh CLIENT_BINARY SERVER_BINARY
#
# The client and the server link only their own call runtime: the client
# binary (oeectl) has no symbol of server/rt, the server binary (oee-server)
# none of client/rt. nm lists what a binary defines and what it still needs
# from a shared library, so either way of linking a runtime shows up. Each
# binary must also hold its own runtime, so that a stripped or wrong file
# cannot pass by listing nothing.
set -u

client=$1
server=$2
status=0

# Symbol names (one per line) of a binary, defined or undefined.
symbols() {
  nm "$1" 2>/dev/null | awk '{ print $NF }'
}

# expect_none BINARY LABEL REGEX: fails when a symbol of BINARY matches.
expect_none() {
  found=$(symbols "$1" | grep -E "$3" | sort -u)
  if [ -n "$found" ]; then
    echo "FAIL: $1 links the $2 runtime:"
    echo "$found" | sed 's/^/  /'
    status=1
  else
    echo "ok: $1 has no $2 runtime symbol"
  fi
}

# expect_some BINARY LABEL REGEX: fails when no symbol of BINARY matches.
expect_some() {
  if symbols "$1" | grep -qE "$3"; then
    echo "ok: $1 holds the $2 runtime"
  else
    echo "FAIL: $1 has no $2 runtime symbol (stripped, or the wrong file?)"
    status=1
  fi
}

SERVER_RT='^(oee_rpc_server_|oee_rpc_call_|oee__rpc_call_)'
CLIENT_RT='^(oee_rpc_channel_|oee_rpc_unary$|oee_rpc_reader_|oee_rpc_status_free$)'

expect_some "$client" client "$CLIENT_RT"
expect_none "$client" server "$SERVER_RT"
expect_some "$server" server "$SERVER_RT"
expect_none "$server" client "$CLIENT_RT"
exit $status
