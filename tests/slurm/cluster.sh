#!/usr/bin/env bash
# tests/slurm/cluster.sh - a real, throw-away Slurm cluster on ONE machine, for hpctf's tests.
#
#   tests/slurm/cluster.sh start    install what is missing, (re)start the cluster, wait for idle nodes
#   tests/slurm/cluster.sh stop     cancel this cluster's jobs, stop the daemons this script started
#   tests/slurm/cluster.sh status   show the daemons and nodes; exit 0 only if everything is up
#   tests/slurm/cluster.sh env      print `export ...` lines for client commands (eval them)
#
# What it builds (all files under $HPCTF_LAB): one slurmctld, N slurmd "nodes" (node1..nodeN,
# Debian builds Slurm with MULTIPLE_SLURMD, so `slurmd -N nodeN` runs several on one host), each
# in its own UTS + mount namespace so `hostname` says nodeN and a private /etc/hosts maps
# nodeN -> 127.0.1.N; fake GPUs (gres); optionally slurmdbd + a private MariaDB so `sacct`
# works. Must run as root; needs no systemd, no docker, no cgroups. See tests/slurm/README.md.
#
# Knobs (environment, defaults in brackets):
#   HPCTF_LAB         [/tmp/hpctf-lab]  everything lives here: etc/ state/ log/ run/ tmp/ dev/ db/
#   HPCTF_LAB_NODES   [3]      number of nodes
#   HPCTF_LAB_CPUS    [4]      CPUs per node (need not exist: slurmd is told to trust slurm.conf)
#   HPCTF_LAB_MEM     [4000]   RealMemory per node, MB (memory is a consumable resource)
#   HPCTF_LAB_GPUS    [2]      fake GPUs per node (0 = no gres at all)
#   HPCTF_LAB_ACCT    [1]      1 = slurmdbd + MariaDB, sacct works; 0 = no accounting, sacct fails
#   HPCTF_LAB_PORT    [16810]  base port: slurmctld=P, slurmdbd=P+1, mariadb=P+2, nodeN=P+10+N.
#                              Two labs running at once need different HPCTF_LAB dirs and base
#                              ports at least 100 apart.
#   HPCTF_LAB_CLUSTER [hpctf]  Slurm's ClusterName (two labs may share one name or not)
#   HPCTF_LAB_DBD_PORT []      use the slurmdbd of a running lab at this port instead of starting
#                              one (with MariaDB): Slurm's multi-cluster set-up, one slurmdbd for
#                              several clusters, which reach each other with --clusters/-M.
#                              Needs its own HPCTF_LAB_CLUSTER; start it after that lab, stop it
#                              before.
#   HPCTF_LAB_FIRST_JOB_ID [1] first job id (give a second lab other ids than the first)
#   HPCTF_LAB_KEEP    [0]      1 = keep jobs, job ids, accounting DB and logs across restarts
#   HPCTF_LAB_TIMEOUT [60]     seconds to wait for idle nodes (and for apt/dpkg held by others)
#   HPCTF_LAB_SLURMD_TIMEOUT [60] seconds before slurmctld declares a silent node DOWN
#
# Faults, for tests of what survives them (on a running cluster):
#   kill-node NODE   freeze everything of NODE (its slurmd, job steps and tasks): a dead machine
#   revive-node NODE start NODE's slurmd again (ReturnToService=2 brings it back to service)
#   stop-ctld        stop slurmctld (jobs keep running on the nodes)
#   start-ctld       start slurmctld again from its saved state, wait until it answers
set -euo pipefail

LAB=${HPCTF_LAB:-/tmp/hpctf-lab}
NODES=${HPCTF_LAB_NODES:-3}
CPUS=${HPCTF_LAB_CPUS:-4}
MEM=${HPCTF_LAB_MEM:-4000}
GPUS=${HPCTF_LAB_GPUS:-2}
ACCT=${HPCTF_LAB_ACCT:-1}
PORT=${HPCTF_LAB_PORT:-16810}
KEEP=${HPCTF_LAB_KEEP:-0}
FIRST_JOB_ID=${HPCTF_LAB_FIRST_JOB_ID:-1}
TIMEOUT=${HPCTF_LAB_TIMEOUT:-60}
SLURMD_TIMEOUT=${HPCTF_LAB_SLURMD_TIMEOUT:-60}

