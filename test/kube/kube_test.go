// Package kube_test proves oomwatch in a real Kubernetes cluster: a
// single node (test/kube/cluster) with kubelet, containerd and the control
// plane at the pinned version, oomwatch installed from deploy/ as its
// README says, real pods OOM-killed, real Events, real RBAC.
//
// It needs root; OOMWATCH_SKIP_SYSTEM_TESTS=1 skips it. The first run
// builds the Kubernetes binaries (tools/kube/build.sh, about 15 min
// on 2 cores; cached in /var/cache/oomwatch-kube afterwards). It replaces a
// cluster `make kube-up` left running, and tears its own down.
package kube_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/oomwatch/oomwatch/pkg/wire"
	"github.com/oomwatch/oomwatch/test/kube/cluster"
)

const mib = 1 << 20

func TestCluster(t *testing.T) {
	if os.Getenv("OOMWATCH_SKIP_SYSTEM_TESTS") == "1" {
		t.Skip("OOMWATCH_SKIP_SYSTEM_TESTS=1: skipping the real Kubernetes cluster")
	}
	ctx := context.Background()
	unlock, err := cluster.Lock(ctx, 30*time.Minute) // another run's cluster
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unlock)                                                     // after the teardown below: cleanups run last first
	if err := cluster.Down(ctx, cluster.DefaultDir, t.Logf); err != nil { // a cluster `make kube-up` left
		t.Fatal(err)
	}
	start := time.Now()
	// Installed before the host is recorded: on a fresh machine iptables-save
	// appears with its package, which is not the cluster changing the host.
	if err := cluster.InstallPackages(ctx); err != nil {
		t.Fatal(err)
	}
	before := hostState(t)
	// 1.5 GiB for pods: the kubepods cgroup's limit, which the
	// node-pressure scenario fills without touching the host's memory.
	c, err := cluster.Up(ctx, cluster.Options{AllocatableMiB: 1536, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		down := time.Now()
		if err := cluster.Down(context.Background(), c.Dir, t.Logf); err != nil {
			t.Errorf("teardown: %v", err)
		}
		t.Logf("TIMING teardown %v", time.Since(down).Round(time.Millisecond))
		if d := diffLines(before, hostState(t)); d != "" {
			t.Errorf("the host changed:\n%s", d)
		}
	})
	t.Logf("TIMING cluster up %v (binaries %v, control plane %v, node %v incl. images %v)",
		c.Timings.Total.Round(time.Millisecond), c.Timings.Binaries.Round(time.Millisecond),
		c.Timings.ControlPlane.Round(time.Millisecond), c.Timings.Node.Round(time.Millisecond), c.Timings.Images.Round(time.Millisecond))
	installAt := time.Now()
	if err := c.InstallOomwatch(ctx, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("TIMING oomwatch installed and Ready %v (from nothing: %v)", time.Since(installAt).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	cs, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{c: c, cs: cs}
	e.startPortForward(t)
	// On a failure, what oomwatch and the kernel said: CI keeps only the
	// test's output.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, args := range [][]string{
			{"-n", "oomwatch", "logs", "daemonset/oomwatch-agent", "--tail=60"},
			{"-n", "oomwatch", "logs", "deployment/oomwatch-aggregator", "--tail=40"},
			{"get", "pods", "-A", "-o", "wide"},
		} {
			out, err := c.Kubectl(context.Background(), args...)
			t.Logf("kubectl %s (%v):\n%s", strings.Join(args, " "), err, lastLines(out, 60))
		}
		if out, err := exec.Command("dmesg").Output(); err == nil {
			var kills []string
			for _, l := range strings.Split(string(out), "\n") {
				if strings.Contains(l, "Killed process") || strings.Contains(l, "invoked oom-killer") {
					kills = append(kills, l)
				}
			}
			t.Logf("the kernel's last OOM lines:\n%s", lastLines(strings.Join(kills, "\n"), 20))
		}
	})

	t.Run("rbac", e.testRBAC)
	t.Run("container-limit", e.testContainerLimit)
	t.Run("pod-limit-sidecar", e.testPodLimitSidecar)
	t.Run("sigterm-ignored-grace-1s", e.testSigtermIgnored)
	t.Run("agent-rollout-during-kills", e.testAgentRollout)
	// Last: it fills the kubepods cgroup.
	t.Run("node-allocatable-collateral", e.testNodePressure)

	// While the cluster runs, kubelet's sysctls, kube-proxy's rules and
	// the pods' routes must be in the node's namespaces, not the host's.
	if d := diffLines(before, hostState(t)); d != "" {
		for _, l := range strings.Split(d, "\n") {
			if !strings.Contains(l, cluster.HostVeth) && !strings.Contains(l, "path /") {
				t.Errorf("the host changed while the cluster ran: %s", l)
			}
		}
	}
}

