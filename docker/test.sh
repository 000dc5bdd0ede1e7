#!/usr/bin/env bash
# docker/test.sh - builds the OEE image from docker/Dockerfile with podman and
# checks it end to end:
#   1. installs podman, runc and debootstrap if missing (apt, sudo if not root)
#   2. makes the base images debian:bookworm and debian:bookworm-slim locally
#      with debootstrap if they are missing (no registry is reachable)
#   3. builds the image (cached layers make re-runs fast)
#   4. runs it with the gRPC port published on a free loopback port
#   5. waits until the image's HEALTHCHECK (oeectl health) passes
#   6. checks the server runs on the default store, sqlite, in /var/lib/oee
#   7. from the host: submits an echo task and a pipeline with oeectl (the
#      binary shipped in the image, copied out) and checks their results;
#      the metrics port (9464, published) counts the task, /healthz is 200
#   8. sends SIGTERM and checks the container exits 0, quickly
#   9. starts the same container again and checks the task is still there
#      (read back from /var/lib/oee/oee.db), then stops it as in 8
#  10. remote worker: a second server container with remote_types ["shell"]
#      and a worker container of the same image (`oeectl worker ... -- sh -c
#      'tr a-z A-Z'`) in its network namespace; a shell task submitted from
#      the host ends DONE with the command's output, run by that worker;
#      SIGTERM stops the worker container with exit status 0
# The container is removed on any exit. Exit status 0 only if every step
# passed; the last line is "docker/test.sh: PASSED|FAILED in Ns".
#
# Environment:
#   OEE_IMAGE          image tag to build and test (default localhost/oee:latest)
#   OEE_DEBIAN_MIRROR  mirror for debootstrap (default: the one apt uses here)
#   OEECTL             host oeectl to use instead of the image's copy
#   CONTAINERS_CONF    podman config (default: docker/containers.conf)
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${OEE_IMAGE:-localhost/oee:latest}
NAME=oee-docker-test
BASE=docker.io/library/debian
STOP_LIMIT_S=10   # SIGTERM to exit, with no task running
HEALTH_LIMIT_S=30 # start to healthy
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/docker/containers.conf}

T0=$(date +%s)
STEP_T0=$T0
STEP=
WORK=$(mktemp -d)
RESULT=FAILED

log() { printf '[docker/test %4ss] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }
step() {
  local now
  now=$(date +%s)
  [ -z "$STEP" ] || log "  ($STEP took $((now - STEP_T0))s)"
  STEP=$1
  STEP_T0=$now
  log "== $1: $2"
}
die() {
  log "FAIL: $*"
  exit 1
}

# Runs podman without its complaints about systemd timers for HEALTHCHECK
# (there is no systemd here; `podman healthcheck run` below does the checks).
quiet() {
  local rc=0
  "$@" 2>"$WORK/podman.err" || rc=$?
  grep -v 'systemd connection' "$WORK/podman.err" >&2 || true
  return "$rc"
}

cleanup() {
  local rc=$?
  local extra
  for extra in "$NAME-worker" "$NAME-remote"; do
    podman rm -f -t 0 "$extra" >/dev/null 2>&1 || true
  done
  if podman container exists "$NAME" 2>/dev/null; then
    if [ "$RESULT" != PASSED ]; then
      log "container log (last 40 lines):"
      podman logs --tail 40 "$NAME" 2>&1 | sed 's/^/    /' || true
    fi
    podman rm -f -t 0 "$NAME" >/dev/null 2>&1 || true
  fi
  if [ -d "$WORK/rootfs" ]; then $SUDO rm -rf "$WORK/rootfs"; fi
  rm -rf "$WORK"
  [ "$rc" -eq 0 ] || RESULT=FAILED
  [ "$RESULT" = PASSED ] || [ "$rc" -ne 0 ] || rc=1
  echo "docker/test.sh: $RESULT in $(($(date +%s) - T0))s"
  exit "$rc"
}
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 1. tools ----
step tools "podman, runc, debootstrap"
# netavark + iptables: the network stack podman uses for published ports.
PKGS=(podman runc debootstrap netavark iptables uidmap slirp4netns)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
log "$(podman --version), runtime $(podman info --format '{{.Host.OCIRuntime.Name}}')"

# ---- 2. base images ----
# The first Debian mirror apt uses for bookworm (deb822 .sources or one-line
# sources.list), else deb.debian.org.
debian_mirror() {
  local m=""
  shopt -s nullglob
  local sources=(/etc/apt/sources.list.d/*.sources) lists=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list)
  shopt -u nullglob
  if [ "${#sources[@]}" -gt 0 ]; then
    m=$(awk 'BEGIN { RS = "" }
      /(^|\n)Types:[^\n]*deb( |\n|$)/ && /(^|\n)Suites:[^\n]* bookworm( |\n|$)/ {
        if (match($0, /(^|\n)URIs: *[^ \n]+/)) { s = substr($0, RSTART, RLENGTH); sub(/.*URIs: */, "", s); print s; exit }
      }' "${sources[@]}")
  fi
  if [ -z "$m" ] && [ "${#lists[@]}" -gt 0 ]; then
    m=$(sed -E 's/\[[^]]*\]//' "${lists[@]}" 2>/dev/null | awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }')
  fi
  echo "${m:-http://deb.debian.org/debian}"
}

