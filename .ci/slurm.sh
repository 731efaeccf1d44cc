#!/usr/bin/env bash
# A single-node SLURM cluster on loopback for the slurm-marked tests: `.ci/slurm.sh up` installs
# (Debian's slurm-wlm + munge), configures and starts munged, slurmctld and slurmd; `.ci/slurm.sh down`
# stops them by pid. Needs root. Facts this relies on (Slurm 22.05, Debian 12): the daemons do not start
# on install; the job step clears SLURM_* variables, so the config must be at /etc/slurm/slurm.conf;
# without slurmdbd there is no sacct, so tests poll with squeue and keep finished jobs (MinJobAge).
set -euo pipefail
RUN=/run/mathse-slurm

up() {
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
  fi
  mkdir -p "$RUN" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
  [ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
  chmod 0700 /etc/munge && chmod 0400 /etc/munge/munge.key
  local cpus mem
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) * 3 / 4 ))
  cat > /etc/slurm/slurm.conf <<CONF
ClusterName=mathse
SlurmctldHost=localhost(127.0.0.1)
AuthType=auth/munge
SlurmUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=600
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
  runuser -u munge -- /usr/sbin/munged --pid-file="$RUN/munged.pid" 2>/dev/null || /usr/sbin/munged --force
  slurmctld -i
  slurmd -N localhost
  for _ in $(seq 1 30); do
    if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
      sinfo
      return 0
    fi
    sleep 1
  done
  echo "slurm did not come up:" >&2
  tail -20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
  return 1
}

down() {
  for name in slurmd slurmctld; do
    [ -f "$RUN/$name.pid" ] && kill "$(cat "$RUN/$name.pid")" 2>/dev/null || true
  done
  pkill -x munged 2>/dev/null || true
}

"${1:-up}"