case $LAB in /*) ;; *) LAB=$PWD/$LAB ;; esac
LAB=${LAB%/}
CONF=$LAB/etc/slurm.conf
RUN=$LAB/run
CLUSTER=${HPCTF_LAB_CLUSTER:-hpctf}
CTLD_PORT=$PORT
DBD_PORT=$((PORT + 1))
DB_PORT=$((PORT + 2))
SHARED_DBD=${HPCTF_LAB_DBD_PORT:-} # another lab's slurmdbd: this lab starts none
OWN_DBD=0                          # 1: this lab runs slurmdbd and MariaDB
if [ "$ACCT" = 1 ] && [ -z "$SHARED_DBD" ]; then OWN_DBD=1; fi
[ -z "$SHARED_DBD" ] || DBD_PORT=$SHARED_DBD
node_port() { echo $((PORT + 10 + $1)); }
# munged is shared by every lab on the machine (one key, one socket); the lab that had to start
# it records that here, and the last lab to stop takes it down again.
SHARED=/run/hpctf-lab

export SLURM_CONF=$CONF
T0=$(date +%s%N)

# ---- small helpers -------------------------------------------------------------------------
say() { echo "[cluster.sh] $*"; }
die() { echo "[cluster.sh] ERROR: $*" >&2; exit 1; }
elapsed() { local ms=$((($(date +%s%N) - T0) / 1000000)); printf '%d.%01d' $((ms / 1000)) $((ms % 1000 / 100)); }

# A PID counts as running if /proc has it and it is not a zombie: daemons started here are
# reparented to PID 1, which may reap late, and `kill -0` reports zombies as alive.
running() {
	[ -n "$1" ] && [ -d "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}
# pid_ok PIDFILE COMM: the pid file names a live process whose name is COMM (guards against PID reuse).
pid_ok() {
	local pid
	[ -s "$1" ] || return 1
	pid=$(cat "$1")
	running "$pid" || return 1
	# Slurm 24.11 re-execs its daemons on `scontrol reconfigure` under the same PID, and Debian
	# 13's binaries are alternatives links to slurmctld-wlm/slurmd-wlm: comm may carry "-wlm".
	case $(cat "/proc/$pid/comm" 2>/dev/null) in "$2" | "$2-wlm") return 0 ;; esac
	return 1
}
alive() { pid_ok "$RUN/$1.pid" "$2"; } # alive NAME COMM

# spawn NAME CMD...: start CMD detached (own session), output to log/NAME.out, PID to run/NAME.pid.
# fds 8/9 (our locks) are closed so a daemon never holds them; stdin/out/err are detached so that
# callers capturing our output (subprocess, $(...)) are not kept waiting by the daemons.
spawn() {
	local name=$1
	shift
	setsid "$@" </dev/null >"$LAB/log/$name.out" 2>&1 8>&- 9>&- &
	echo $! >"$RUN/$name.pid"
}

# started NAME COMM: wait (up to 10 s) until NAME's process runs COMM, or is gone. Right after
# spawn it is still bash, setsid (unshare, sh) for a moment: on a busy machine a check of its
# name then found "bash" and called the daemon dead ("mariadbd died", Debian 13 root, 2 cores).
started() {
	local pid i
	pid=$(cat "$RUN/$1.pid")
	for i in $(seq 100); do
		if alive "$1" "$2" || ! running "$pid"; then return 0; fi
		sleep 0.1
	done
}

# Client commands hang for a long time when slurmctld is down: always bound them.
sq() { timeout 10 "$@"; }

node_names() { seq -f 'node%g' 1 "$NODES"; }
nodelist() { if [ "$NODES" = 1 ]; then echo node1; else echo "node[1-$NODES]"; fi; }

# Slurm version as a number (22.05 -> 2205, 24.11 -> 2411), from `slurmctld -V`
# ("slurm-wlm 22.05.8" on Debian 12, "slurm 24.11.5" on Debian 13).
slurm_vnum() {
	local v maj min
	v=$(slurmctld -V 2>/dev/null | awk '{print $2}')
	IFS=. read -r maj min _ <<<"$v"
	echo $((10#${maj:-0} * 100 + 10#${min:-0}))
}

check_knobs() {
	local k
	for k in NODES CPUS MEM GPUS ACCT PORT KEEP TIMEOUT; do
		[[ ${!k} =~ ^[0-9]+$ ]] || die "HPCTF_LAB_$k must be a number, got '${!k}'"
	done
	[ "$NODES" -ge 1 ] && [ "$NODES" -le 89 ] || die "HPCTF_LAB_NODES must be 1..89"
	[ "$CPUS" -ge 1 ] && [ "$MEM" -ge "$CPUS" ] || die "HPCTF_LAB_CPUS must be >= 1 and <= HPCTF_LAB_MEM"
	[ "$PORT" -ge 1024 ] && [ "$PORT" -le 65400 ] || die "HPCTF_LAB_PORT must be 1024..65400"
	if [ -n "$SHARED_DBD" ]; then
		[[ $SHARED_DBD =~ ^[0-9]+$ ]] || die "HPCTF_LAB_DBD_PORT must be a port number, got '$SHARED_DBD'"
		[ "$ACCT" = 1 ] || die "HPCTF_LAB_DBD_PORT needs HPCTF_LAB_ACCT=1 (it is the accounting)"
		[ "$SHARED_DBD" != $((PORT + 1)) ] || die "HPCTF_LAB_DBD_PORT is this lab's own slurmdbd port; leave it unset"
	fi
	[[ $SLURMD_TIMEOUT =~ ^[0-9]+$ ]] && [ "$SLURMD_TIMEOUT" -ge 5 ] || die "HPCTF_LAB_SLURMD_TIMEOUT must be a number >= 5"
	# Slurm config files cannot quote paths; unix sockets (MariaDB, PMIx) have a 108-byte limit.
	[[ $CLUSTER =~ ^[a-z][a-z0-9_]{0,39}$ ]] || die "HPCTF_LAB_CLUSTER must be lower-case letters, digits and _: '$CLUSTER'"
	[[ $LAB =~ ^[A-Za-z0-9/._-]+$ ]] || die "HPCTF_LAB may only contain [A-Za-z0-9/._-]: '$LAB'"
	[ ${#LAB} -le 60 ] || die "HPCTF_LAB is too long (${#LAB} > 60 chars; unix socket paths below it)"
}

# ---- packages ------------------------------------------------------------------------------
apt_busy() { # another apt/dpkg is running (e.g. a provisioning install in the background)
	local c
	for c in /proc/[0-9]*/comm; do
		case $(cat "$c" 2>/dev/null) in apt | apt-get | dpkg | unattended-upgr) return 0 ;; esac
	done
	return 1
}
wait_for_apt() {
	local waited=0
	while apt_busy; do
		[ "$waited" = 0 ] && say "waiting for a running apt-get/dpkg to finish"
		[ "$waited" -ge $((TIMEOUT * 10)) ] && die "apt-get/dpkg still busy after ${waited}s"
		sleep 1
		waited=$((waited + 1))
	done
}
install_packages() {
	local p missing=()
	# gcc + libc6-dev: mpicc needs a C compiler, which Debian 13's libopenmpi-dev does not pull in
	local pkgs=(slurmctld slurmd slurm-client munge openmpi-bin libopenmpi-dev gcc libc6-dev)
	[ "$ACCT" = 1 ] && pkgs+=(slurmdbd mariadb-server)
	wait_for_apt
	for p in "${pkgs[@]}"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q ' installed$' || missing+=("$p")
	done
	[ ${#missing[@]} = 0 ] && return 0
	say "installing ${missing[*]}"
	# Without systemd the packages' maintainer scripts start their services through /etc/init.d
	# (a system munged, MariaDB on 3306, slurmctld/slurmd on the default ports). A temporary
	# policy-rc.d that says "no" (Debian's docker images ship one) keeps them from doing that.
	local policy="" rc=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\n# temporary, from hpctf tests/slurm/cluster.sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
	fi
	{
		DEBIAN_FRONTEND=noninteractive apt-get update -q &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
	} >"$LAB/log/apt.log" 2>&1 || rc=$?
	[ -z "$policy" ] || rm -f "$policy"
	[ "$rc" = 0 ] || { tail -n 20 "$LAB/log/apt.log" >&2; die "apt-get failed (log: $LAB/log/apt.log)"; }
}

# ---- munge (shared by all labs) ------------------------------------------------------------
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
shared_lock() { mkdir -p "$SHARED/labs" && exec 8>"$SHARED/lock" && flock -w 60 8; }
start_munge() {
	shared_lock
	echo "$LAB" >"$SHARED/labs/${LAB//\//_}" # registration: this lab uses munged
	if ! munge_ok; then
		if [ ! -s /etc/munge/munge.key ]; then
			mkdir -p /etc/munge
			mungekey --create --keyfile=/etc/munge/munge.key
			chown munge:munge /etc/munge/munge.key
			chmod 400 /etc/munge/munge.key
		fi
		mkdir -p /run/munge /var/lib/munge /var/log/munge
		chown munge:munge /run/munge /var/lib/munge /var/log/munge
		chmod 0755 /run/munge
		say "starting munged"
		# munged refuses to run as root; it runs as the `munge` user like its packaged service would.
		setsid setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground \
			</dev/null >"$SHARED/munged.out" 2>&1 8>&- 9>&- &
		echo $! >"$SHARED/munged.pid"
		local i
		for i in $(seq 50); do munge_ok && break; [ "$i" = 50 ] || sleep 0.1; done
	fi
	munge_ok || { cat "$SHARED/munged.out" >&2 2>/dev/null; die "munge does not work"; }
	exec 8>&-
}
# Called by stop: take munged down if we started it and no other lab's slurmctld still runs.
release_munge() {
	local f other
	shared_lock || return 0
	rm -f "$SHARED/labs/${LAB//\//_}"
	for f in "$SHARED"/labs/*; do
		[ -s "$f" ] || continue
		other=$(cat "$f")
		if pid_ok "$other/run/slurmctld.pid" slurmctld; then exec 8>&-; return 0; fi
		rm -f "$f" # that lab is gone
	done
	if pid_ok "$SHARED/munged.pid" munged; then
		say "stopping munged (no lab uses it any more)"
		terminate "$(cat "$SHARED/munged.pid")"
	fi
	rm -f "$SHARED/munged.pid"
	exec 8>&-
}

# ---- configuration -------------------------------------------------------------------------
write_configs() {
	local vnum=$1 n g host
	host=$(uname -n)
	host=${host%%.*}

	# Fake GPUs: gres.conf needs File= entries that are device files (a GPU line without File=
	# is dropped and the node goes INVAL). Character devices 1,3 are /dev/null.
	: >"$LAB/etc/gres.conf"
	if [ "$GPUS" -gt 0 ]; then
		for g in $(seq 0 $((GPUS - 1))); do
			[ -c "$LAB/dev/nvidia$g" ] || mknod "$LAB/dev/nvidia$g" c 1 3 2>/dev/null ||
				ln -sfn /dev/null "$LAB/dev/nvidia$g" # e.g. a nodev mount
		done
		# A GPU type, so both --gres=gpu:N and --gres=gpu:tesla:N are valid requests.
		echo "NodeName=$(nodelist) Name=gpu Type=tesla File=$LAB/dev/nvidia[0-$((GPUS - 1))]" >"$LAB/etc/gres.conf"
	fi
	# slurmd initialises its cgroup plugin even with proctrack/linuxproc and task/none, and dies
	# where no cgroup tree is mounted (a chroot, a container): "No filesystem mounted on
	# /sys/fs/cgroup" / "Unable to initialize cgroup plugin". 23.11+ can be told not to; 22.05
	# knows no CgroupPlugin=disabled and needs the machine's tree (scripts/test-other-release
	# binds it into a Debian 12 root), and without systemd must not insist on a systemd scope.
	if [ "$vnum" -ge 2311 ]; then
		echo "CgroupPlugin=disabled" >"$LAB/etc/cgroup.conf"
	else
		printf 'CgroupPlugin=autodetect\nIgnoreSystemdOnFailure=yes\n' >"$LAB/etc/cgroup.conf"
	fi

	{
		cat <<EOF
# Generated by tests/slurm/cluster.sh - do not edit, it is rewritten on every start.
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
EOF
		# The job-credential plugin line was renamed in Slurm 23.11 (CryptoType=crypto/munge ->
		# CredType=cred/munge); an unknown key is fatal for every daemon, so pick by version.
		if [ "$vnum" -ge 2311 ]; then
			echo "CredType=cred/munge"
		else
			echo "CryptoType=crypto/munge"
		fi
		cat <<EOF
StateSaveLocation=$LAB/state/ctld
SlurmdSpoolDir=$LAB/state/%n
# Per-node job tmp dir. PMIx (srun --mpi=pmix) creates its spmix_appdir_* below TmpFS; with one
# shared /tmp the second "node" of a step fails with "File exists".
TmpFS=$LAB/tmp/%n
SlurmctldPidFile=$RUN/slurmctld.pidfile
SlurmdPidFile=$RUN/slurmd-%n.pidfile
SlurmctldLogFile=$LAB/log/slurmctld.log
SlurmdLogFile=$LAB/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups and no systemd here: track processes by parent PID, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/filetxt
JobCompLoc=$LAB/log/jobcomp.txt
MailProg=/bin/true
# The lab's "site environment" for every task, batch scripts included (see write_task_prolog).
TaskProlog=$LAB/etc/task-prolog.sh
# Heterogeneous jobs are started only by the backfill scheduler: make it run every second.
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$((MEM / CPUS))
MpiDefault=none
# The nodes' CPUs/memory/GPUs are invented: slurmd must report slurm.conf's values, not the host's.
SlurmdParameters=config_overrides
ReturnToService=2
SlurmdTimeout=$SLURMD_TIMEOUT
InactiveLimit=0
MinJobAge=300
FirstJobId=$FIRST_JOB_ID
KillWait=5
Waittime=0
EOF
		if [ "$ACCT" = 1 ]; then
			echo "AccountingStorageType=accounting_storage/slurmdbd"
			echo "AccountingStorageHost=127.0.0.1"
			echo "AccountingStoragePort=$DBD_PORT"
			# only with slurmdbd: without it this line is fatal for slurmctld
			[ "$GPUS" -gt 0 ] && echo "AccountingStorageTRES=gres/gpu"
		else
			echo "AccountingStorageType=accounting_storage/none"
		fi
		local gres=""
		if [ "$GPUS" -gt 0 ]; then
			echo "GresTypes=gpu"
			gres="Gres=gpu:tesla:$GPUS"
		fi
		# All nodes are reached at 127.0.0.1; they differ by port (multiple-slurmd build).
		echo "NodeName=$(nodelist) NodeHostname=$host NodeAddr=127.0.0.1" \
			"Port=[$(node_port 1)-$(node_port "$NODES")] CPUs=$CPUS RealMemory=$MEM $gres State=UNKNOWN"
		echo "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
		# A site's two kinds of nodes, for heterogeneous jobs (parameter servers on CPU nodes,
		# workers on GPU nodes): node1 stands for the CPU partition (its fake GPUs unused
		# there), the others for the GPU partition. debug, the default, still has them all.
		if [ "$NODES" -ge 3 ]; then
			echo "PartitionName=cpu Nodes=node1 MaxTime=INFINITE State=UP"
			echo "PartitionName=gpu Nodes=node[2-$NODES] MaxTime=INFINITE State=UP"
		fi
	} >"$CONF"

	# Each node's private /etc/hosts: nodeN -> 127.0.1.N, so a task resolving its own hostname
	# gets an address that no other node has (they all share one network namespace).
	{
		echo "127.0.0.1 localhost $host"
		for n in $(seq 1 "$NODES"); do echo "127.0.1.$n node$n"; done
		echo "::1 localhost ip6-localhost ip6-loopback"
	} >"$LAB/etc/hosts"

	if [ "$OWN_DBD" = 1 ]; then
		cat >"$LAB/etc/my.cnf" <<EOF
[mariadbd]
# runs as root: a lab dir below a 0700 directory (pytest's tmp dirs) is not reachable for the mysql user
user=root
datadir=$LAB/db/data
socket=$LAB/db/mariadb.sock
pid-file=$LAB/db/mariadb.pid
port=$DB_PORT
bind-address=127.0.0.1
skip-name-resolve
log-error=$LAB/log/mariadb.log
innodb_buffer_pool_size=256M
innodb_lock_wait_timeout=900
[client]
socket=$LAB/db/mariadb.sock
EOF
		# slurmdbd.conf is looked up next to $SLURM_CONF; it holds a password, so 0600 (else fatal).
		cat >"$LAB/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
DebugLevel=info
LogFile=$LAB/log/slurmdbd.log
PidFile=$RUN/slurmdbd.pidfile
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=hpctf
StorageLoc=slurm_acct_db
EOF
		chmod 600 "$LAB/etc/slurmdbd.conf"
	fi

	write_task_prolog
	printf 'export SLURM_CONF=%s\n' "$CONF" >"$LAB/env.sh"
}

# Lines "export NAME=VALUE" printed by a TaskProlog end up in the task's environment. A real
# site sets such things for its interconnect; this lab's interconnect is the loopback device.
write_task_prolog() {
	cat >"$LAB/etc/task-prolog.sh" <<'EOF'
#!/bin/sh
# Generated by tests/slurm/cluster.sh: environment for every task of the lab cluster.
# All nodes share one network namespace (same interfaces, same addresses). Open MPI 5's TCP
# transport then finds no "reachable pairing" between ranks on different nodes and aborts
# (Open MPI 4.1 happens to cope); over the loopback device it works with both.
echo "export OMPI_MCA_btl_tcp_if_include=lo"
# The lab runs jobs as root, which mpirun refuses without these two.
if [ "$(id -u)" = 0 ]; then
	echo "export OMPI_ALLOW_RUN_AS_ROOT=1"
	echo "export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"
fi
EOF
	chmod 755 "$LAB/etc/task-prolog.sh"
}

# ---- daemons -------------------------------------------------------------------------------
DB=(mariadb --defaults-file="$LAB/etc/my.cnf" -uroot)
start_accounting() {
	local i
	if [ ! -d "$LAB/db/data/mysql" ]; then
		say "initialising MariaDB in $LAB/db"
		rm -rf "$LAB/db/data"
		mariadb-install-db --defaults-file="$LAB/etc/my.cnf" --user=root --skip-test-db --force \
			--auth-root-authentication-method=socket >"$LAB/log/mariadb-install.log" 2>&1 ||
			{ tail "$LAB/log/mariadb-install.log" >&2; die "mariadb-install-db failed"; }
	fi
	spawn mariadbd mariadbd --defaults-file="$LAB/etc/my.cnf"
	started mariadbd mariadbd
	for i in $(seq 150); do
		mariadb-admin --defaults-file="$LAB/etc/my.cnf" ping >/dev/null 2>&1 && break
		alive mariadbd mariadbd || { tail "$LAB/log/mariadb.log" >&2; die "mariadbd died"; }
		[ "$i" = 150 ] && die "mariadbd does not answer (log: $LAB/log/mariadb.log)"
		sleep 0.1
	done
	# Fresh start: forget all jobs (slurmdbd recreates its tables on start).
	[ "$KEEP" = 1 ] || "${DB[@]}" -e "DROP DATABASE IF EXISTS slurm_acct_db"
	# Create the (empty) database here rather than letting slurmdbd do it: when slurmdbd finds no
	# database it creates one and reconnects on the same handle, and with the libmariadb of
	# Debian 13's current MariaDB (11.8.9) that reconnect loses the "max columns" option, so every
	# later query fails with "5027 Number of columns in result (=1) set execeeds maxmimum
	# allowed number of columns (=0)" and slurmdbd dies (seen with Slurm 24.11.5).
	"${DB[@]}" -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
		CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'hpctf';
		GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
	spawn slurmdbd slurmdbd -D
	started slurmdbd slurmdbd
	# slurmctld must find slurmdbd answering: on a fresh state directory it takes the TRES list
	# from the database and dies ("we have no TRES from it") if it cannot.
	for i in $(seq 150); do
		sq sacctmgr -n list cluster >/dev/null 2>&1 && return 0
		alive slurmdbd slurmdbd || { tail "$LAB/log/slurmdbd.log" >&2; die "slurmdbd died"; }
		sleep 0.1
	done
	die "slurmdbd does not answer (log: $LAB/log/slurmdbd.log)"
}

# Another lab's slurmdbd must answer before slurmctld starts (it takes the TRES list from it),
# and no other running controller may have this lab's ClusterName there: two controllers of one
# name would write into one cluster's tables.
wait_for_dbd() {
	local i known
	for i in $(seq 100); do
		if known=$(sq sacctmgr -n -P list cluster format=cluster,controlport 2>/dev/null); then
			if grep -q "^$CLUSTER|[1-9]" <<<"$known" && ! grep -qx "$CLUSTER|$CTLD_PORT" <<<"$known"; then
				die "cluster $CLUSTER is already in the slurmdbd at port $SHARED_DBD: give this lab another HPCTF_LAB_CLUSTER"
			fi
			return 0
		fi
		sleep 0.1
	done
	die "no slurmdbd answers at port $SHARED_DBD (HPCTF_LAB_DBD_PORT: start that lab first)"
}

spawn_ctld() {
	# slurmctld sees the nodes' /etc/hosts too (mount namespace only): Slurm 24.11 answers an srun
	# started inside a job (e.g. by Open MPI 5's mpirun) at that node's *name*, and retries for
	# 10 s when nodeN does not resolve. -i: start from the saved state, whatever it holds.
	spawn slurmctld unshare --mount --propagation private -- sh -c '
		mount --bind "$1" /etc/hosts || exit 1
		exec slurmctld -D -i -f "$2"' sh "$LAB/etc/hosts" "$CONF"
	started slurmctld slurmctld
}

spawn_slurmd() { # spawn_slurmd NODE
	# Own hostname (UTS namespace) and own /etc/hosts (mount namespace); the network namespace
	# stays shared. `hostname` may be missing on minimal systems: fall back to /proc.
	spawn "slurmd-$1" unshare --uts --mount --propagation private -- sh -c '
		hostname "$1" 2>/dev/null || echo "$1" >/proc/sys/kernel/hostname || exit 1
		mount --bind "$2" /etc/hosts || exit 1
		exec slurmd -D -N "$1" -f "$3"' sh "$1" "$LAB/etc/hosts" "$CONF"
	started "slurmd-$1" slurmd
}

start_slurm() {
	local n
	spawn_ctld
	for n in $(node_names); do spawn_slurmd "$n"; done
}

diagnose() {
	echo "---- sinfo -N -o '%N %t %E'" >&2
	sq sinfo -N -o '%N %t %E' >&2 2>&1 || echo "(sinfo failed)" >&2
	local f
	for f in "$LAB"/log/*.log "$LAB"/log/*.out; do
		[ -s "$f" ] || continue
		# daemons run with -D copy their log to NAME.out: show that only when there is no log
		case $f in *.out) [ -e "${f%.out}.log" ] && continue ;; esac
		echo "---- tail $f" >&2
		tail -n 8 "$f" >&2
	done
}

# Every expected daemon: "NAME COMM" lines.
daemons() {
	[ "$OWN_DBD" = 1 ] && printf '%s\n' "mariadbd mariadbd" "slurmdbd slurmdbd"
	echo "slurmctld slurmctld"
	node_names | sed 's/.*/slurmd-& slurmd/'
}
dead_daemon() { # print the first expected daemon that is not running
	local name comm
	while read -r name comm; do alive "$name" "$comm" || { echo "$name"; return 0; }; done < <(daemons)
	return 1
}

# Wait until all nodes are idle (and, with accounting, until slurmdbd knows the cluster, so
# that `sacct` works as soon as start returns).
wait_ready() {
	local deadline=$(($(date +%s) + TIMEOUT)) idle dead
	while :; do
		idle=$(sq sinfo -h -N -p debug -o '%t' 2>/dev/null | grep -c '^idle$' || true)
		if [ "$idle" = "$NODES" ]; then
			[ "$ACCT" = 1 ] || return 0
			sq sacctmgr -n -P list cluster format=cluster 2>/dev/null | grep -qx "$CLUSTER" && return 0
		fi
		if dead=$(dead_daemon); then
			diagnose
			die "$dead died during start (logs: $LAB/log)"
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then
			diagnose
			die "nodes not idle after ${TIMEOUT}s ($idle/$NODES idle)"
		fi
		sleep 0.2
	done
}

# terminate [-g TENTHS] PID...: SIGTERM, wait up to TENTHS/10 s (default 10 s), then SIGKILL.
terminate() {
	local pid left i grace=100
	if [ "$1" = -g ]; then
		grace=$2
		shift 2
	fi
	for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
	for i in $(seq "$grace"); do
		left=()
		for pid in "$@"; do running "$pid" && left+=("$pid"); done
		[ ${#left[@]} = 0 ] && return 0
		[ "$i" = "$grace" ] || sleep 0.1
	done
	say "SIGKILL ${left[*]}"
	kill -KILL "${left[@]}" 2>/dev/null || true
	for i in $(seq 50); do
		left=()
		for pid in "$@"; do running "$pid" && left+=("$pid"); done
		[ ${#left[@]} = 0 ] && return 0
		sleep 0.1
	done
}
# stop_daemons [-g TENTHS] COMM NAME...: stop those of NAME (pid files) that still run as COMM,
# all together.
stop_daemons() {
	local grace=() name pids=() comm
	if [ "$1" = -g ]; then
		grace=(-g "$2")
		shift 2
	fi
	comm=$1
	shift
	for name in "$@"; do
		if alive "$name" "$comm"; then pids+=("$(cat "$RUN/$name.pid")"); fi
		rm -f "$RUN/$name.pid"
	done
	[ ${#pids[@]} = 0 ] && return 0
	say "stopping $* (${pids[*]})"
	terminate "${grace[@]}" "${pids[@]}"
}

# Job steps (slurmstepd) are not children of slurmd and are left behind when slurmctld or slurmd
# died. Ours are recognised by the mount namespace of our slurmd's (run/mntns, written at start;
# a step inherits it) or by an open file below $LAB, never by name alone. Their job processes
# (descendants) go with them. Only steps under this script's root directory: a lab of another
# release in a chroot (scripts/test-other-release) shares /proc with the host, and the paths of
# its open files read the same as a host lab's from either side.
stray_steps() {
	local p fd ns
	local -A ours=()
	if [ -s "$RUN/mntns" ]; then
		while read -r ns; do ours[$ns]=1; done <"$RUN/mntns"
	fi
	for p in /proc/[0-9]*; do
		[ "$(cat "$p/comm" 2>/dev/null)" = slurmstepd ] || continue
		[ "$p/root" -ef / ] || continue
		ns=$(readlink "$p/ns/mnt" 2>/dev/null) || continue
		if [ -n "${ours[$ns]:-}" ]; then
			echo "${p#/proc/}"
			continue
		fi
		for fd in "$p"/fd/*; do
			case $(readlink "$fd" 2>/dev/null) in "$LAB"/*)
				echo "${p#/proc/}"
				break
				;;
			esac
		done
	done
}
descendants() { # PIDs of all descendants of the given PIDs
	local -A kids=()
	local pid ppid queue=("$@")
	while read -r pid ppid; do kids[$ppid]+=" $pid"; done < <(
		awk '/^PPid:/ {split(FILENAME, f, "/"); print f[3], $2}' /proc/[0-9]*/status 2>/dev/null)
	while [ ${#queue[@]} -gt 0 ]; do
		pid=${queue[0]}
		queue=("${queue[@]:1}")
		for ppid in ${kids[$pid]:-}; do
			echo "$ppid"
			queue+=("$ppid")
		done
	done
}

cancel_jobs() {
	alive slurmctld slurmctld || return 0
	local ids i
	ids=$(sq squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ') || return 0
	[ -n "${ids// /}" ] || return 0
	say "cancelling jobs $ids"
	# shellcheck disable=SC2086 # word splitting of the id list is intended
	sq scancel $ids 2>/dev/null || true
	for i in $(seq 50); do
		[ -z "$(sq squeue -h -t R,CG,S 2>/dev/null)" ] && return 0
		sleep 0.2
	done
}

do_stop() { # do_stop [restart]: with "restart", munged stays up for the start that follows
	local n steps
	[ -d "$RUN" ] || { say "nothing to stop ($LAB)"; return 0; }
	cancel_jobs
	local names=()
	for n in "$RUN"/slurmd-*.pid; do [ -e "$n" ] && names+=("$(basename "$n" .pid)"); done
	# slurmd ignores SIGTERM while it keeps retrying to register with a dead slurmctld:
	# do not wait long for it then (its state is thrown away anyway).
	local slurmd_grace=100
	alive slurmctld slurmctld || slurmd_grace=10
	[ ${#names[@]} -gt 0 ] && stop_daemons -g "$slurmd_grace" slurmd "${names[@]}"
	stop_daemons slurmctld slurmctld
	stop_daemons slurmdbd slurmdbd
	stop_daemons mariadbd mariadbd
	mapfile -t steps < <(stray_steps)
	if [ ${#steps[@]} -gt 0 ]; then
		local all
		mapfile -t all < <(printf '%s\n' "${steps[@]}"; descendants "${steps[@]}")
		say "killing left-over job steps ${all[*]}"
		kill -KILL "${all[@]}" 2>/dev/null || true
	fi
	rm -f "$RUN"/*.pidfile "$RUN/settings" "$RUN/mntns"
	[ "${1:-}" = restart ] || release_munge
}

# ---- commands ------------------------------------------------------------------------------
# What a running cluster was started with; any difference (including an edited cluster.sh) means
# "restart" rather than "already running".
settings() {
	echo "nodes=$NODES cpus=$CPUS mem=$MEM gpus=$GPUS acct=$ACCT own_dbd=$OWN_DBD dbd=$DBD_PORT port=$PORT slurmd_timeout=$SLURMD_TIMEOUT v=$(slurm_vnum)" \
		"script=$(cksum <"${BASH_SOURCE[0]}" | cut -d' ' -f1)"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cmd_start() {
	local p n vnum
	[ "$(id -u)" = 0 ] || die "must run as root"
	check_knobs
	mkdir -p "$LAB/log" "$RUN"
	exec 9>"$LAB/.lock"
	flock -w 300 9 || die "another cluster.sh holds $LAB/.lock"

	# Already up with the same settings? Then there is nothing to do.
	if command -v slurmctld >/dev/null && [ "$(cat "$RUN/settings" 2>/dev/null)" = "$(settings)" ] &&
		! dead_daemon >/dev/null &&
		[ "$(sq sinfo -h -N -p debug -o '%t' 2>/dev/null | grep -cE '^(idle|mix|alloc|comp)$')" = "$NODES" ]; then
		say "already running ($NODES nodes, $LAB)"
		echo "export SLURM_CONF=$CONF"
		return 0
	fi
	# Anything left of an earlier run (half dead, other settings) goes first.
	do_stop restart

	install_packages
	vnum=$(slurm_vnum)
	[ "$vnum" -ge 2205 ] || die "unsupported Slurm version: $(slurmctld -V)"

	local own_ports=("$CTLD_PORT" "$DBD_PORT" "$DB_PORT")
	[ -z "$SHARED_DBD" ] || own_ports=("$CTLD_PORT")
	for p in "${own_ports[@]}" $(for n in $(seq 1 "$NODES"); do node_port "$n"; done); do
		port_in_use "$p" && die "port $p is in use (another lab? choose another HPCTF_LAB_PORT)"
	done

	if [ "$KEEP" != 1 ]; then # fresh state: no jobs, job ids from 1, fresh logs
		rm -rf "$LAB/state" "$LAB/tmp" "$LAB/log"
	fi
	mkdir -p "$LAB"/{etc,log,run,dev,db} "$LAB/state/ctld"
	for n in $(node_names); do mkdir -p "$LAB/state/$n" "$LAB/tmp/$n"; done
	chmod 1777 "$LAB"/tmp/node*
	write_configs "$vnum"

	start_munge
	if [ "$OWN_DBD" = 1 ]; then start_accounting; fi
	if [ -n "$SHARED_DBD" ]; then wait_for_dbd; fi
	start_slurm
	wait_ready
	for n in $(node_names); do readlink "/proc/$(cat "$RUN/slurmd-$n.pid")/ns/mnt"; done >"$RUN/mntns"
	settings >"$RUN/settings"
	say "cluster up in $(elapsed)s: $NODES nodes x $CPUS CPUs, $GPUS GPUs, accounting=$ACCT, $LAB"
	sq sinfo -N -o '%N %t %C %m %G'
	echo "export SLURM_CONF=$CONF"
}

cmd_stop() {
	[ "$(id -u)" = 0 ] || die "must run as root"
	[ -d "$LAB" ] || { say "nothing to stop ($LAB does not exist)"; return 0; }
	exec 9>"$LAB/.lock"
	flock -w 300 9 || die "another cluster.sh holds $LAB/.lock"
	do_stop
	say "stopped in $(elapsed)s"
}

cmd_status() {
	local name comm rc=0
	if [ -f "$RUN/settings" ]; then # describe the cluster as it was started, not as the knobs say
		say "settings: $(cat "$RUN/settings")"
		NODES=$(sed -n 's/.*nodes=\([0-9]*\).*/\1/p' "$RUN/settings")
		ACCT=$(sed -n 's/.*acct=\([0-9]*\).*/\1/p' "$RUN/settings")
		OWN_DBD=$(sed -n 's/.*own_dbd=\([0-9]*\).*/\1/p' "$RUN/settings") # another lab's is not ours to report
	fi
	while read -r name comm; do
		if alive "$name" "$comm"; then
			printf '%-14s running (pid %s)\n' "$name" "$(cat "$RUN/$name.pid")"
		else
			printf '%-14s NOT running\n' "$name"
			rc=3
		fi
	done < <(daemons)
	if alive slurmctld slurmctld; then
		sq sinfo -N -o '%N %t %C %m %G %E' || rc=3
	fi
	return $rc
}

cmd_env() {
	echo "export SLURM_CONF=$CONF"
}

# ---- faults --------------------------------------------------------------------------------
node_pid() { # the live slurmd of NODE, or fail
	alive "slurmd-$1" slurmd || die "$1: no slurmd of this lab is running"
	cat "$RUN/slurmd-$1.pid"
}

cmd_kill_node() {
	local node=${1:?usage: kill-node NODE} ns p victims=()
	# Everything that node runs shares its slurmd's UTS namespace (its hostname): slurmd,
	# the slurmstepd of every job step, and the job's tasks. A machine that dies (power,
	# kernel panic) stops answering; it does not close its connections. So freeze them all
	# (SIGSTOP) rather than kill them: a killed process's sockets would be reset at once,
	# and srun on the other node would end the job FAILED before slurmctld, after
	# SlurmdTimeout without an answer, declares the node DOWN and the job NODE_FAIL.
	ns=$(readlink "/proc/$(node_pid "$node")/ns/uts")
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/ns/uts" 2>/dev/null)" = "$ns" ] && victims+=("${p#/proc/}")
	done
	say "freezing $node: ${#victims[@]} processes"
	printf '%s\n' "${victims[@]}" >"$RUN/frozen-$node"
	kill -STOP "${victims[@]}" 2>/dev/null || true
}

cmd_revive_node() {
	local node=${1:?usage: revive-node NODE}
	if [ -f "$RUN/frozen-$node" ]; then  # the dead machine reboots: its processes are gone
		xargs kill -KILL <"$RUN/frozen-$node" 2>/dev/null || true
		rm -f "$RUN/frozen-$node" "$RUN/slurmd-$node.pid"
	fi
	alive "slurmd-$node" slurmd && { say "$node is running"; return 0; }
	spawn_slurmd "$node"
	say "started slurmd of $node"
}

cmd_stop_ctld() {
	stop_daemons slurmctld slurmctld
}

cmd_start_ctld() {
	local i
	alive slurmctld slurmctld || spawn_ctld
	for i in $(seq $((TIMEOUT * 5))); do
		sq scontrol ping 2>/dev/null | grep -q 'is UP' && { say "slurmctld is up"; return 0; }
		alive slurmctld slurmctld || { tail "$LAB/log/slurmctld.log" >&2; die "slurmctld died"; }
		sleep 0.2
	done
	die "slurmctld does not answer after ${TIMEOUT}s"
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
env) cmd_env ;;
kill-node) cmd_kill_node "${2:-}" ;;
revive-node) cmd_revive_node "${2:-}" ;;
stop-ctld) cmd_stop_ctld ;;
start-ctld) cmd_start_ctld ;;
*)
	sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