step base "$BASE:bookworm and :bookworm-slim"
if podman image exists "$BASE:bookworm"; then
  log "reusing $BASE:bookworm"
else
  mirror=${OEE_DEBIAN_MIRROR:-$(debian_mirror)}
  log "debootstrap --variant=minbase bookworm from $mirror"
  if ! $SUDO debootstrap --variant=minbase bookworm "$WORK/rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1; then
    tail -20 "$WORK/debootstrap.log"
    die "debootstrap failed"
  fi
  # What the official image leaves out too: downloaded .debs and apt lists.
  # shellcheck disable=SC2016 # $1 expands in the inner shell
  $SUDO sh -c 'rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' sh "$WORK/rootfs"
  $SUDO tar -C "$WORK/rootfs" -c . | podman import --quiet --change 'CMD ["bash"]' - "$BASE:bookworm" >/dev/null
  $SUDO rm -rf "$WORK/rootfs"
  log "imported $BASE:bookworm"
fi
# The runtime stage's base: the same minbase image (the real -slim differs
# only in leaving out docs and man pages).
podman image exists "$BASE:bookworm-slim" || podman tag "$BASE:bookworm" "$BASE:bookworm-slim"

# ---- 3. image ----
step build "$IMAGE from docker/Dockerfile"
build_t0=$(date +%s)
# --format docker keeps HEALTHCHECK; --pull=never: the bases are local only.
if ! podman build --format docker --pull=never -f docker/Dockerfile -t "$IMAGE" . >"$WORK/build.log" 2>&1; then
  tail -40 "$WORK/build.log"
  die "image build failed"
fi
cached=$(grep -c -- '--> Using cache' "$WORK/build.log" || true)
log "built in $(($(date +%s) - build_t0))s ($cached cached steps), size $(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{ printf "%.1f MB", $1 / 1e6 }')"

# ---- 4. host oeectl ----
step oeectl "the client run from the host"
if [ -n "${OEECTL:-}" ]; then
  log "using OEECTL=$OEECTL"
else
  cid=$(quiet podman create "$IMAGE")
  podman cp "$cid:/usr/local/bin/oeectl" "$WORK/oeectl"
  quiet podman rm "$cid" >/dev/null
  OEECTL=$WORK/oeectl
  if ldd "$OEECTL" | grep -q 'not found'; then
    log "installing the runtime libraries oeectl needs on the host"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      libgrpc29 libprotobuf-c1 libuuid1 libjansson4 >/dev/null
  fi
  log "using the image's oeectl"
fi
[ -x "$OEECTL" ] || die "no oeectl at $OEECTL"

