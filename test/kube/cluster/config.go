package cluster

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/oomwatch/oomwatch/test/containerd"
)

// sysctls are the kernel settings kubelet checks and rewrites when they
// differ from what it wants (pkg/kubelet/cm's kernel tunables). Inside the
// node's mount namespace each /proc/sys file is covered by a regular file
// holding kubelet's value, so kubelet finds what it wants and the host's
// settings are never touched.
var sysctls = map[string]string{
	"vm/overcommit_memory":      "1",
	"vm/panic_on_oom":           "0",
	"kernel/panic":              "10",
	"kernel/panic_on_oops":      "1",
	"kernel/keys/root_maxkeys":  "1000000",
	"kernel/keys/root_maxbytes": "25000000",
}

// nodeDirs are host directories that, inside the node's mount namespace,
// are covered by the cluster's own (under Dir/node), so that containerd,
// the CNI plugins, kubelet and the agent's hostPath write nothing on the
// host. A directory missing on the host is created for the mount and
// removed again by Down.
var nodeDirs = map[string]string{
	"/run/containerd":     "run-containerd",
	"/var/lib/cni":        "var-lib-cni",
	"/var/lib/oomwatch":   "var-lib-oomwatch",
	"/var/log/containers": "var-log-containers",
	// kubelet's device-plugin socket directory is fixed under it,
	// whatever --root-dir says.
	"/var/lib/kubelet": "var-lib-kubelet",
}

