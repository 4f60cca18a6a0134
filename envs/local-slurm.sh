#!/usr/bin/env bash
# envs/local-slurm.sh - a REAL multi-node SLURM cluster, with enforced accounting, for AI Factory Bench's
# tests: as strict as MeluXina where the project relies on it.
#
# Usage (as root; Debian 12 / slurm-wlm 22.05; no systemd needed):
#   envs/local-slurm.sh start    install missing packages, make the test network, (re)write the config,
#                                start munged, a private MariaDB, slurmdbd, slurmctld and one slurmd per
#                                compute node; wait until every node is idle and sacct answers; print a
#                                one-line summary. Idempotent; also fine after a reboot.
#   envs/local-slurm.sh stop     cancel all jobs, stop every daemon, remove the nodes' network namespaces,
#                                the bridge and the /etc/hosts entries; no slurm*/munged process (not even
#                                one this script did not start) nor our private mariadbd is left
#   envs/local-slurm.sh status   one line per daemon and node; exit 0 only if all of them are up
#   envs/local-slurm.sh env      export lines for tests:  eval "$(envs/local-slurm.sh env)"
#
# What you get (MeluXina's shape, see ../shared/MELUXINA.md):
# - a *login* host: this machine's root network namespace (slurmctld, slurmdbd and its private MariaDB,
#   Snakemake, the tests), at $NET.1 on the bridge aibench0;
# - compute nodes, each a network + UTS namespace with its own hostname, its own slurmd and its own
#   address on that bridge: mel0001, mel0002 (partition cpu, the default) and mel2001 (partition gpu,
#   Gres=gpu:4 backed by device-file stand-ins: /dev/null, /dev/zero, /dev/full, /dev/random). The
#   bridge exists only on this machine: it has no route outside, and the nodes have no default route.
#   The filesystem is shared, as Lustre is; a server on a node's 127.0.0.1 is reachable only there.
# - accounting enforced (AccountingStorageEnforce=associations,limits,qos) through slurmdbd: account
#   "aibench" with QoS "default" (48 h) and "test" (30 min, high priority, DenyOnLimit). A job must name
#   the account and a QoS, as on MeluXina: root's default account "nobudget" may submit nothing, and
#   "aibench" has no default QoS. A partition/node-list mismatch is refused by slurmctld itself.
# The config is written to /etc/slurm (Slurm's compiled-in default), so plain sbatch/squeue/sacct need
# no SLURM_CONF.
#
# Knobs (environment):
#   AIBENCH_SLURM_STATE=/var/tmp/aibench-slurm  pid files, logs, spool dirs, MariaDB datadir and socket
#   AIBENCH_SLURM_DB_PORT=3307     port of the private MariaDB (bound to 127.0.0.1 only)
#   AIBENCH_SLURM_ACCOUNT=aibench  account registered in slurmdbd for root
#   AIBENCH_SLURM_NET=10.77.0      the test network's /24 prefix (login .1, cpu nodes .11.., gpu node .21)
#   AIBENCH_SLURM_CPU_NODES=2      number of cpu-partition nodes (1..9)
#   AIBENCH_SLURM_NODE_CPUS=16     CPUs each node declares (shared by all nodes; MeluXina-sized requests fit)
#   AIBENCH_SLURM_GPUS=4           fake GPUs on the gpu node (0 = no gpu node, at most 4)
#   AIBENCH_SLURM_PROCTRACK=auto   auto|cgroup|linuxproc (auto: cgroup when cgroup v1 is usable)
#   AIBENCH_SLURM_TIMEOUT=120      seconds any single wait may take
#   AIBENCH_SLURM_FORCE=0          1 = overwrite Slurm config files this script did not write
#   AIBENCH_SLURM_OVERSUBSCRIBE=4  jobs that may share one core (OverSubscribe=FORCE:N on both partitions)
#
# Logs: $AIBENCH_SLURM_STATE/log/ (slurmctld.log, slurmd-<node>.log, slurmdbd.log, *.out = daemon
# stderr, apt.log), $AIBENCH_SLURM_STATE/mariadb/mariadbd.err, /var/log/munge/munged.log.
set -euo pipefail

readonly CLUSTER=aibench
readonly PARTITION=cpu
readonly GPU_PARTITION=gpu
readonly BRIDGE=aibench0
readonly HOSTS_BEGIN="# BEGIN AI Factory Bench test cluster (envs/local-slurm.sh)"
readonly HOSTS_END="# END AI Factory Bench test cluster"
readonly MARKER="# Managed by AI Factory Bench envs/local-slurm.sh - rewritten on every start; edit the script."
readonly PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server mariadb-client)
readonly FAKE_GPU_DEVICES=(/dev/null /dev/zero /dev/full /dev/random)

STATE=${AIBENCH_SLURM_STATE:-/var/tmp/aibench-slurm}
DB_PORT=${AIBENCH_SLURM_DB_PORT:-3307}
ACCOUNT=${AIBENCH_SLURM_ACCOUNT:-aibench}
GPUS=${AIBENCH_SLURM_GPUS:-4}
NET=${AIBENCH_SLURM_NET:-10.77.0}
CPU_NODES=${AIBENCH_SLURM_CPU_NODES:-2}
NODE_CPUS=${AIBENCH_SLURM_NODE_CPUS:-16}
PROCTRACK=${AIBENCH_SLURM_PROCTRACK:-auto}
TIMEOUT=${AIBENCH_SLURM_TIMEOUT:-120}
FORCE=${AIBENCH_SLURM_FORCE:-0}
# jobs per core: a service job, the monitoring job and a client allocation must fit on a 2-core node
OVERSUBSCRIBE=${AIBENCH_SLURM_OVERSUBSCRIBE:-4}