# ---- 5. run ----
step run "container $NAME"
podman rm -f -t 0 "$NAME" >/dev/null 2>&1 || true # left over from a killed run
# 127.0.0.1::50051 publishes the container's 50051 on a free loopback port.
quiet podman run -d --name "$NAME" -p 127.0.0.1::50051 -p 127.0.0.1::9464 "$IMAGE" >/dev/null
hostport=$(podman port "$NAME" 50051/tcp | head -1)
ADDR=127.0.0.1:${hostport##*:}
metricsport=$(podman port "$NAME" 9464/tcp | head -1)
METRICS=http://127.0.0.1:${metricsport##*:}
log "published on $ADDR, metrics on $METRICS"
ctl() { "$OEECTL" --addr "$ADDR" "$@"; }

wait_healthy() {
  local deadline=$(($(date +%s) + HEALTH_LIMIT_S))
  until
    # Runs the image's HEALTHCHECK command in the container now and records
    # the result (podman has no timer for it without systemd).
    podman healthcheck run "$NAME" >"$WORK/health.out" 2>&1
  do
    [ "$(podman inspect --format '{{.State.Running}}' "$NAME")" = true ] ||
      die "container exited: $(podman inspect --format 'exit code {{.State.ExitCode}}' "$NAME")"
    if [ "$(date +%s)" -ge "$deadline" ]; then
      die "not healthy after ${HEALTH_LIMIT_S}s: $(head -3 "$WORK/health.out"); in the container: $(podman exec "$NAME" oeectl health 2>&1 | head -3)"
    fi
    sleep 0.5
  done
  log "healthy"
}

step health "wait for the image's HEALTHCHECK (oeectl health)"
wait_healthy
podman logs "$NAME" 2>/dev/null | grep -q '^oee-server listening on port 50051$' ||
  die "no 'oee-server listening on port 50051' line on stdout"
ctl health >/dev/null || die "oeectl health from the host failed (exit $?)"
log "oeectl health from the host: SERVING"

step props "non-root, PID 1"
uid=$(podman exec "$NAME" id -u)
[ "$uid" != 0 ] || die "server runs as root"
pid1=$(podman exec "$NAME" cat /proc/1/comm)
[ "$pid1" = tini ] || die "PID 1 is $pid1, expected tini"
server_uid=$(podman exec "$NAME" sh -c 'for p in /proc/[0-9]*; do [ "$(cat $p/comm)" = oee-server ] && stat -c %u $p; done' | head -1)
if [ -z "$server_uid" ] || [ "$server_uid" = 0 ]; then die "oee-server not found or runs as root"; fi
log "uid $uid, PID 1 $pid1, oee-server uid $server_uid"

step store "the default store: sqlite in /var/lib/oee"
podman logs "$NAME" 2>&1 | grep -q 'msg=listening .* store=sqlite data_dir=/var/lib/oee ' ||
  die "the listening log line does not say 'store=sqlite data_dir=/var/lib/oee'"
podman exec "$NAME" test -f /var/lib/oee/oee.db || die "no /var/lib/oee/oee.db in the container"
log "store=sqlite data_dir=/var/lib/oee: $(podman exec "$NAME" ls /var/lib/oee | tr '\n' ' ')"

# Polls `oeectl CMD... ID` until "status:" is final; prints the last output.
wait_final() {
  local out status
  for _ in $(seq 1 100); do
    out=$(ctl "$@") || die "oeectl $* failed (exit $?)"
    status=$(awk '$1 == "status:" { print $2 }' <<<"$out")
    case "$status" in DONE | ERROR | CANCELLED) break ;; esac
    sleep 0.1
  done
  printf '%s\n' "$out"
}
field() { awk -v k="$1:" '$1 == k { sub(/^[^ ]+ +/, ""); print; exit }'; }

step task "submit an echo task, check its result"
id=$(ctl submit --name docker-test --type echo --ctx message=hello-container) || die "submit failed (exit $?)"
out=$(wait_final get "$id")
status=$(field status <<<"$out")
result=$(field result <<<"$out")
[ "$status" = DONE ] || die "task $id ended $status: $out"
[ "$result" = hello-container ] || die "task $id result '$result', expected 'hello-container'"
log "task $id: $status, result '$result'"

step metrics "GET /metrics and /healthz on the image's metrics port (9464)"
# Python's urllib: the host may not have curl.
http_get() {
  python3 -c 'import sys, urllib.request
r = urllib.request.urlopen(sys.argv[1], timeout=10)
sys.stdout.write("%d\n%s" % (r.status, r.read().decode()))' "$1"
}
out=$(http_get "$METRICS/metrics") || die "GET /metrics failed"
grep -q '^oee_tasks_submitted_total{task_type="echo"} 1$' <<<"$out" ||
  die "/metrics does not count the echo task: $(grep -m3 oee_tasks_submitted <<<"$out")"
grep -q '^oee_tasks{status="done"} 1$' <<<"$out" || die "/metrics does not show one done task"
[ "$(http_get "$METRICS/healthz" | head -1)" = 200 ] || die "/healthz is not 200 while serving"
log "/metrics counts the task, /healthz 200"

step pipeline "submit echo -> upper, check its output"
pid=$(ctl pipeline submit --id docker-test --strategy LOCAL_FAST_PRECISE \
  --stage a:echo --stage b:upper --input "hello pipeline") || die "pipeline submit failed (exit $?)"
