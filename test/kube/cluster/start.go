package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oomwatch/oomwatch/test/apt"
)

// Debian packages the cluster needs besides the Kubernetes binaries.
var packages = map[string]string{
	"containerd":                  "/usr/bin/containerd",
	"runc":                        "/usr/sbin/runc",
	"containernetworking-plugins": "/usr/lib/cni/bridge",
	"iptables":                    "/usr/sbin/iptables",
	"busybox-static":              "/bin/busybox",
}

// InstallPackages installs the missing Debian packages with apt-get (Up
// does; a caller that records the host before Up calls it first, lest the
// install look like a change of the host).
func InstallPackages(ctx context.Context) error {
	var missing []string
	for pkg, file := range packages {
		if _, err := os.Stat(file); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return apt.Install(ctx, missing...)
}

// created records a host path Up created, for Down to remove.
func (c *Cluster) created(path string) error {
	f, err := os.OpenFile(filepath.Join(c.Dir, "created"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintln(f, path)
	return err
}

// mkdirHost creates a host directory when missing and records it.
func (c *Cluster) mkdirHost(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return err
	}
	return c.created(path)
}

// setupNetwork makes the node's network namespace and the veth pair, and
// routes the pod and service ranges from the host into it.
func (c *Cluster) setupNetwork(ctx context.Context) error {
	if err := c.mkdirHost("/run/netns"); err != nil {
		return err
	}
	ns := "/run/netns/" + NetNS
	steps := [][]string{
		{"ip", "netns", "add", NetNS},
		{"ip", "link", "add", HostVeth, "type", "veth", "peer", "name", "eth0", "netns", NetNS},
		{"ip", "addr", "add", HostIP + LinkCIDR, "dev", HostVeth},
		{"ip", "link", "set", HostVeth, "up"},
		{"ip", "-n", NetNS, "link", "set", "lo", "up"},
		{"ip", "-n", NetNS, "addr", "add", NodeIP + LinkCIDR, "dev", "eth0"},
		{"ip", "-n", NetNS, "link", "set", "eth0", "up"},
		{"ip", "route", "add", PodCIDR, "via", NodeIP, "dev", HostVeth},
		{"ip", "route", "add", ServiceCIDR, "via", NodeIP, "dev", HostVeth},
		// Both settings are per network namespace: the host's stay.
		{"nsenter", "--net=" + ns, "sh", "-c",
			"echo 1 >/proc/sys/net/ipv4/ip_forward && echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables"},
	}
	for _, s := range steps {
		if _, err := run(ctx, s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// startControlPlane starts etcd and the control plane, the DNS server and
// kube-proxy, and waits for the API server.
func (c *Cluster) startControlPlane(ctx context.Context) error {
	pki := func(f string) string { return filepath.Join(c.Dir, "pki", f) }
	bin := func(b string) string { return filepath.Join(c.BinDir, b) }
	kc := func(n string) string { return filepath.Join(c.Dir, n+".kubeconfig") }
	if err := c.daemon("etcd", bin("etcd"), "--name=oomwatch-kube", "--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379",
		"--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
		"--initial-cluster=oomwatch-kube=http://127.0.0.1:2380", "--listen-metrics-urls=http://127.0.0.1:2381",
		"--unsafe-no-fsync", "--log-level=warn"); err != nil {
		return err
	}
	if err := c.daemon("kube-apiserver", bin("kube-apiserver"),
		"--etcd-servers=http://127.0.0.1:2379",
		"--bind-address=0.0.0.0", "--secure-port=6443", "--advertise-address="+NodeIP,
		"--service-cluster-ip-range="+ServiceCIDR,
		"--client-ca-file="+pki("ca.crt"),
		"--tls-cert-file="+pki("apiserver.crt"), "--tls-private-key-file="+pki("apiserver.key"),
		"--kubelet-client-certificate="+pki("apiserver-kubelet-client.crt"),
		"--kubelet-client-key="+pki("apiserver-kubelet-client.key"),
		"--kubelet-preferred-address-types=InternalIP",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+pki("sa.pub"), "--service-account-signing-key-file="+pki("sa.key"),
		"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true", "--profiling=false"); err != nil {
		return err
	}
	cs, err := c.Client()
	if err != nil {
		return err
	}
	if err := waitFor(ctx, "API server ready", 90*time.Second, func() (bool, error) {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		b, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(cctx)
		return err == nil && bytes.Equal(b, []byte("ok")), err
	}); err != nil {
		return fmt.Errorf("%w\n%s", err, c.Log("kube-apiserver", 3000))
	}
	c.opts.logf("API server ready")
	daemons := [][]string{
		{"kube-controller-manager", bin("kube-controller-manager"), "--kubeconfig=" + kc("controller-manager"),
			"--authentication-kubeconfig=" + kc("controller-manager"), "--authorization-kubeconfig=" + kc("controller-manager"),
			"--service-account-private-key-file=" + pki("sa.key"), "--root-ca-file=" + pki("ca.crt"),
			"--use-service-account-credentials", "--bind-address=127.0.0.1", "--leader-elect=false",
			"--service-cluster-ip-range=" + ServiceCIDR,
			"--flex-volume-plugin-dir=" + filepath.Join(c.Dir, "node", "flex-volume-plugins")},
		{"kube-scheduler", bin("kube-scheduler"), "--kubeconfig=" + kc("scheduler"),
			"--authentication-kubeconfig=" + kc("scheduler"), "--authorization-kubeconfig=" + kc("scheduler"),
			"--bind-address=127.0.0.1", "--leader-elect=false"},
		{"kube-proxy", bin("kube-proxy"), "--config=" + filepath.Join(c.Dir, "node", "proxy.yaml")},
		{"dns", filepath.Join(c.OwnBin, "oomwatch-kube"), "dns", "-listen=" + NodeIP + ":53", "-kubeconfig=" + kc("admin")},
	}
	for _, d := range daemons {
		if err := c.daemon(d[0], d[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// startNode creates the cgroup root, starts the node (containerd and
// kubelet in their mount namespace) and waits for containerd's socket.
func (c *Cluster) startNode(ctx context.Context) error {
	for target := range nodeDirs {
		if err := c.mkdirHost(target); err != nil {
			return err
		}
	}
	if err := makeCgroupRoot(); err != nil {
		return err
	}
	script := filepath.Join(c.Dir, "node", "node.sh")
	if err := c.daemon("node", "unshare", "--mount", "--propagation", "slave", "--", "/bin/sh", script); err != nil {
		return err
	}
	sock := c.ContainerdSocket()
	if err := waitFor(ctx, "containerd's socket "+sock, time.Minute, func() (bool, error) {
		_, err := os.Stat(sock)
		return err == nil, err
	}); err != nil {
		return err
	}
	// The node's mount namespace, for Down to find containerd's shims by
	// even when the node's shell is gone.
	ns := mountNS(readPID(filepath.Join(c.Dir, "pids", "node.pid"), c.Dir))
	return os.WriteFile(filepath.Join(c.Dir, "node-mntns"), []byte(ns+"\n"), 0o644)
}

// cgroupHierarchies lists the mounted cgroup v1 hierarchies (or the
// unified one) under /sys/fs/cgroup.
func cgroupHierarchies() []string {
	var out []string
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || !strings.HasPrefix(f[4], "/sys/fs/cgroup") {
			continue
		}
		for i := 6; i < len(f)-1; i++ {
			if f[i] == "-" && (f[i+1] == "cgroup" || f[i+1] == "cgroup2") {
				out = append(out, f[4])
			}
		}
	}
	return out
}

// makeCgroupRoot creates CgroupRoot in every hierarchy (kubelet refuses a
// cgroupRoot that does not exist); the cpuset one gets its parent's CPUs
// and memory nodes, as a new v1 cpuset starts empty.
func makeCgroupRoot() error {
	for _, h := range cgroupHierarchies() {
		dir := filepath.Join(h, CgroupRoot)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if b, err := os.ReadFile(filepath.Join(h, f)); err == nil {
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// waitNodeReady waits for the node's Ready condition.
func (c *Cluster) waitNodeReady(ctx context.Context, timeout time.Duration) error {
	cs, err := c.Client()
	if err != nil {
		return err
	}
	err = waitFor(ctx, "node "+NodeName+" Ready", timeout, func() (bool, error) {
		n, err := cs.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status == corev1.ConditionTrue, fmt.Errorf("%s: %s", cond.Reason, cond.Message)
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("%w\nkubelet:\n%s", err, c.Log("kubelet", 4000))
	}
	return nil
}

// createStorage offers the node's one PersistentVolume (a local volume
// under Dir/node/pv-0, no StorageClass): what a real cluster's storage
// gives the aggregator's claim.
func (c *Cluster) createStorage(ctx context.Context) error {
	cs, err := c.Client()
	if err != nil {
		return err
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "oomwatch-kube-local-0"},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("2Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				Local: &corev1.LocalVolumeSource{Path: filepath.Join(c.Dir, "node", "pv-0")},
			},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
					Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{NodeName},
				}}}},
			}},
		},
	}
	_, err = cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}