// testRBAC checks the service accounts can do what deploy/ grants and
// nothing else, as the API server's authorizer answers.
func (e *env) testRBAC(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		sa   string
		args []string
		want bool
	}{
		{"oomwatch-agent", []string{"list", "pods", "--all-namespaces"}, true},
		{"oomwatch-agent", []string{"get", "pods", "-n", "default"}, false},
		{"oomwatch-agent", []string{"watch", "pods", "--all-namespaces"}, false},
		{"oomwatch-agent", []string{"get", "secrets", "-n", "oomwatch"}, false},
		{"oomwatch-agent", []string{"list", "secrets", "-n", "oomwatch"}, false},
		{"oomwatch-agent", []string{"create", "events", "-n", "default"}, false},
		{"oomwatch-agent", []string{"list", "nodes"}, false},
		{"oomwatch-agent", []string{"delete", "pods", "-n", "default"}, false},
		{"oomwatch-agent", []string{"create", "pods", "-n", "oomwatch"}, false},
		{"oomwatch-agent", []string{"*", "*"}, false},
		{"oomwatch-aggregator", []string{"create", "events", "-n", "default"}, true},
		{"oomwatch-aggregator", []string{"patch", "events", "-n", "default"}, true},
		{"oomwatch-aggregator", []string{"get", "pods", "-n", "default"}, true},
		{"oomwatch-aggregator", []string{"get", "nodes"}, true},
		{"oomwatch-aggregator", []string{"list", "pods", "--all-namespaces"}, false},
		{"oomwatch-aggregator", []string{"get", "secrets", "-n", "oomwatch"}, false},
		{"oomwatch-aggregator", []string{"delete", "events", "-n", "default"}, false},
		{"oomwatch-aggregator", []string{"update", "pods", "-n", "default"}, false},
	}
	for _, tc := range cases {
		args := append([]string{"auth", "can-i", "--as=system:serviceaccount:oomwatch:" + tc.sa}, tc.args...)
		out, err := e.c.Kubectl(ctx, args...)
		got := strings.TrimSpace(out) == "yes"
		if err != nil && got {
			t.Errorf("%v: %v", args, err)
		}
		if got != tc.want {
			t.Errorf("kubectl %s: %q, want yes=%v", strings.Join(args, " "), strings.TrimSpace(out), tc.want)
		}
	}
	// The whole list: beyond what every authenticated user may (the
	// self-reviews, reading ClusterTrustBundles, the discovery URLs), the
	// agent's only grant is list pods.
	out, err := e.c.Kubectl(ctx, "auth", "can-i", "--list", "--as=system:serviceaccount:oomwatch:oomwatch-agent")
	if err != nil {
		t.Fatal(err)
	}
	everyone := map[string]bool{
		"selfsubjectreviews.authentication.k8s.io":      true,
		"selfsubjectaccessreviews.authorization.k8s.io": true,
		"selfsubjectrulesreviews.authorization.k8s.io":  true,
		"clustertrustbundles.certificates.k8s.io":       true,
	}
	var grants []string
	for _, line := range strings.Split(out, "\n")[1:] {
		if line == "" || line[0] == ' ' { // a non-resource URL row
			continue
		}
		f := strings.Fields(line)
		if !everyone[f[0]] {
			grants = append(grants, f[0]+" "+f[len(f)-1])
		}
	}
	if len(grants) != 1 || grants[0] != "pods [list]" {
		t.Errorf("the agent's grants beyond every user's: %q, want only pods [list]\n%s", grants, out)
	}
}