out=$(wait_final pipeline result "$pid")
status=$(field status <<<"$out")
output=$(field output <<<"$out")
[ "$status" = DONE ] || die "pipeline $pid ended $status: $out"
[ "$output" = "HELLO PIPELINE" ] || die "pipeline $pid output '$output', expected 'HELLO PIPELINE'"
log "pipeline $pid: $status, output '$output'"

# SIGTERM; the container must exit 0 within STOP_LIMIT_S, its server's last
# log lines saying "msg=exited status=0".
stop_check() {
  local stop_t0 code stop_ms
  stop_t0=$(date +%s%N)
  podman kill --signal TERM "$NAME" >/dev/null
  code=$(timeout $((STOP_LIMIT_S + 5)) podman wait "$NAME") || die "still running $((STOP_LIMIT_S + 5))s after SIGTERM"
  stop_ms=$((($(date +%s%N) - stop_t0) / 1000000))
  log "exited with status $code after ${stop_ms}ms"
  [ "$code" = 0 ] || die "exit status $code after SIGTERM, expected 0"
  [ "$stop_ms" -le $((STOP_LIMIT_S * 1000)) ] || die "took ${stop_ms}ms to stop, limit ${STOP_LIMIT_S}s"
  podman logs --tail 5 "$NAME" 2>&1 | grep -q 'msg=exited status=0' || die "no 'msg=exited status=0' log line"
}

step stop "SIGTERM, expect exit 0 within ${STOP_LIMIT_S}s"
stop_check

step restart "start the container again: the task is still stored"
quiet podman start "$NAME" >/dev/null
hostport=$(podman port "$NAME" 50051/tcp | head -1)
ADDR=127.0.0.1:${hostport##*:}
wait_healthy
out=$(ctl get "$id") || die "task $id is gone after the restart (exit $?)"
status=$(field status <<<"$out")
result=$(field result <<<"$out")
if [ "$status" != DONE ] || [ "$result" != hello-container ]; then
  die "task $id after the restart: status '$status', result '$result': $out"
fi
log "task $id after the restart: $status, result '$result'"
stop_check

step worker "a worker container runs a remote task"
podman rm -f -t 0 "$NAME-worker" "$NAME-remote" >/dev/null 2>&1 || true
# The config must be readable by the image's uid 10001.
install -d -m 0755 "$WORK/remote"
printf '{ "workers": 1, "remote_types": ["shell"] }\n' >"$WORK/remote/oee.json"
chmod 0644 "$WORK/remote/oee.json"
quiet podman run -d --name "$NAME-remote" -p 127.0.0.1::50051 \
  -v "$WORK/remote:/etc/oee-remote:ro" -e OEE_CONFIG=/etc/oee-remote/oee.json "$IMAGE" >/dev/null
hostport=$(podman port "$NAME-remote" 50051/tcp | head -1)
ADDR=127.0.0.1:${hostport##*:}
# Same network namespace: the image's OEE_ADDR (127.0.0.1:50051) reaches it.
quiet podman run -d --name "$NAME-worker" --network "container:$NAME-remote" "$IMAGE" \
  oeectl worker --type shell --worker-id docker-worker -- sh -c 'tr a-z A-Z' >/dev/null
for _ in $(seq 1 100); do ctl health >/dev/null 2>&1 && break; sleep 0.2; done
id=$(ctl submit --name docker-remote --type shell --ctx input=hello-worker) || die "submit failed (exit $?)"
out=$(wait_final get "$id")
status=$(field status <<<"$out")
result=$(field result <<<"$out")
remote=$(field remote <<<"$out")
if [ "$status" != DONE ] || [ "$result" != HELLO-WORKER ] || [ "$remote" != docker-worker ]; then
  log "worker container log:"
  podman logs --tail 20 "$NAME-worker" 2>&1 | sed 's/^/    /' >&2 || true
  die "remote task $id: status '$status', result '$result', worker '$remote': $out"
fi
log "remote task $id: $status, result '$result', run by $remote"
podman kill --signal TERM "$NAME-worker" >/dev/null
code=$(timeout $((STOP_LIMIT_S + 5)) podman wait "$NAME-worker") || die "worker still running after SIGTERM"
[ "$code" = 0 ] || die "worker container exit status $code after SIGTERM, expected 0"
podman logs "$NAME-worker" 2>&1 | grep -q 'oeectl worker: stopped' || die "no 'oeectl worker: stopped' line"
log "worker container stopped with status 0"

step end "all checks passed"
RESULT=PASSED