ETC=/etc/slurm
SLURM_CONF_FILE=$ETC/slurm.conf
RUN=$STATE/run
LOGDIR=$STATE/log
SPOOL=$STATE/spool
DB_DIR=$STATE/mariadb
DB_DATA=$DB_DIR/data
DB_SOCK=$DB_DIR/mariadbd.sock
DB_PIDFILE=$DB_DIR/mariadbd.pid
DB_LOG=$DB_DIR/mariadbd.err
DB_PASSFILE=$STATE/slurmdbd-db.password
MUNGE_PIDFILE=/run/munge/munged.pid
HOST=$(hostname -s)
LOGIN_ADDR=$NET.1
LOGIN_NAME=$HOST-login

# check_settings: fail early on knobs that would only fail later, deep inside a daemon
check_settings() {
  [[ $STATE == /* ]] || die "AIBENCH_SLURM_STATE must be an absolute path (got '$STATE')"
  # slurmd and MariaDB put unix sockets under it, whose paths may not exceed 107 bytes.
  ((${#STATE} <= 64)) || die "AIBENCH_SLURM_STATE is too long (${#STATE} > 64 characters): $STATE"
  [[ $DB_PORT =~ ^[0-9]+$ ]] || die "AIBENCH_SLURM_DB_PORT must be a port number (got '$DB_PORT')"
  [[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "AIBENCH_SLURM_TIMEOUT must be a number of seconds (got '$TIMEOUT')"
  if [[ ! $GPUS =~ ^[0-9]+$ ]] || ((GPUS > ${#FAKE_GPU_DEVICES[@]})); then
    die "AIBENCH_SLURM_GPUS must be 0..${#FAKE_GPU_DEVICES[@]} (got '$GPUS')"
  fi
  [[ $NET =~ ^(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){2}$ ]] ||
    die "AIBENCH_SLURM_NET must be a /24 prefix such as 10.77.0 (got '$NET')"
  [[ $CPU_NODES =~ ^[1-9]$ ]] || die "AIBENCH_SLURM_CPU_NODES must be 1..9 (got '$CPU_NODES')"
  [[ $NODE_CPUS =~ ^[1-9][0-9]*$ ]] && ((NODE_CPUS % 2 == 0)) ||
    die "AIBENCH_SLURM_NODE_CPUS must be an even number of CPUs (got '$NODE_CPUS')"
  [ "$(id -u)" = 0 ] || die "must run as root"
  define_nodes
}

# define_nodes: NODES (all compute nodes), CPU_NODE_NAMES, GPU_NODE and each node's address
declare -A NODE_ADDR=()
NODES=()
CPU_NODE_NAMES=()
GPU_NODE=""
define_nodes() {
  local i name
  NODES=() CPU_NODE_NAMES=()
  for ((i = 1; i <= CPU_NODES; i++)); do
    name=$(printf 'mel%04d' "$i")
    CPU_NODE_NAMES+=("$name")
    NODES+=("$name")
    NODE_ADDR[$name]=$NET.$((10 + i))
  done
  GPU_NODE=""
  if ((GPUS > 0)); then
    GPU_NODE=mel2001
    NODES+=("$GPU_NODE")
    NODE_ADDR[$GPU_NODE]=$NET.21
  fi
}

# lock: one start or stop at a time (concurrent test sessions may both call start)
lock() {
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  flock -w "$TIMEOUT" 9 || die "another '$0 start|stop' has held $STATE/.lock for ${TIMEOUT}s"
}

# --------------------------------------------------------------------------------------------- helpers
log() { printf 'local-slurm: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_us() { echo "${EPOCHREALTIME//[!0-9]/}"; } # microseconds (the radix character follows the locale)
elapsed_since() { awk -v a="$1" -v b="$(now_us)" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'; }

# pidfile_of DAEMON: where the daemon's pid is recorded
pidfile_of() {
  case $1 in
    munged) echo "$MUNGE_PIDFILE" ;;
    mariadbd) echo "$DB_PIDFILE" ;;
    slurmd@*) echo "$RUN/slurmd-${1#slurmd@}.pid" ;; # one slurmd per node: slurmd@mel0001
    *) echo "$RUN/$1.pid" ;;
  esac
}

# logs_of DAEMON: its log files, most useful first
logs_of() {
  case $1 in
    munged) echo "/var/log/munge/munged.log $LOGDIR/munged.out" ;;
    mariadbd) echo "$DB_LOG $LOGDIR/mariadbd.out" ;;
    slurmd@*) echo "$LOGDIR/slurmd-${1#slurmd@}.log $LOGDIR/slurmd-${1#slurmd@}.out" ;;
    *) echo "$LOGDIR/$1.log $LOGDIR/$1.out" ;;
  esac
}

# running PID: PID is a live process (not a zombie)
running() {
  local stat
  [[ $1 =~ ^[0-9]+$ ]] || return 1
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# alive PID NAME: PID is a live process whose command name is NAME (guards against reused pids)
alive() {
  [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] && running "$1"
}

# daemon_pid DAEMON: print the pid of our running DAEMON (from its pid file), fail if it is not running
daemon_pid() {
  local f pid
  f=$(pidfile_of "$1")
  [ -s "$f" ] || return 1
  pid=$(tr -dc '0-9' <"$f")
  alive "$pid" "${1%%@*}" || return 1
  echo "$pid"
}

# pids_named NAME: all live processes whose command name is exactly NAME
pids_named() {
  local d pid
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    if alive "$pid" "$1"; then echo "$pid"; fi
  done
}

# terminate PID NAME: SIGTERM, wait (bounded), then SIGKILL
terminate() {
  local pid=$1 name=$2 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 300; i++)); do # up to 30 s: slurmctld saves state, MariaDB flushes
    alive "$pid" "$name" || return 0
    sleep 0.1
  done
  log "$name (pid $pid) ignored SIGTERM for 30 s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do alive "$pid" "$name" || return 0; sleep 0.1; done
}

# wait_for PID CMD...: poll CMD until it succeeds (deadline $TIMEOUT s).
# Returns 2 at once if PID (or "-" for none) has exited, 1 on timeout.
wait_for() {
  local pid=$1 deadline
  shift
  deadline=$(($(now_us) + TIMEOUT * 1000000))
  until "$@" >/dev/null 2>&1; do
    if [ "$pid" != - ] && ! running "$pid"; then return 2; fi
    (($(now_us) < deadline)) || return 1
    sleep 0.2
  done
}

# fail DAEMON WHY: say which daemon failed, show the tail of its logs, exit 1
fail() {
  local daemon=$1 why=$2 f shown=0
  log "ERROR: $daemon $why"
  for f in $(logs_of "$daemon"); do
    [ -s "$f" ] || continue
    # A Slurm daemon in the foreground writes the same lines to its log and to stderr (*.out).
    if [ "$shown" = 1 ] && [[ $daemon == slurm* ]]; then continue; fi
    printf -- '---- last 25 lines of %s ----\n' "$f" >&2
    tail -n 25 "$f" >&2
    shown=1
  done
  log "the daemons that did start are left running for inspection; '$0 stop' stops them"
  exit 1
}

# close_extra_fds: close every file descriptor above 2 (our lock, and whatever the caller passed
# down, such as a pipe it reads to its end), so that daemons started from here hold none of them
close_extra_fds() {
  local fd
  for fd in /proc/self/fd/*; do
    fd=${fd##*/}
    if ((fd > 2)); then exec {fd}>&-; fi
  done 2>/dev/null
}

# spawn DAEMON CMD...: run CMD (a daemon in foreground mode) detached in its own session, cwd /,
# stdio to $LOGDIR/DAEMON.out (fresh for each start), no other file descriptors, and print its pid.
# A start-up failure thus shows at once as an exited pid; the daemon writes its own pid file, which
# `status` and `stop` read. (setsid does not fork here: the subshell is no process-group leader,
# so $! is the daemon's pid.)
spawn() {
  local daemon=$1
  shift
  (cd / && close_extra_fds && exec setsid "$@") </dev/null >"$LOGDIR/${daemon/@/-}.out" 2>&1 &
  echo "$!"
}

# await DAEMON PID WHAT CMD...: wait until CMD succeeds, else report DAEMON as failed
await() {
  local daemon=$1 pid=$2 what=$3 rc=0
  shift 3
  wait_for "$pid" "$@" || rc=$?
  case $rc in
    0) ;;
    2) fail "$daemon" "exited while starting (waiting for: $what)" ;;
    *) fail "$daemon" "not ready after ${TIMEOUT}s (waiting for: $what)" ;;
  esac
}