// writeConfig writes the certificates, kubeconfigs and every component's
// configuration under c.Dir.
func (c *Cluster) writeConfig() error {
	pki := filepath.Join(c.Dir, "pki")
	if err := writePKI(pki); err != nil {
		return err
	}
	for _, name := range []string{"admin", "controller-manager", "scheduler", "proxy", "kubelet"} {
		if err := os.WriteFile(filepath.Join(c.Dir, name+".kubeconfig"), []byte(kubeconfig(pki, name, APIServer)), 0o600); err != nil {
			return err
		}
	}
	node := filepath.Join(c.Dir, "node")
	for _, d := range []string{"run-containerd", "var-lib-cni", "var-lib-oomwatch", "var-log-containers", "var-lib-kubelet", "flex-volume-plugins",
		"containerd-root", "opt", "cni-conf", "kubelet", "pod-logs", "volume-plugins", "sysctl", "pv-0"} {
		if err := os.MkdirAll(filepath.Join(node, d), 0o755); err != nil {
			return err
		}
	}
	for path, v := range sysctls {
		if err := os.WriteFile(filepath.Join(node, "sysctl", strings.ReplaceAll(path, "/", ".")), []byte(v+"\n"), 0o644); err != nil {
			return err
		}
	}
	reserved, err := c.systemReservedMiB()
	if err != nil {
		return err
	}
	files := map[string]string{
		"containerd.toml":           c.containerdConfig(),
		"cni-conf/10-pods.conflist": cniConfig(filepath.Join(node, "var-lib-cni", "networks")),
		"kubelet.yaml":              c.kubeletConfig(reserved),
		"proxy.yaml":                c.proxyConfig(),
		"node.sh":                   c.nodeScript(),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(node, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// systemReservedMiB is the host's memory minus what pods may use.
func (c *Cluster) systemReservedMiB() (int, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.Atoi(fields[1])
			if err != nil {
				return 0, err
			}
			r := kb/1024 - c.opts.AllocatableMiB
			if r < 0 {
				return 0, fmt.Errorf("the host has %d MiB, less than the %d MiB asked for pods", kb/1024, c.opts.AllocatableMiB)
			}
			return r, nil
		}
	}
	return 0, fmt.Errorf("no MemTotal in /proc/meminfo")
}

// containerdConfig is containerd's config.toml: its root under Dir, its
// state and socket at the standard /run/containerd (inside the node's mount
// namespace, where that is Dir/node/run-containerd), the CRI plugin with
// restrict_oom_score_adj (root here lacks CAP_SYS_RESOURCE) and the bridge
// CNI.
func (c *Cluster) containerdConfig() string {
	node := filepath.Join(c.Dir, "node")
	q := strconv.Quote
	return strings.Join([]string{
		`version = 2`,
		`root = ` + q(filepath.Join(node, "containerd-root")),
		`state = "/run/containerd"`,
		`disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]`,
		`[grpc]`,
		`  address = "/run/containerd/containerd.sock"`,
		`[ttrpc]`,
		`  address = "/run/containerd/containerd.sock.ttrpc"`,
		`[metrics]`,
		`  address = ""`,
		`[plugins."io.containerd.internal.v1.opt"]`,
		`  path = ` + q(filepath.Join(node, "opt")),
		`[plugins."io.containerd.grpc.v1.cri"]`,
		`  sandbox_image = ` + q(containerd.SandboxImage),
		`  restrict_oom_score_adj = true`,
		`  disable_apparmor = true`,
		`  enable_selinux = false`,
		`  [plugins."io.containerd.grpc.v1.cri".containerd]`,
		`    snapshotter = "overlayfs"`,
		`    default_runtime_name = "runc"`,
		`    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]`,
		`      runtime_type = "io.containerd.runc.v2"`,
		`      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]`,
		`        SystemdCgroup = false`,
		`  [plugins."io.containerd.grpc.v1.cri".cni]`,
		`    bin_dir = "/usr/lib/cni"`,
		`    conf_dir = ` + q(filepath.Join(node, "cni-conf")),
		``,
	}, "\n")
}

// cniConfig is a bridge network without masquerading: pods reach each
// other, the node and, through the veth pair, the host; nothing leaves the
// host.
func cniConfig(ipamDir string) string {
	return fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "oomwatch-kube",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": %q,
        "ranges": [[{"subnet": %q, "gateway": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
`, ipamDir, PodCIDR, BridgeIP)
}

// kubeletConfig is the node's kubelet configuration. Its hard eviction
// threshold for memory is 1Mi, not kubelet's default 100Mi: the threshold
// also applies to node allocatable, and with 100Mi kubelet evicted the
// BestEffort pod of the node-allocatable scenario before the kernel's OOM
// killer acted in two runs of six (pods cannot exhaust the host: kubepods
// has its own limit).
func (c *Cluster) kubeletConfig(reservedMiB int) string {
	node := filepath.Join(c.Dir, "node")
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: %s
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
systemReserved:
  memory: %dMi
evictionHard:
  memory.available: 1Mi
  nodefs.available: 1%%
  imagefs.available: 1%%
  nodefs.inodesFree: 1%%
oomScoreAdj: 0
failSwapOn: false
protectKernelDefaults: false
address: %s
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %s
authorization:
  mode: Webhook
clusterDNS: [%s]
clusterDomain: cluster.local
resolvConf: ""
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
podLogsDir: %s
volumePluginDir: %s
serializeImagePulls: false
rotateCertificates: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
`, CgroupRoot, reservedMiB, NodeIP, filepath.Join(c.Dir, "pki", "ca.crt"), NodeIP,
		filepath.Join(node, "pod-logs"), filepath.Join(node, "volume-plugins"))
}

func (c *Cluster) proxyConfig() string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %s
mode: iptables
clusterCIDR: %s
hostnameOverride: %s
bindAddress: %s
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, filepath.Join(c.Dir, "proxy.kubeconfig"), PodCIDR, NodeName, NodeIP)
}

// nodeScript runs in the node's new mount namespace (and network
// namespace): it covers the host directories and sysctls, starts containerd,
// waits for its socket and starts kubelet.
func (c *Cluster) nodeScript() string {
	node := filepath.Join(c.Dir, "node")
	var b strings.Builder
	b.WriteString("#!/bin/sh\n# Written by test/kube/cluster: the node's mount namespace.\nset -eu\n")
	for _, target := range sortedKeys(nodeDirs) {
		fmt.Fprintf(&b, "mount --bind %q %q\n", filepath.Join(node, nodeDirs[target]), target)
	}
	b.WriteString("mount -t tmpfs -o mode=0755 oomwatch-kube-netns /run/netns\n")
	for _, path := range sortedKeys(sysctls) {
		fmt.Fprintf(&b, "mount --bind %q %q\n", filepath.Join(node, "sysctl", strings.ReplaceAll(path, "/", ".")), "/proc/sys/"+path)
	}
	logs, pids := filepath.Join(c.Dir, "logs"), filepath.Join(c.Dir, "pids")
	fmt.Fprintf(&b, "containerd --config %q >>%q 2>&1 &\n", filepath.Join(node, "containerd.toml"), filepath.Join(logs, "containerd.log"))
	fmt.Fprintf(&b, "echo $! >%q\n", filepath.Join(pids, "containerd.pid"))
	b.WriteString("i=0\nwhile [ ! -S /run/containerd/containerd.sock ]; do\n" +
		"\ti=$((i + 1)); [ $i -lt 600 ] || { echo 'containerd did not start' >&2; exit 1; }\n\tsleep 0.1\ndone\n")
	fmt.Fprintf(&b, "%q --config=%q --kubeconfig=%q --root-dir=%q --cert-dir=%q --hostname-override=%s --node-ip=%s >>%q 2>&1 &\n",
		filepath.Join(c.BinDir, "kubelet"), filepath.Join(node, "kubelet.yaml"), filepath.Join(c.Dir, "kubelet.kubeconfig"),
		filepath.Join(node, "kubelet"), filepath.Join(node, "kubelet", "pki"), NodeName, NodeIP, filepath.Join(logs, "kubelet.log"))
	fmt.Fprintf(&b, "echo $! >%q\nwait\n", filepath.Join(pids, "kubelet.pid"))
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