// hogContainer is a container of the test image (hog as entrypoint).
func hogContainer(name string, args []string, request, limit int64) corev1.Container {
	ctr := corev1.Container{
		Name:            name,
		Image:           cluster.TestImage,
		ImagePullPolicy: corev1.PullNever,
		Args:            args,
	}
	if request > 0 || limit > 0 {
		ctr.Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
		if request > 0 {
			ctr.Resources.Requests[corev1.ResourceMemory] = *resource.NewQuantity(request, resource.BinarySI)
		}
		if limit > 0 {
			ctr.Resources.Limits[corev1.ResourceMemory] = *resource.NewQuantity(limit, resource.BinarySI)
		}
	}
	return ctr
}

// testContainerLimit: a Deployment whose container exceeds its 32Mi limit.
// The agent must name the pod and container as the real CRI labels them,
// with the request and limit from the real API; the aggregator writes the
// OOMKilledLimit Event that `kubectl describe pod` shows; `oomctl explain`
// gives an OOM verdict for the exit kubelet reports as 137.
func (e *env) testContainerLimit(t *testing.T) {
	ctx := context.Background()
	ns := "shop"
	e.namespace(t, ns)
	labels := map[string]string{"app": "cart"}
	one := int32(1)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "cart", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: new(int64),
					Containers: []corev1.Container{hogContainer("api",
						[]string{"-mb", "0", "-step", "2", "-interval", "50ms"}, 16*mib, 32*mib)},
				},
			},
		},
	}
	if _, err := e.cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pod *corev1.Pod
	var term *corev1.ContainerStateTerminated
	waitUntil(t, "the cart pod's container OOMKilled (137)", 2*time.Minute, func() (bool, string) {
		pods, err := e.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=cart"})
		if err != nil || len(pods.Items) == 0 {
			return false, "no pod yet"
		}
		pod = &pods.Items[0]
		term = lastTerminated(pod, "api")
		if term == nil {
			return false, "not terminated yet: " + string(pod.Status.Phase)
		}
		return term.ExitCode == 137, term.Reason
	})
	t.Logf("kubelet: pod %s/%s container api %s exit %d reason %s", ns, pod.Name, term.ContainerID, term.ExitCode, term.Reason)
	if term.Reason != "OOMKilled" {
		t.Errorf("kubelet's reason %q, want OOMKilled", term.Reason)
	}
	ctrID := strings.TrimPrefix(term.ContainerID, "containerd://")

	// The agent's event, as the aggregator holds it.
	var ev oomEvent
	waitUntil(t, "the aggregator has the kill", time.Minute, func() (bool, string) {
		evs, err := e.oomEvents(string(pod.UID))
		if err != nil {
			return false, err.Error()
		}
		for _, x := range evs {
			if len(x.Victims) > 0 && x.Victims[0].ContainerID == ctrID {
				ev = x // a container instance is killed once
				return true, ""
			}
		}
		return false, "events: " + summarize(evs)
	})
	v := ev.Victims[0]
	t.Logf("event %s: kind %s scope %s oom_memcg %s victim %s/%s/%s cgroup %s; %s", ev.ID, ev.Kind, ev.LimitScope, ev.OOMMemcg,
		v.Namespace, v.PodName, v.ContainerName, v.Cgroup, ev.Reason)
	if v.Namespace != ns || v.PodName != pod.Name || v.ContainerName != "api" || v.PodUID != string(pod.UID) {
		t.Errorf("victim named %s/%s container %s (pod %s), want %s/%s container api (pod %s)",
			v.Namespace, v.PodName, v.ContainerName, v.PodUID, ns, pod.Name, pod.UID)
	}
	if v.Image != cluster.TestImage {
		t.Errorf("victim image %q, want %q", v.Image, cluster.TestImage)
	}
	if v.QoS != "burstable" {
		t.Errorf("QoS %q, want burstable", v.QoS)
	}
	if ev.Kind != "limit" || ev.Collateral {
		t.Errorf("kind %s collateral %v, want a limit kill, not collateral", ev.Kind, ev.Collateral)
	}
	// On cgroup v1 the kernel names the pod's cgroup (it also holds the
	// pause container, and its limit is this one container's): the agent
	// reports the container's own limit, as kubelet's OOMKilled does.
	if ev.LimitScope != "container" || !strings.Contains(ev.OOMMemcg, string(pod.UID)) {
		t.Errorf("scope %s oom_memcg %s, want the container's own limit in the pod's cgroup", ev.LimitScope, ev.OOMMemcg)
	}
	if r := v.ContainerResources; r == nil || r.MemoryRequestBytes != 16*mib || r.MemoryLimitBytes != 32*mib {
		t.Errorf("container resources %+v, want request 16Mi and limit 32Mi from the API", r)
	}
	// The runtime's own record of the pod's container, as kubelet labels
	// it: the labels test/e2e/fakenode imitates. (The killed instance
	// itself is gone from CRI by now: kubelet removes it when it restarts
	// the container, so the agent must have resolved the names at the
	// kill, as the event shows it did.)
	rt, conn, err := e.c.Runtime()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		LabelSelector: map[string]string{"io.kubernetes.pod.uid": string(pod.UID)}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Containers) == 0 {
		t.Fatalf("CRI lists no container in pod %s", pod.UID)
	}
	ctr := resp.Containers[0]
	want := map[string]string{"io.kubernetes.container.name": "api", "io.kubernetes.pod.name": pod.Name,
		"io.kubernetes.pod.namespace": ns, "io.kubernetes.pod.uid": string(pod.UID)}
	for k, val := range want {
		if got := ctr.Labels[k]; got != val {
			t.Errorf("CRI label %s = %q, want %q", k, got, val)
		}
	}
	t.Logf("CRI labels %v", ctr.Labels)

	// The Event on the pod.
	waitUntil(t, "kubectl describe pod shows OOMKilledLimit", time.Minute, func() (bool, string) {
		out, err := e.c.Kubectl(ctx, "-n", ns, "describe", "pod", pod.Name)
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(out, "OOMKilledLimit"), lastLines(out, 12)
	})

	// oomctl explain: the exit kubelet saw as 137 is an OOM kill.
	waitUntil(t, "oomctl explain gives an OOM verdict for the 137 exit", time.Minute, func() (bool, string) {
		entries, err := e.explain(ns, pod.Name)
		if err != nil {
			return false, err.Error()
		}
		for _, en := range entries {
			if x := en.GetExit(); x != nil && x.GetWorkload().GetContainerId() == ctrID {
				if x.GetExitCode() != 137 {
					return false, "exit code not 137"
				}
				ok := wire.Why(x) == "oom-limit"
				if ok {
					t.Logf("explain: %s: %s", wire.Why(x), x.GetExplanation())
				}
				return ok, "verdict " + wire.Why(x) + ": " + x.GetExplanation()
			}
		}
		return false, "no exit entry for the container yet"
	})
}

func summarize(evs []oomEvent) string {
	var b strings.Builder
	for _, ev := range evs {
		if len(ev.Victims) > 0 {
			v := ev.Victims[0]
			b.WriteString(v.PodName + "/" + v.ContainerName + "(" + v.ContainerID + ") ")
		}
	}
	return b.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