# ours FILE: FILE is absent or was written by this script (or AIBENCH_SLURM_FORCE=1)
ours() {
  [ ! -e "$1" ] || [ "$(head -n 1 "$1")" = "$MARKER" ] || [ "$FORCE" = 1 ] ||
    die "$1 was not written by this script; move it away or set AIBENCH_SLURM_FORCE=1"
}

# write_config FLAGVAR FILE MODE OWNER CONTENT: (re)write FILE if CONTENT differs, then set FLAGVAR=1
write_config() {
  local flag=$1 file=$2 mode=$3 owner=$4 content="$MARKER"$'\n'"$5"
  if [ -f "$file" ] && [ "$(cat "$file")" = "$content" ]; then
    chmod "$mode" "$file"
    chown "$owner" "$file"
    return 0
  fi
  ours "$file"
  install -m "$mode" -o "${owner%:*}" -g "${owner#*:}" /dev/null "$file"
  printf '%s\n' "$content" >"$file"
  printf -v "$flag" 1
}

# remove_config FLAGVAR FILE: remove FILE (if it is ours), then set FLAGVAR=1
remove_config() {
  [ -e "$2" ] || return 0
  ours "$2"
  rm -f "$2"
  printf -v "$1" 1
}

# --------------------------------------------------------------------------------------------- probes
probe_munge() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
db() { mariadb --no-defaults --protocol=socket --socket="$DB_SOCK" -uroot "$@"; }
probe_db() { db -N -e 'SELECT 1' >/dev/null 2>&1; }
probe_dbd() { timeout 5 sacctmgr -n -P show cluster format=cluster >/dev/null 2>&1; }
probe_ctld() { timeout 5 scontrol ping 2>/dev/null | grep -q ' is UP'; }
probe_sacct() { timeout 20 sacct -n -X -S now -o jobid >/dev/null 2>&1; }
node_state() { timeout 20 sinfo -h -N -n "$1" -o %T 2>/dev/null | head -n 1; }
node_ready() { case $(node_state "$1") in idle | mixed | allocated) return 0 ;; *) return 1 ;; esac; }

