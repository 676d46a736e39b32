package kube_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/wire"
	"github.com/oomwatch/oomwatch/test/kube/cluster"
)

// createPod creates a pod and waits until all its containers have started
// once.
func (e *env) createPod(t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	created, err := e.cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "pod "+pod.Namespace+"/"+pod.Name+" running", 2*time.Minute, func() (bool, string) {
		p, err := e.cs.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		created = p
		if len(p.Status.ContainerStatuses) < len(p.Spec.Containers) {
			return false, string(p.Status.Phase)
		}
		for _, st := range p.Status.ContainerStatuses {
			if st.State.Running == nil && st.State.Terminated == nil && st.LastTerminationState.Terminated == nil {
				return false, st.Name + " not started"
			}
		}
		return true, ""
	})
	return created
}

// waitOOMEvent waits until the aggregator holds an OOM kill of the pod
// whose first victim match accepts, and returns the first such kill (the
// lowest kernel sequence number: later ones may follow restarts).
func (e *env) waitOOMEvent(t *testing.T, pod *corev1.Pod, timeout time.Duration, match func(oomEvent) bool) oomEvent {
	t.Helper()
	var found oomEvent
	waitUntil(t, "the aggregator has the kill in "+pod.Namespace+"/"+pod.Name, timeout, func() (bool, string) {
		evs, err := e.oomEvents(string(pod.UID))
		if err != nil {
			return false, err.Error()
		}
		ok := false
		for _, ev := range evs {
			if len(ev.Victims) > 0 && match(ev) && (!ok || ev.Seq < found.Seq) {
				found, ok = ev, true
			}
		}
		return ok, "events: " + summarize(evs)
	})
	v := found.Victims[0]
	t.Logf("event %s: kind %s scope %s oom_memcg %s victim %s/%s/%s; %s", found.ID, found.Kind, found.LimitScope, found.OOMMemcg,
		v.Namespace, v.PodName, v.ContainerName, found.Reason)
	return found
}

// waitDescribe waits until `kubectl describe pod` shows reason.
func (e *env) waitDescribe(t *testing.T, ns, pod, reason string) {
	t.Helper()
	waitUntil(t, "kubectl describe pod "+ns+"/"+pod+" shows "+reason, time.Minute, func() (bool, string) {
		out, err := e.c.Kubectl(context.Background(), "-n", ns, "describe", "pod", pod)
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(out, reason), lastLines(out, 12)
	})
}

// burstableAdj is the oom_score_adj kubelet gives a regular container of a
// Burstable pod (pkg/kubelet/qos): 1000 - 1000*request/capacity of the
// node's memory, the request plus an equal share of what a pod-level
// request leaves unassigned, within [3, 999].
func (e *env) burstableAdj(t *testing.T, pod *corev1.Pod, container string) int {
	t.Helper()
	n, err := e.cs.CoreV1().Nodes().Get(context.Background(), cluster.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	capacity := n.Status.Capacity.Memory().Value()
	var request, sum int64
	for _, c := range pod.Spec.Containers {
		r := c.Resources.Requests.Memory().Value()
		sum += r
		if c.Name == container {
			request = r
		}
	}
	if pod.Spec.Resources != nil {
		if pr, ok := pod.Spec.Resources.Requests[corev1.ResourceMemory]; ok && pr.Value() > sum {
			request += (pr.Value() - sum) / int64(len(pod.Spec.Containers))
		}
	}
	adj := 1000 - int(1000*request/capacity)
	return max(3, min(999, adj))
}

func memory(n int64) corev1.ResourceList {
	return corev1.ResourceList{corev1.ResourceMemory: *resource.NewQuantity(n, resource.BinarySI)}
}

// testPodLimitSidecar: a pod-level 64Mi limit; the sidecar holds 40Mi and
// the main container grows until the pod's cgroup is full. kubelet gives
// both containers the same oom_score_adj (999: their requests are tiny next
// to the node's memory), so the kernel kills the largest task, the
// sidecar's, for the main container's growth: a pod-scope kill whose
// trigger is the main container and whose victim was the largest holder
// (so not collateral).
func (e *env) testPodLimitSidecar(t *testing.T) {
	ns := "search"
	e.namespace(t, ns)
	main := hogContainer("indexer", nil, 8*mib, 0)
	main.Command = []string{"/bin/sh", "-c", "sleep 4; exec /hog -mb 30 -step 2 -interval 100ms"}
	side := hogContainer("log-shipper", []string{"-mb", "40", "-step", "4"}, 40*mib, 0)
	pod := e.createPod(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "indexer-0", Namespace: ns, Labels: map[string]string{"app": "indexer"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Resources:                     &corev1.ResourceRequirements{Limits: memory(64 * mib)},
			Containers:                    []corev1.Container{main, side},
		},
	})
	ev := e.waitOOMEvent(t, pod, 2*time.Minute, func(ev oomEvent) bool { return ev.Victims[0].ContainerName == "log-shipper" })
	v := ev.Victims[0]
	if ev.Kind != "limit" || ev.LimitScope != "pod" {
		t.Errorf("kind %s scope %s, want a pod-scope limit kill", ev.Kind, ev.LimitScope)
	}
	if !strings.HasSuffix(ev.OOMMemcg, "/pod"+string(pod.UID)) {
		t.Errorf("oom_memcg %s, want the pod's cgroup", ev.OOMMemcg)
	}
	if v.PodName != pod.Name || v.Namespace != ns {
		t.Errorf("victim %s/%s, want %s/%s", v.Namespace, v.PodName, ns, pod.Name)
	}
	if want := e.burstableAdj(t, pod, "log-shipper"); v.OOMScoreAdj == nil || *v.OOMScoreAdj != want {
		t.Errorf("victim oom_score_adj %v, want kubelet's %d", v.OOMScoreAdj, want)
	}
	// The trigger ran in the pod: the indexer, when the agent read its
	// cgroup in time; the pod's cgroup (the limit it was charging) when the
	// task was gone first, which a loaded run does see. Never elsewhere.
	switch {
	case ev.Trigger == nil || ev.Trigger.PodUID != string(pod.UID):
		t.Errorf("trigger %+v, want one in the pod", ev.Trigger)
	case ev.Trigger.ContainerName != "" && ev.Trigger.ContainerName != "indexer":
		t.Errorf("trigger in container %s, want the main container indexer", ev.Trigger.ContainerName)
	case ev.Trigger.ContainerName == "":
		t.Logf("trigger %s (pid %d) gone before the agent read it: placed in the pod's cgroup", ev.Trigger.Comm, ev.Trigger.PID)
	}
	if ev.Collateral {
		t.Errorf("collateral, but the sidecar was the largest holder: %s", ev.Reason)
	}
	if r := v.ContainerResources; r == nil || r.MemoryRequestBytes != 40*mib || r.MemoryLimitBytes != 0 {
		t.Errorf("sidecar resources %+v, want the 40Mi request and no limit of its own, from the API", r)
	}
	if r := v.PodResources; r == nil || r.MemoryLimitBytes != 64*mib {
		t.Errorf("pod resources %+v, want the pod-level 64Mi limit", r)
	}
	e.waitDescribe(t, ns, pod.Name, "OOMKilledLimit")
}

