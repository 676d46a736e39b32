#!/usr/bin/env bash
# make run: the aggregator and the agent on this machine's own /dev/kmsg
# (as root), plaintext on loopback, with state under a temporary directory.
# Then, in another shell: OOMWATCH_SERVER=127.0.0.1:7443 OOMWATCH_INSECURE=true bin/oomctl events
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "run as root: the agent reads /dev/kmsg and /proc/<pid>/cgroup of every process" >&2
	exit 1
fi
dir=$(mktemp -d /tmp/oomwatch-run.XXXXXX)
addr=${OOMWATCH_LISTEN:-127.0.0.1:7443}
bin/aggregator --listen "$addr" --db "$dir/oomwatch.db" --insecure 2>"$dir/aggregator.log" &
agg=$!
trap 'kill $agg $agent 2>/dev/null; wait; echo "state and logs kept in $dir"' EXIT INT TERM
sleep 1
bin/agent --node-name "$(hostname)" --server "$addr" --insecure --state-dir "$dir/state" &
agent=$!
echo "aggregator on $addr (log: $dir/aggregator.log); agent reading /dev/kmsg. Ctrl-C stops both."
echo "try: OOMWATCH_SERVER=$addr OOMWATCH_INSECURE=true bin/oomctl events"
wait $agent