# --------------------------------------------------------------------------------------------- start steps
POLICY_RC_CREATED=0
cleanup() { if [ "$POLICY_RC_CREATED" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing ${missing[*]} (apt log: $LOGDIR/apt.log)"
  # The packages' maintainer scripts must not start system-wide daemons: we run our own.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    POLICY_RC_CREATED=1
  fi
  local apt=(apt-get -q -o DPkg::Lock::Timeout=600)
  if ! { DEBIAN_FRONTEND=noninteractive "${apt[@]}" update &&
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"; } \
    >>"$LOGDIR/apt.log" 2>&1; then
    tail -n 25 "$LOGDIR/apt.log" >&2
    die "apt-get could not install ${missing[*]}"
  fi
  cleanup
  POLICY_RC_CREATED=0
}

make_dirs() {
  install -d -m 0755 "$STATE" "$RUN" "$LOGDIR" "$SPOOL" "$ETC"
  chown slurm:slurm "$RUN" "$LOGDIR"
  install -d -m 0700 -o slurm -g slurm "$SPOOL/slurmctld"
  install -d -m 0755 "$SPOOL/slurmd"
  install -d -m 0750 -o mysql -g mysql "$DB_DIR"
}

# ensure_network: the login host's address on the bridge, one network namespace per compute node joined
# to it by a veth pair, and /etc/hosts entries for the nodes and the login host (the filesystem, /etc
# included, is shared). Nothing routes off the bridge: no default route in the nodes, no forwarding.
ensure_network() {
  local node ns veth
  ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
  # (the address lists are read whole: `grep -q` in a pipe would cut `ip` off, which pipefail reports)
  [[ $(ip -o addr show dev "$BRIDGE") == *" $LOGIN_ADDR/24 "* ]] || ip addr add "$LOGIN_ADDR/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  for node in "${NODES[@]}"; do
    ns=/var/run/netns/$node
    veth=veth-$node
    [ -e "$ns" ] || ip netns add "$node"
    if ! ip link show "$veth" >/dev/null 2>&1; then
      ip link add "$veth" type veth peer name eth0 netns "$node"
    fi
    ip link set "$veth" master "$BRIDGE" up
    nsenter --net="$ns" ip link set lo up
    [[ $(nsenter --net="$ns" ip -o addr show dev eth0) == *" ${NODE_ADDR[$node]}/24 "* ]] ||
      nsenter --net="$ns" ip addr add "${NODE_ADDR[$node]}/24" dev eth0
    nsenter --net="$ns" ip link set eth0 up
  done
  write_hosts
}

# write_hosts: our block in /etc/hosts (the nodes and the login host's name on the bridge)
write_hosts() {
  local block node tmp
  block="$HOSTS_BEGIN"$'\n'"$LOGIN_ADDR	$LOGIN_NAME"
  for node in "${NODES[@]}"; do block+=$'\n'"${NODE_ADDR[$node]}	$node"; done
  block+=$'\n'"$HOSTS_END"
  tmp=$(mktemp)
  awk -v b="$HOSTS_BEGIN" -v e="$HOSTS_END" '$0 == b { skip = 1 } !skip { print } $0 == e { skip = 0 }' \
    /etc/hosts >"$tmp"
  printf '%s\n' "$block" >>"$tmp"
  cmp -s "$tmp" /etc/hosts || cat "$tmp" >/etc/hosts # in place: /etc/hosts may be a bind mount
  rm -f "$tmp"
}

remove_network() {
  local node tmp
  for node in "${NODES[@]}"; do
    ip link del "veth-$node" 2>/dev/null || true
    [ -e "/var/run/netns/$node" ] && ip netns del "$node" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
  if grep -qxF "$HOSTS_BEGIN" /etc/hosts; then
    tmp=$(mktemp)
    awk -v b="$HOSTS_BEGIN" -v e="$HOSTS_END" '$0 == b { skip = 1 } !skip { print } $0 == e { skip = 0 }' \
      /etc/hosts >"$tmp"
    cat "$tmp" >/etc/hosts
    rm -f "$tmp"
  fi
}

# cgroup v1 is usable when freezer (proctrack), cpuset (cores) and memory (RAM) are v1 hierarchies
# under /sys/fs/cgroup in which we can create a child cgroup. Sets CGROUP_NOTE when it is not.
CGROUP_NOTE=""
cgroup_v1_usable() {
  local c probe
  for c in freezer cpuset memory; do
    if ! awk -v c="$c" '$3 == "cgroup" && ("," $4 ",") ~ ("," c ",") { ok = 1 } END { exit !ok }' \
      /proc/mounts; then
      CGROUP_NOTE="no cgroup v1 '$c' hierarchy"; return 1
    fi
    probe=/sys/fs/cgroup/$c/aibench-probe-$$
    if ! mkdir "$probe" 2>/dev/null; then
      CGROUP_NOTE="cannot create a cgroup in /sys/fs/cgroup/$c"; return 1
    fi
    rmdir "$probe" 2>/dev/null || true
  done
}

choose_proctrack() {
  case $PROCTRACK in
    cgroup | linuxproc) ;;
    auto)
      if cgroup_v1_usable; then PROCTRACK=cgroup; else
        PROCTRACK=linuxproc
        log "cgroup v1 not usable ($CGROUP_NOTE): falling back to proctrack/linuxproc, task/none;" \
          "processes a job leaves in the background may outlive it, and memory limits are not enforced"
      fi ;;
    *) die "AIBENCH_SLURM_PROCTRACK must be auto, cgroup or linuxproc (got '$PROCTRACK')" ;;
  esac
}