// testNodePressure: kubelet enforces node allocatable on the kubepods
// cgroup (1.5Gi here). A BestEffort pod holds 400Mi; a Guaranteed pod
// grows within its own 1200Mi limit until kubepods is full; the kernel
// kills the BestEffort pod (oom_score_adj 1000, against -997 for the
// Guaranteed one): collateral, the grower is the culprit.
func (e *env) testNodePressure(t *testing.T) {
	ctx := context.Background()
	e.namespace(t, "tools")
	e.namespace(t, "batch")
	be := e.createPod(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "debug-shell", Namespace: "tools"},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: new(int64),
			Containers:                    []corev1.Container{hogContainer("shell", []string{"-mb", "400", "-step", "16"}, 0, 0)},
		},
	})
	time.Sleep(3 * time.Second) // 400Mi at 16Mi a step takes well under a second
	growRes := corev1.ResourceList{
		corev1.ResourceMemory: *resource.NewQuantity(1200*mib, resource.BinarySI),
		corev1.ResourceCPU:    resource.MustParse("100m"),
	}
	grower := hogContainer("etl", []string{"-mb", "1150", "-step", "8", "-interval", "20ms"}, 0, 0)
	grower.Resources = corev1.ResourceRequirements{Requests: growRes, Limits: growRes}
	gp := e.createPod(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "etl-2", Namespace: "batch", Labels: map[string]string{"app": "etl"}},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: new(int64),
			Containers:                    []corev1.Container{grower},
		},
	})
	if gp.Status.QOSClass != corev1.PodQOSGuaranteed || be.Status.QOSClass != corev1.PodQOSBestEffort {
		t.Fatalf("QoS classes %s and %s, want Guaranteed and BestEffort", gp.Status.QOSClass, be.Status.QOSClass)
	}
	ev := e.waitOOMEvent(t, be, 2*time.Minute, func(ev oomEvent) bool { return ev.Victims[0].PodUID == string(be.UID) })
	v := ev.Victims[0]
	if v.QoS != "besteffort" || v.ContainerName != "shell" {
		t.Errorf("victim %s container %s, want the besteffort pod's shell", v.QoS, v.ContainerName)
	}
	if !strings.HasSuffix(ev.OOMMemcg, "/kubepods") || ev.LimitScope != "allocatable" ||
		!strings.Contains(ev.Reason, "node-allocatable limit kubelet sets on kubepods") {
		t.Errorf("oom_memcg %s scope %s reason %q, want the kubepods cgroup (node allocatable)", ev.OOMMemcg, ev.LimitScope, ev.Reason)
	}
	if !ev.Collateral || ev.Culprit == nil || ev.Culprit.PodName != "etl-2" || ev.Culprit.Namespace != "batch" ||
		ev.Culprit.ContainerName != "etl" {
		t.Errorf("collateral %v culprit %+v, want collateral with culprit batch/etl-2 container etl", ev.Collateral, ev.Culprit)
	}
	e.waitDescribe(t, "tools", be.Name, "OOMKilledCollateral")
	p, err := e.cs.CoreV1().Pods("tools").Get(ctx, be.Name, metav1.GetOptions{})
	if err == nil {
		if term := lastTerminated(p, "shell"); term != nil {
			t.Logf("kubelet on the BestEffort pod: exit %d reason %s", term.ExitCode, term.Reason)
		}
	}
	// Free the kubepods cgroup for the scenarios after this one.
	zero := int64(0)
	_ = e.cs.CoreV1().Pods("batch").Delete(ctx, gp.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
}

