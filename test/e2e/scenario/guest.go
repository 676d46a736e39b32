package scenario

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Helpers is the shell prelude of every scenario: the cgroup helpers, and
// the test's own processes protected from the OOM killer, as a DaemonSet's
// system-node-critical pods are.
const Helpers = `
CG=/sys/fs/cgroup
# mkcg PATH: create PATH under the cgroup2 mount with the memory controller
# enabled on every level above it, as kubelet does.
mkcg() { p=$CG; for part in $(echo "$1" | tr / ' '); do echo +memory > $p/cgroup.subtree_control 2>/dev/null; p=$p/$part; mkdir -p $p; done; }
# waitfile FILE: wait up to 60 s for FILE to exist.
waitfile() { i=0; while [ ! -e "$1" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; }
# pause CGROUP: a pod's sandbox, as a node has one beside the pod's
# containers: a small process named pause with kubelet's oom_score_adj
# for it (-998), in the cgroup named by the sandbox ID.
PAUSES=0
pause() { mkcg "$1"; [ -x /tmp/pause ] || cp /bin/hog /tmp/pause; PAUSES=$((PAUSES+1)); /tmp/pause -mb 1 -step 1 -oom-score-adj -998 -cgroup $CG$1 -ready /tmp/pause.$PAUSES >/dev/null 2>&1 & waitfile /tmp/pause.$PAUSES; }
echo -1000 > /proc/self/oom_score_adj
`

// Server is where the aggregator listens inside the guest.
const Server = "127.0.0.1:7443"

// GuestScript returns the whole guest script of a scenario: start the
// aggregator and the agent, run the scenario, wait for its events, and
// export what oomctl shows (events.json: kills, losses and exits;
// warnings.json; events.txt, incidents.txt) and the
// logs.
func GuestScript(sc Scenario) string {
	return prelude(sc.Pods, sc.AgentFlags) + fmt.Sprintf("(\n%s\n)\n", sc.Script) + Epilogue(sc.Events) + sc.ReadBack
}

// Prelude starts the aggregator and the agent (its PID in /tmp/agent.pid),
// with no runtime and no Kubernetes API: events carry IDs only.
func Prelude() string { return PreludeFor(nil) }

// PreludeFor starts the aggregator, fakenode serving pods (when there are
// any) and the agent, which then resolves names, requests and limits
// through the CRI and the pod list fakenode serves.
func PreludeFor(pods []Pod) string { return prelude(pods, "") }

// prelude is PreludeFor with more flags for the agent.
func prelude(pods []Pod, agentFlags string) string {
	var b strings.Builder
	b.WriteString(Helpers)
	node := "--no-cri --no-kube-api"
	if len(pods) > 0 {
		js, _ := json.Marshal(pods) // plain data: cannot fail
		fmt.Fprintf(&b, "cat > /tmp/pods.json <<'PODS'\n%s\nPODS\n", js)
		fmt.Fprintf(&b, "fakenode -pods /tmp/pods.json -cri %s -api %s >/tmp/fakenode.log 2>&1 &\n", CRISocket, KubeAPI)
		fmt.Fprintf(&b, "i=0; until [ -S %s ] || [ $i -gt 100 ]; do sleep 0.1; i=$((i+1)); done\n", CRISocket)
		node = fmt.Sprintf("--cri-endpoint unix://%s --kube-api-server http://%s --kube-token-file= --kube-ca-file=", CRISocket, KubeAPI)
	}
	fmt.Fprintf(&b, `
mkdir -p /tmp/state /tmp/db
export OOMWATCH_SERVER=%[1]s OOMWATCH_INSECURE=true
aggregator --listen %[1]s --db /tmp/db/oomwatch.db --insecure --metrics-addr 127.0.0.1:9102 >/tmp/aggregator.log 2>&1 &
i=0; until oomctl events >/dev/null 2>&1 || [ $i -gt 300 ]; do sleep 0.1; i=$((i+1)); done
agent --node-name e2e-node --server %[1]s --insecure --state-dir /tmp/state %[2]s --metrics-addr 127.0.0.1:9101 %[3]s>/tmp/agent.log 2>&1 &
echo $! > /tmp/agent.pid
sleep 1
`, Server, node, agentFlags)
	return b.String()
}

// Binaries are the guest's programs: name in /bin, and Go package.
func Binaries() map[string]string {
	return map[string]string{
		"agent":      "github.com/oomwatch/oomwatch/agent",
		"aggregator": "github.com/oomwatch/oomwatch/aggregator",
		"oomctl":     "github.com/oomwatch/oomwatch/oomctl",
		"hog":        "github.com/oomwatch/oomwatch/test/e2e/hog",
		"fakenode":   "github.com/oomwatch/oomwatch/test/e2e/fakenode",
	}
}

// Epilogue waits until the aggregator holds events OOM events, then
// exports what oomctl shows and the logs.
func Epilogue(events int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `
# Wait (up to 90 s) until the aggregator holds the scenario's kills
# (oomctl prints one compact event per line; an OOM kill's payload is "oom").
i=0
until [ "$(oomctl events -o json -type oom -limit 0 | grep -c '"oom":{')" -ge %d ] || [ $i -gt 900 ]; do sleep 0.1; i=$((i+1)); done
# Let the agent catch up (a storm takes a while): wait until the count
# stays the same for 8 s (at most 180 s), then read back.
last=-1; same=0; i=0
while [ $same -lt 8 ] && [ $i -lt 180 ]; do
	n=$(oomctl events -o json -type oom,loss,exit -limit 0 | grep -c '"id"')
	if [ "$n" = "$last" ]; then same=$((same+1)); else same=0; last=$n; fi
	sleep 1; i=$((i+1))
done
oomctl events -o json -type oom,loss,exit -limit 0 > /tmp/events.json
oomctl warnings --all -o json -limit 0 > /tmp/warnings.json 2>/tmp/warnings.err || true
wget -q -O /tmp/agent.metrics http://127.0.0.1:9101/metrics || true
wget -q -O /tmp/aggregator.metrics http://127.0.0.1:9102/metrics || true
oomctl events -limit 0 > /tmp/events.txt 2>&1
oomctl incidents > /tmp/incidents.txt 2>&1
hog -dump-kmsg /tmp/kmsg
export_file events.json /tmp/events.json
export_file warnings.json /tmp/warnings.json
export_file events.txt /tmp/events.txt
export_file incidents.txt /tmp/incidents.txt
export_file kmsg /tmp/kmsg
export_file agent.log /tmp/agent.log
[ -f /tmp/agent.metrics ] && export_file agent.metrics /tmp/agent.metrics
[ -f /tmp/aggregator.metrics ] && export_file aggregator.metrics /tmp/aggregator.metrics
export_file aggregator.log /tmp/aggregator.log
[ -f /tmp/memory.events ] && export_file memory.events /tmp/memory.events
[ -f /tmp/fakenode.log ] && export_file fakenode.log /tmp/fakenode.log
true
`, events)
	return b.String()
}