CONFIG_CHANGED=0     # slurm.conf, gres.conf or cgroup.conf changed: restart slurmctld + slurmd
DBD_CONFIG_CHANGED=0 # slurmdbd.conf changed: restart slurmdbd
DB_RESTARTED=0       # MariaDB was restarted with new options: restart slurmdbd
write_slurm_configs() {
  local hw mem_mb gres_types="" plugins accounting i gres_conf="" nodes="" node cpu_list partitions
  # Every node declares $NODE_CPUS CPUs (AIBENCH_SLURM_NODE_CPUS, default 16), whatever this machine has
  # (SlurmdParameters=config_overrides): the nodes share its cores, and MeluXina-sized requests such as
  # --cpus-per-task=4 are scheduled as they are there. Cores are therefore not constrained (a cpuset
  # of CPUs the machine does not have cannot be made); memory is.
  hw="CPUs=$NODE_CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$((NODE_CPUS / 2)) ThreadsPerCore=2"
  # RealMemory a bit under what the machine has.
  mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 }' /proc/meminfo)
  mem_mb=$((mem_mb - (mem_mb / 20 > 256 ? mem_mb / 20 : 256)))

  for node in "${CPU_NODE_NAMES[@]}"; do
    nodes+="NodeName=$node NodeAddr=${NODE_ADDR[$node]} $hw RealMemory=$mem_mb State=UNKNOWN"$'\n'
  done
  if [ -n "$GPU_NODE" ]; then
    gres_types="GresTypes=gpu"
    nodes+="NodeName=$GPU_NODE NodeAddr=${NODE_ADDR[$GPU_NODE]} $hw RealMemory=$mem_mb Gres=gpu:$GPUS State=UNKNOWN"
    # Each fake GPU needs a real device file; a Count= alone makes the node INVAL.
    gres_conf="AutoDetect=off"
    for ((i = 0; i < GPUS; i++)); do
      gres_conf+=$'\n'"NodeName=$GPU_NODE Name=gpu File=${FAKE_GPU_DEVICES[i]}"
    done
  fi
  cpu_list=$(IFS=,; echo "${CPU_NODE_NAMES[*]}")
  partitions="PartitionName=$PARTITION Nodes=$cpu_list Default=YES MaxTime=2-00:00:00 State=UP"
  partitions+=" OverSubscribe=FORCE:$OVERSUBSCRIBE"
  if [ -n "$GPU_NODE" ]; then
    partitions+=$'\n'"PartitionName=$GPU_PARTITION Nodes=$GPU_NODE MaxTime=2-00:00:00 State=UP"
    partitions+=" OverSubscribe=FORCE:$OVERSUBSCRIBE"
  fi

  if [ "$PROCTRACK" = cgroup ]; then
    plugins="ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup"
  else
    plugins="ProctrackType=proctrack/linuxproc
TaskPlugin=task/none"
  fi

  # As on MeluXina: a job needs a valid account (association) and QoS, and stays within the QoS limits.
  accounting="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
AccountingStorageEnforce=associations,limits,qos
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30"

  # SlurmctldHost is the login host's name on the bridge ($LOGIN_NAME, which slurmctld takes as its
  # hostname in a UTS namespace of its own): with NoCtldInAddrAny it binds that address only, so it
  # listens on the test network alone; NoInAddrAny binds each slurmd to its node's address.
  write_config CONFIG_CHANGED "$SLURM_CONF_FILE" 0644 root:root "ClusterName=$CLUSTER
SlurmctldHost=$LOGIN_NAME($LOGIN_ADDR)
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
StateSaveLocation=$SPOOL/slurmctld
SlurmdSpoolDir=$SPOOL/slurmd-%n
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd-%n.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd-%n.log
$plugins
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SlurmdParameters=config_overrides
PriorityType=priority/multifactor
PriorityWeightQOS=1000
DefMemPerCPU=1000
MinJobAge=300
ReturnToService=2
SlurmdTimeout=30
KillWait=5
$accounting
$gres_types
${nodes%$'\n'}
$partitions"
  if [ -n "$GPU_NODE" ]; then
    write_config CONFIG_CHANGED "$ETC/gres.conf" 0644 root:root "$gres_conf"
  else
    remove_config CONFIG_CHANGED "$ETC/gres.conf"
  fi
  if [ "$PROCTRACK" = cgroup ]; then
    # Never ConstrainDevices: the fake GPUs are /dev/null and /dev/zero, which every job needs.
    write_config CONFIG_CHANGED "$ETC/cgroup.conf" 0644 root:root "CgroupPlugin=cgroup/v1
CgroupAutomount=no
ConstrainCores=no
ConstrainRAMSpace=yes
ConstrainSwapSpace=no
ConstrainDevices=no"
  else
    remove_config CONFIG_CHANGED "$ETC/cgroup.conf"
  fi

  write_config DBD_CONFIG_CHANGED "$ETC/slurmdbd.conf" 0600 slurm:slurm "AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
