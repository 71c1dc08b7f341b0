#!/usr/bin/env bash
# A private single-node Slurm cluster for tests, from Debian's own packages (installed when
# absent), with every file of it (configuration, state, spool, logs, pid files, munge's key
# and socket) in one folder:
#
#   scripts/slurm/cluster.sh up DIR     start it (stopping first what an earlier `up` of DIR
#                                       left running), print `export SLURM_CONF=…`
#   scripts/slurm/cluster.sh down DIR   cancel its jobs and stop its daemons, by their pid files
#
# Runs as root; needs no systemd, cgroups or network (proctrack/pgid, task/none, no
# accounting). Idempotent: `up` twice restarts, `down` on a stopped cluster does nothing.
set -euo pipefail

action=${1:?usage: cluster.sh up|down DIR}
dir=${2:?usage: cluster.sh up|down DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
conf=$dir/etc/slurm.conf
export SLURM_CONF=$conf

log() { echo "slurm-cluster: $*" >&2; }

# Stops the process in pid file $1 and waits for it to go (TERM, then KILL after 10 s), if it
# is still daemon $2: a stale pid file may name some other process by now.
stop_pid() {
  local file=$1 name=$2 pid
  [ -s "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$name"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

down() {
  if [ -f "$conf" ] && [ -s "$dir/run/slurmctld.pid" ] && kill -0 "$(cat "$dir/run/slurmctld.pid")" 2>/dev/null; then
    scancel --quiet --user=root 2>/dev/null || true
    # Jobs end before their daemons do, so that no step outlives the cluster.
    for _ in $(seq 100); do
      [ -z "$(squeue -h 2>/dev/null)" ] && break
      sleep 0.1
    done
  fi
  stop_pid "$dir/run/slurmd.pid" slurmd
  stop_pid "$dir/run/slurmctld.pid" slurmctld
  stop_pid "$dir/munge/munged.pid" munged
  # A cluster killed with kill -9 leaves its job steps and their tasks behind. Every process
  # this cluster started inherited SLURM_CONF=$conf from its slurmd: those, and only those.
  local pid
  for environ in /proc/[0-9]*/environ; do
    pid=${environ#/proc/}; pid=${pid%/environ}
    [ "$pid" = $$ ] && continue
    if { tr '\0' '\n' <"$environ"; } 2>/dev/null | grep -qxF "SLURM_CONF=$conf"; then
      case $(cat "/proc/$pid/comm" 2>/dev/null) in
        # Job steps, batch scripts and their crossbrief runs; never a shell that merely
        # exported SLURM_CONF (the caller's).
        slurmstepd|slurm_script|crossbrief) kill -9 "$pid" 2>/dev/null || true ;;
      esac
    fi
  done
}

install_packages() {
  local missing=()
  for bin in /usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/sbatch /usr/sbin/munged; do
    [ -x "$bin" ] || missing+=("$bin")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing slurmctld slurmd slurm-client munge (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # Their post-install scripts cannot start services without systemd: harmless, started below.
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null 2>&1 \
    || apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge
}

up() {
  [ "$(id -u)" = 0 ] || { log "needs root (the daemons run as root and munge as munge)"; exit 1; }
  install_packages
  down
  mkdir -p "$dir"/{etc,state,spool,log,run,munge,munge-socket}
  # munged refuses a key, log or pid folder that is not its own and private, and a socket
  # folder that others cannot enter; every folder above must be enterable.
  chown munge:munge "$dir/munge" "$dir/munge-socket"
  chmod 0700 "$dir/munge"
  chmod 0755 "$dir/munge-socket" "$dir"
  if ! runuser -u munge -- test -x "$dir/munge-socket"; then
    log "the munge user cannot enter $dir: every folder above it must be enterable (chmod o+x)"
    exit 1
  fi
  [ -s "$dir/munge/munge.key" ] || runuser -u munge -- mungekey --create --keyfile="$dir/munge/munge.key"
  local socket=$dir/munge-socket/munge.socket
  runuser -u munge -- /usr/sbin/munged \
    --key-file="$dir/munge/munge.key" --socket="$socket" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
    --seed-file="$dir/munge/munged.seed"
  # munged writes its pid file as munge, in its private folder: copied where `down` reads it.
  for _ in $(seq 50); do [ -s "$dir/munge/munged.pid" ] && break; sleep 0.1; done

  cat >"$conf" <<CONF
ClusterName=crossbrief
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
MinJobAge=300
SchedulerParameters=batch_sched_delay=0,bf_interval=1
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
  /usr/sbin/slurmctld -f "$conf"
  /usr/sbin/slurmd -f "$conf" -N localhost
  for _ in $(seq 100); do
    if sinfo -h -o '%T' 2>/dev/null | grep -qx idle; then
      log "up: $(sinfo -h -o '%N %c CPUs %T')"
      printf 'export SLURM_CONF=%q\n' "$conf"
      return 0
    fi
    sleep 0.1
  done
  log "the node did not become idle in 10 s; logs in $dir/log"
  sinfo >&2 || true
  exit 1
}

case $action in
  up) up ;;
  down) down; log "down" ;;
  *) echo "usage: cluster.sh up|down DIR" >&2; exit 2 ;;
esac