// testSigtermIgnored: a container that ignores SIGTERM, deleted with a 1 s
// grace period, is killed with SIGKILL: exit 137, and oomctl must say
// not-oom.
func (e *env) testSigtermIgnored(t *testing.T) {
	// kubelet removes a deleted pod's exited container at its next relist,
	// about 1 s after the exit: containerd 1.6 has no CRI event stream,
	// and a poll missed the exit in one of four runs until the agent
	// followed containerd's own task exit events.
	ctx := context.Background()
	ns := "jobs"
	e.namespace(t, ns)
	ctr := hogContainer("worker", nil, 0, 32*mib)
	ctr.Command = []string{"/bin/sh", "-c", "trap '' TERM; while true; do sleep 1; done"}
	pod := e.createPod(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "stubborn", Namespace: ns},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{ctr}},
	})
	one := int64(1)
	start := time.Now()
	if err := e.cs.CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &one}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "oomctl explain: the 137 exit is not-oom", time.Minute, func() (bool, string) {
		entries, err := e.explain(ns, pod.Name)
		if err != nil {
			return false, err.Error()
		}
		for _, en := range entries {
			x := en.GetExit()
			if x == nil {
				return false, fmt.Sprintf("unexpected %s entry: %s", eventid.TypeOf(en), en.GetOom().GetReason())
			}
			if x.GetWorkload().GetContainerName() == "worker" && x.GetExitCode() == 137 {
				t.Logf("explain after %v: %s: %s", time.Since(start).Round(time.Millisecond), wire.Why(x), x.GetExplanation())
				if wire.Why(x) != "not-oom" {
					t.Errorf("verdict %s, want not-oom", wire.Why(x))
				}
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d entries", len(entries))
	})
}

// testAgentRollout: a container whose child processes are OOM-killed
// about once a second while the agent DaemonSet is restarted (kubectl
// rollout restart). Every kill the kernel logged for the pod must reach
// the aggregator exactly once.
func (e *env) testAgentRollout(t *testing.T) {
	ctx := context.Background()
	ns := "ci"
	e.namespace(t, ns)
	ctr := hogContainer("runner", nil, 16*mib, 32*mib)
	ctr.Command = []string{"/bin/sh", "-c", "while true; do /hog -mb 0 -step 4; sleep 1; done"}
	pod := e.createPod(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "fork-bomb-test", Namespace: ns},
		Spec:       corev1.PodSpec{TerminationGracePeriodSeconds: new(int64), Containers: []corev1.Container{ctr}},
	})
	uid := string(pod.UID)
	kw := newKmsgWatch(t, uid)
	waitUntil(t, "kills before the rollout", time.Minute, func() (bool, string) {
		kills, _ := kw.poll()
		return len(kills) >= 3, fmt.Sprintf("%d kills", len(kills))
	})
	if _, err := e.c.Kubectl(ctx, "-n", "oomwatch", "rollout", "restart", "daemonset/oomwatch-agent"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Kubectl(ctx, "-n", "oomwatch", "rollout", "status", "daemonset/oomwatch-agent", "--timeout=120s"); err != nil {
		t.Fatal(err)
	}
	kills, _ := kw.poll()
	t.Logf("rollout done; %d kills so far", len(kills))
	time.Sleep(5 * time.Second) // kills after the new agent started
	zero := int64(0)
	if err := e.cs.CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	kernel, lost := kw.poll()
	if lost {
		t.Logf("the kernel log wrapped under other output while the test read it: kills it missed are not required")
	}
	var counts map[int]int
	waitUntil(t, "the aggregator has every kill", 90*time.Second, func() (bool, string) {
		evs, err := e.oomEvents(uid)
		if err != nil {
			return false, err.Error()
		}
		counts = map[int]int{}
		for _, ev := range evs {
			for _, v := range ev.Victims {
				counts[v.PID]++
			}
		}
		var missing []int
		for pid := range kernel {
			if counts[pid] == 0 {
				missing = append(missing, pid)
			}
		}
		sort.Ints(missing)
		return len(missing) == 0, fmt.Sprintf("%d of %d kills missing: %v", len(missing), len(kernel), missing)
	})
	for pid, n := range counts {
		if n > 1 {
			t.Errorf("pid %d reported %d times", pid, n)
		}
		if !kernel[pid] && !lost {
			t.Errorf("pid %d reported but not in the kernel's log for the pod", pid)
		}
	}
	t.Logf("%d kills in the kernel's log for the pod, each reported once across the agent's rollout", len(kernel))
}