PidFile=$RUN/slurmdbd.pid
LogFile=$LOGDIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$(cat "$DB_PASSFILE")
StorageLoc=slurm_acct_db"
}

ensure_munged() {
  local pid
  if [ ! -s /etc/munge/munge.key ]; then
    log "creating the munge key"
    install -d -m 0700 -o munge -g munge /etc/munge
    if command -v mungekey >/dev/null; then
      mungekey --create --keyfile=/etc/munge/munge.key
    else
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
  fi
  chown munge:munge /etc/munge /etc/munge/munge.key
  chmod 0700 /etc/munge
  chmod 0400 /etc/munge/munge.key
  install -d -m 0755 -o munge -g munge /run/munge # /run is emptied by a reboot
  install -d -m 0700 -o munge -g munge /var/lib/munge /var/log/munge
  probe_munge && return 0
  if pid=$(daemon_pid munged); then terminate "$pid" munged; fi
  log "starting munged"
  # munged daemonises itself and reports start-up errors through its exit code.
  (cd / && close_extra_fds && exec runuser -u munge -- /usr/sbin/munged) </dev/null >"$LOGDIR/munged.out" 2>&1 ||
    fail munged "exited with an error on start"
  await munged - "munge -n | unmunge" probe_munge
}

ensure_mariadb() {
  local pid
  if [ ! -f "$DB_PASSFILE" ]; then
    (umask 077 && od -An -N18 -tx1 /dev/urandom | tr -d ' \n' >"$DB_PASSFILE")
  fi
  if [ ! -f "$DB_DIR/.initialised" ]; then
    log "initialising the private MariaDB in $DB_DATA"
    rm -rf "$DB_DATA"
    mariadb-install-db --no-defaults --user=mysql --datadir="$DB_DATA" --skip-test-db \
      --auth-root-authentication-method=socket >>"$LOGDIR/mariadb-install-db.out" 2>&1 ||
      fail mariadb-install-db "could not initialise $DB_DATA"
    touch "$DB_DIR/.initialised"
  fi
  # --no-defaults: ignore /etc/mysql. The InnoDB sizes are the least slurmdbd accepts without a warning.
  local cmd=(/usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$DB_DATA"
    --socket="$DB_SOCK" --pid-file="$DB_PIDFILE" --log-error="$DB_LOG"
    --bind-address=127.0.0.1 --port="$DB_PORT" --skip-name-resolve
    --innodb-buffer-pool-size=512M --innodb-log-file-size=64M
    --innodb-lock-wait-timeout=900 --innodb-use-native-aio=0)
  if pid=$(daemon_pid mariadbd) && [ "$(tr '\0' ' ' <"/proc/$pid/cmdline")" != "${cmd[*]} " ]; then
    log "MariaDB options changed: restarting it (and slurmdbd)"
    terminate "$pid" mariadbd
    DB_RESTARTED=1
  fi
  if ! pid=$(daemon_pid mariadbd); then
    log "starting MariaDB on 127.0.0.1:$DB_PORT"
    rm -f "$DB_SOCK" "$DB_SOCK.lock" "$DB_PIDFILE"
    pid=$(spawn mariadbd "${cmd[@]}")
  fi
  await mariadbd "$pid" "SELECT 1 over $DB_SOCK" probe_db
  # (Re)set slurmdbd's database user; the password lives in $DB_PASSFILE and slurmdbd.conf.
  db <<SQL || fail mariadbd "refused to set up slurmdbd's database user"
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$(cat "$DB_PASSFILE")';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL
}

ensure_slurmdbd() {
  local pid
  if pid=$(daemon_pid slurmdbd) && [ "$DBD_CONFIG_CHANGED$DB_RESTARTED" != 00 ]; then
    log "slurmdbd.conf or MariaDB changed: restarting slurmdbd"
    terminate "$pid" slurmdbd
  fi
  if ! pid=$(daemon_pid slurmdbd); then
    log "starting slurmdbd"
    pid=$(spawn slurmdbd /usr/sbin/slurmdbd -D)
  fi
  await slurmdbd "$pid" "sacctmgr show cluster" probe_dbd
}

