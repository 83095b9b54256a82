#!/usr/bin/env bash
# A real single-node Slurm (munged + slurmctld + slurmd) in a scratch folder, for as long as
# a command runs:  ci/slurm-up.sh COMMAND...  (make test-cluster runs `pytest -m cluster` in it).
#
# Installs slurm-wlm and munge through apt when they are missing and this runs as root; when
# not root and they are missing it skips (exit 0) with one clear line. Every daemon it starts
# is stopped by its pid on exit, whether COMMAND passed, failed or was interrupted.
# GRISTMILL_SLURM_DIR=DIR keeps the scratch folder (logs, state) at DIR instead of a temp one.
set -euo pipefail

say() { echo "slurm-up: $*" >&2; }

if [ $# -eq 0 ]; then
  say "usage: ci/slurm-up.sh COMMAND..."
  exit 2
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    say "SKIPPED: slurm-wlm/munge are not installed and installing them needs root (apt-get install slurm-wlm munge)"
    exit 0
  fi
  say "installing slurm-wlm munge with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
if [ "$(id -u)" -ne 0 ]; then
  # slurmd must run as root to start jobs as their user; without root there is no cluster.
  say "SKIPPED: starting slurmd needs root"
  exit 0
fi

SCRATCH=${GRISTMILL_SLURM_DIR:-$(mktemp -d /tmp/gristmill-slurm.XXXXXX)}
mkdir -p "$SCRATCH"/{state,spool,munge,log}
SCRATCH=$(cd "$SCRATCH" && pwd)
chmod 0755 "$SCRATCH"  # munged runs as munge and must reach its folder
HOST=$(hostname)
PIDS=()
CMD_PID=""

stop_all() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "${CMD_PID:-}" ]; then
    kill -TERM "$CMD_PID" 2>/dev/null || true
    wait "$CMD_PID" 2>/dev/null || true
  fi
  # Jobs still running would keep slurmstepd children; cancel them before the daemons go.
  if [ -n "${SLURM_CONF:-}" ] && command -v scancel >/dev/null; then
    scancel --user="$(id -un)" 2>/dev/null || true
    sleep 1
  fi
  local pid
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[i]}
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  say "stopped ${#PIDS[@]} daemon(s); logs in $SCRATCH/log"
  exit "$rc"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# munged: as the munge user, with a socket of its own, so a system munged is left alone.
KEY=/etc/munge/munge.key
if [ ! -s "$KEY" ]; then
  KEY=$SCRATCH/munge/munge.key
  dd if=/dev/urandom of="$KEY" bs=1 count=1024 status=none
  chmod 0400 "$KEY"
fi
chown -R munge:munge "$SCRATCH/munge"
chmod 0711 "$SCRATCH/munge"  # clients need to reach the socket, not list the folder
SOCKET=$SCRATCH/munge/munge.socket
runuser -u munge -- munged --key-file="$KEY" --socket="$SOCKET" --pid-file="$SCRATCH/munge/munged.pid" \
  --log-file="$SCRATCH/munge/munged.log" --seed-file="$SCRATCH/munge/munged.seed"
for _ in $(seq 50); do [ -s "$SCRATCH/munge/munged.pid" ] && break; sleep 0.1; done
[ -s "$SCRATCH/munge/munged.pid" ] || { say "FAILED: munged did not start, see $SCRATCH/munge/munged.log"; exit 1; }
PIDS+=("$(cat "$SCRATCH/munge/munged.pid")")

# This machine's CPUs and memory as slurmd sees them (first line of `slurmd -C`).
NODE_LINE=$(slurmd -C | head -n 1)
cat > "$SCRATCH/slurm.conf" <<EOF
ClusterName=gristmill-ci
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire is also how long a requeued job waits before it may start again (default 120 s).
AuthInfo=socket=$SOCKET,cred_expire=10
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$SCRATCH/state
SlurmdSpoolDir=$SCRATCH/spool
SlurmctldPidFile=$SCRATCH/slurmctld.pid
SlurmdPidFile=$SCRATCH/slurmd.pid
SlurmctldLogFile=$SCRATCH/log/slurmctld.log
SlurmdLogFile=$SCRATCH/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
# Short test jobs: react to limits and cancellations without long grace periods.
KillWait=10
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
$NODE_LINE
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
export SLURM_CONF=$SCRATCH/slurm.conf

slurmctld -D -i -f "$SLURM_CONF" >"$SCRATCH/log/slurmctld.stderr" 2>&1 &
PIDS+=("$!")
slurmd -D -f "$SLURM_CONF" >"$SCRATCH/log/slurmd.stderr" 2>&1 &
PIDS+=("$!")

say "waiting for node $HOST to be idle (conf $SLURM_CONF)"
state=""
for _ in $(seq 60); do
  state=$(sinfo -h -n "$HOST" -o %t 2>/dev/null || true)
  [ "$state" = idle ] && break
  sleep 1
done
if [ "$state" != idle ]; then
  say "FAILED: node $HOST is '${state:-unreachable}' after 60 s; see $SCRATCH/log"
  tail -n 20 "$SCRATCH/log/slurmctld.log" "$SCRATCH/log/slurmd.log" >&2 2>/dev/null || true
  exit 1
fi
sinfo >&2
export GRISTMILL_SLURM_DIR=$SCRATCH
# In the background, so that a TERM to this script runs the trap at once (bash defers traps
# while a foreground command runs); the trap stops the command too.
"$@" &
CMD_PID=$!
set +e
wait "$CMD_PID"
rc=$?
set -e
CMD_PID=""
exit "$rc"