# register_accounting: cluster, QoS, accounts and root's associations in slurmdbd, as on MeluXina:
# QoS "default" (48 h) and "test" (30 min, higher priority), both DenyOnLimit (a job over a limit is
# refused at submission); account $ACCOUNT allows both and has no default QoS, so a job must name one;
# root's default account "nobudget" may submit nothing, so a job must name its account.
register_accounting() {
  local sam=(timeout 30 sacctmgr -i -Q) want have
  want="default|2-00:00:00|DenyOnLimit;test|00:30:00|DenyOnLimit;$ACCOUNT|default,test|;nobudget|0"
  have=$(accounting_state)
  [ "$have" = "$want" ] && return 0
  log "registering cluster $CLUSTER, QoS default/test and accounts $ACCOUNT/nobudget in slurmdbd"
  if [ -z "$(timeout 30 sacctmgr -n -P show cluster "$CLUSTER" format=cluster)" ]; then
    "${sam[@]}" add cluster "$CLUSTER" >/dev/null || fail slurmdbd "could not register cluster $CLUSTER"
  fi
  "${sam[@]}" add qos default >/dev/null 2>&1 || true
  "${sam[@]}" add qos test >/dev/null 2>&1 || true
  "${sam[@]}" modify qos default set MaxWall=2-00:00:00 Priority=10 Flags=DenyOnLimit >/dev/null 2>&1 || true
  "${sam[@]}" modify qos test set MaxWall=00:30:00 Priority=100 Flags=DenyOnLimit >/dev/null 2>&1 || true
  for account in "$ACCOUNT" nobudget; do
    if [ -z "$(timeout 30 sacctmgr -n -P show account "$account" format=account)" ]; then
      "${sam[@]}" add account "$account" Cluster="$CLUSTER" Description="AI Factory Bench tests" \
        Organization=aibench >/dev/null || fail slurmdbd "could not add account $account"
    fi
  done
  "${sam[@]}" modify account "$ACCOUNT" set QOS=default,test DefaultQOS=-1 >/dev/null 2>&1 || true
  "${sam[@]}" add user root Account=nobudget Cluster="$CLUSTER" DefaultAccount=nobudget >/dev/null 2>&1 || true
  "${sam[@]}" add user root Account="$ACCOUNT" Cluster="$CLUSTER" >/dev/null 2>&1 || true
  "${sam[@]}" modify user root set DefaultAccount=nobudget >/dev/null 2>&1 || true
  "${sam[@]}" modify user root where account=nobudget set MaxSubmitJobs=0 >/dev/null 2>&1 || true
  have=$(accounting_state)
  [ "$have" = "$want" ] || fail slurmdbd "accounting is not as wanted: got '$have', want '$want'"
}

# accounting_state: the QoS and association settings register_accounting makes, on one line
accounting_state() {
  local qos assoc nobudget
  qos=$(timeout 30 sacctmgr -n -P show qos default,test format=name,maxwall,flags 2>/dev/null | sort | paste -sd';')
  assoc=$(timeout 30 sacctmgr -n -P show assoc where account="$ACCOUNT" user=root cluster="$CLUSTER" \
    format=account,qos,defaultqos 2>/dev/null | head -n 1)
  nobudget=$(timeout 30 sacctmgr -n -P show assoc where account=nobudget user=root cluster="$CLUSTER" \
    format=account,maxsubmit 2>/dev/null | head -n 1)
  echo "$qos;$assoc;$nobudget"
}

ensure_slurmctld_slurmd() {
  local pid d node
  if [ "$CONFIG_CHANGED" = 1 ]; then
    for d in slurmctld $(printf 'slurmd@%s ' "${NODES[@]}"); do
      if pid=$(daemon_pid "$d"); then log "configuration changed: restarting $d"; terminate "$pid" "${d%%@*}"; fi
    done
    # slurmds of nodes no longer configured, or from the single-node layout
    for pid in $(pids_named slurmd); do terminate "$pid" slurmd; done
  fi
  if ! pid=$(daemon_pid slurmctld); then
    log "starting slurmctld"
    pid=$(spawn slurmctld unshare --uts sh -c 'hostname "$0" && exec /usr/sbin/slurmctld -D' "$LOGIN_NAME")
  fi
  await slurmctld "$pid" "scontrol ping" probe_ctld
  local pids=()
  for node in "${NODES[@]}"; do
    if ! pid=$(daemon_pid "slurmd@$node"); then
      log "starting slurmd of $node (${NODE_ADDR[$node]})"
      pid=$(spawn "slurmd@$node" nsenter --net="/var/run/netns/$node" unshare --uts \
        sh -c 'hostname "$0" && exec /usr/sbin/slurmd -D -N "$0"' "$node")
    fi
    pids+=("$pid")
  done
  local i=0
  for node in "${NODES[@]}"; do
    wait_for_node "$node" "${pids[i]}"
    i=$((i + 1))
  done
}

# wait_for_node NODE SLURMD_PID: until NODE is idle (or busy with jobs); resume it if drained/down
wait_for_node() {
  local node=$1 pid=$2 state deadline
  deadline=$(($(now_us) + TIMEOUT * 1000000))
  while :; do
    state=$(node_state "$node" || true)
    case $state in
      idle | mixed | allocated) return 0 ;;
      *inval*) fail "slurmd@$node" "registered, but node $node is INVAL: slurm.conf does not match the machine" ;;
      *drain* | down*) timeout 20 scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true ;;
    esac
    running "$pid" || fail "slurmd@$node" "exited while starting (node state: '${state:-unknown}')"
    (($(now_us) < deadline)) ||
      fail "slurmd@$node" "node $node not idle after ${TIMEOUT}s (state: '${state:-unknown}')"
    sleep 0.2
  done
}

do_start() {
  local t0 node nodes="" summary
  t0=$(now_us)
  check_settings
  lock
  mkdir -p "$LOGDIR" # for apt.log; ownership is fixed once the slurm user exists
  install_packages
  make_dirs
  ensure_network
  choose_proctrack
  ensure_munged
  ensure_mariadb # creates the database password before slurmdbd.conf is written
  write_slurm_configs
  ensure_slurmdbd
  register_accounting
  ensure_slurmctld_slurmd
  await slurmdbd - "sacct answers" probe_sacct
  for node in "${NODES[@]}"; do nodes+=" $node(${NODE_ADDR[$node]}) $(node_state "$node"),"; done
  summary="up in $(elapsed_since "$t0")s: cluster $CLUSTER, login $HOST($LOGIN_ADDR), nodes${nodes%,};"
  summary+=" partitions $PARTITION*${GPU_NODE:+,$GPU_PARTITION ($GPUS fake GPUs)}, proctrack/$PROCTRACK,"
  summary+=" sacct via slurmdbd + MariaDB 127.0.0.1:$DB_PORT, account $ACCOUNT (QoS default,test), state $STATE"
  printf 'local-slurm: %s\n' "$summary"
}

# --------------------------------------------------------------------------------------------- stop
cancel_jobs() {
  local jobs i
  probe_ctld || return 0
  jobs=$(timeout 20 squeue -h -t PD,R,CG,S,CF -o %i 2>/dev/null | xargs) || return 0
  [ -n "$jobs" ] || return 0
  log "cancelling jobs: $jobs"
  # shellcheck disable=SC2086 # one argument per job id
  timeout 20 scancel $jobs 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do # up to 20 s for the jobs' processes to end
    [ -z "$(timeout 20 squeue -h -t R,CG -o %i 2>/dev/null)" ] && return 0
    sleep 0.2
  done
  log "jobs still running after 20 s; their processes are killed below"
}

do_stop() {
  local d pid i
  check_settings
  lock
  cancel_jobs
  for d in $(printf 'slurmd@%s ' "${NODES[@]}") slurmctld slurmdbd mariadbd munged; do
    if pid=$(daemon_pid "$d"); then
      log "stopping $d (pid $pid)"
      terminate "$pid" "${d%%@*}"
    fi
    rm -f "$(pidfile_of "$d")"
  done
  # Anything left (job step daemons, daemons started by hand or by an older run) goes too.
  for d in slurmstepd slurmd slurmctld slurmscriptd slurmdbd munged; do
    for pid in $(pids_named "$d"); do
      log "stopping stray $d (pid $pid)"
      terminate "$pid" "$d"
    done
  done
  for pid in $(pids_named mariadbd); do
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--datadir=$DB_DATA"; then
      log "stopping stray mariadbd (pid $pid)"
      terminate "$pid" mariadbd
    fi
  done
  remove_network
  # The dead daemons are zombies until PID 1 reaps them (some init processes do so lazily): wait a
  # little, so that `ps` right after `stop` is clean.
  for ((i = 0; i < 50; i++)); do
    [ -z "$(zombies)" ] && break
    sleep 0.1
  done
  if [ -n "$(zombies)" ]; then
    log "stopped; PID 1 has not yet reaped these exited daemons: $(zombies | xargs)"
  else
    log "stopped"
  fi
}

# zombies: exited (not yet reaped) processes with one of our daemons' names
zombies() {
  local d stat
  for d in /proc/[0-9]*; do
    stat=$(cat "$d/stat" 2>/dev/null) || continue
    case $stat in
      *"(munged) Z"* | *"(mariadbd) Z"* | *"(slurm"*") Z"*) echo "${d#/proc/}" ;;
      *) ;;
    esac
  done
}

# --------------------------------------------------------------------------------------------- status
do_status() {
  local bad=0 d pid probe state node
  check_settings
  for d in munged mariadbd slurmdbd slurmctld $(printf 'slurmd@%s ' "${NODES[@]}"); do
    node=${d#slurmd@}
    case $d in
      munged) probe=probe_munge ;;
      mariadbd) probe=probe_db ;;
      slurmdbd) probe=probe_dbd ;;
      slurmctld) probe=probe_ctld ;;
      slurmd@*) probe="node_ready $node" ;;
    esac
    if ! pid=$(daemon_pid "$d"); then
      printf '%-16s stopped\n' "$d"; bad=1
    elif ! $probe; then
      printf '%-16s running (pid %s) but not answering\n' "$d" "$pid"; bad=1
    else
      case $d in
        mariadbd) state="127.0.0.1:$DB_PORT, datadir $DB_DATA" ;;
        slurmd@*) state="node $node ${NODE_ADDR[$node]} $(node_state "$node")" ;;
        slurmctld) state="cluster $CLUSTER on $LOGIN_ADDR, config $SLURM_CONF_FILE" ;;
        *) state="" ;;
      esac
      printf '%-16s up (pid %s) %s\n' "$d" "$pid" "$state"
    fi
  done
  return "$bad"
}

do_env() {
  check_settings
  printf 'export SLURM_CONF=%q\n' "$SLURM_CONF_FILE"
  printf 'export AIBENCH_SLURM_STATE=%q\n' "$STATE"
  printf 'export AIBENCH_SLURM_CLUSTER=%q\n' "$CLUSTER"
  printf 'export AIBENCH_SLURM_ACCOUNT=%q\n' "$ACCOUNT"
  printf 'export AIBENCH_SLURM_PARTITION=%q\n' "$PARTITION"
  printf 'export AIBENCH_SLURM_GPU_PARTITION=%q\n' "$GPU_PARTITION"
  printf 'export AIBENCH_SLURM_GPUS=%q\n' "$GPUS"
  printf 'export AIBENCH_SLURM_LOGIN_ADDR=%q\n' "$LOGIN_ADDR"
  printf 'export AIBENCH_SLURM_CPU_NODES=%q\n' "${CPU_NODE_NAMES[*]}"
  printf 'export AIBENCH_SLURM_GPU_NODE=%q\n' "$GPU_NODE"
}

case ${1:-} in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  env) do_env ;;
  *) printf 'usage: %s start|stop|status|env\n' "$0" >&2; exit 2 ;;
esac
