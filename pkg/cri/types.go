package cri

import (
	"maps"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/oomwatch/oomwatch/pkg/workload"
)

// State is a container's or a sandbox's state as the runtime reports it.
type State string

// States.
const (
	StateCreated  State = "created"
	StateRunning  State = "running"
	StateExited   State = "exited"
	StateUnknown  State = "unknown"
	StateReady    State = "ready"     // sandbox
	StateNotReady State = "not-ready" // sandbox
)

// Where a container's memory limit was read, as found in
// Container.MemoryLimitSource.
const (
	// SourceCRIStatus: ContainerStatus.resources.linux (containerd >= 1.6.x
	// builds with in-place resize support, CRI-O).
	SourceCRIStatus = "cri-status"
	// SourceRuntimeSpec: the OCI runtime spec in the verbose info
	// (linux.resources.memory.limit): what runc applied.
	SourceRuntimeSpec = "runtime-spec"
	// SourceConfig: the CRI ContainerConfig containerd keeps in the verbose
	// info (linux.resources.memory_limit_in_bytes): what kubelet asked for.
	SourceConfig = "container-config"
)

// Kubelet's labels on containers and sandboxes.
const (
	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"
)

// Container is what the runtime says about one container. Fields the
// runtime did not tell are zero.
type Container struct {
	// ID is the runtime's full container ID (64 hex digits for containerd
	// and CRI-O).
	ID string
	// Name is the container's name in its pod spec (CRI metadata name).
	Name string
	// Attempt is the CRI attempt number: how many times kubelet restarted
	// this container in the pod before this one.
	Attempt uint32
	// PodSandboxID is the ID of the sandbox the container runs in.
	PodSandboxID string
	// Sandbox marks the pod's sandbox itself (its pause process), named
	// SandboxName: it is no container of the pod spec.
	Sandbox bool
	// PodUID, PodNamespace and PodName come from kubelet's labels, or from
	// the sandbox's metadata when the labels are absent.
	PodUID, PodNamespace, PodName string
	// Image is the image as requested ("registry/app:1.2"); ImageRef is
	// the runtime's resolved reference (digest or image ID).
	Image, ImageRef string
	// State is the state at the last look.
	State State
	// ExitCode, Reason ("OOMKilled", "Error", "Completed") and Message are
	// set once the container exited.
	ExitCode        int32
	Reason, Message string
	// CreatedAt, StartedAt and FinishedAt are zero when unknown.
	CreatedAt, StartedAt, FinishedAt time.Time
	// MemoryLimitBytes is the container's memory limit, 0 for none or
	// unknown; MemoryLimitSource tells where it was read ("" when unknown).
	MemoryLimitBytes  int64
	MemoryLimitSource string
	// OOMScoreAdj is the oom_score_adj the runtime applied, valid when
	// HasOOMScoreAdj.
	OOMScoreAdj    int64
	HasOOMScoreAdj bool
	// Labels and Annotations are the container's CRI labels and annotations
	// (kubelet puts io.kubernetes.* keys there). Callers get a copy.
	Labels, Annotations map[string]string
	// Removed is when the cache noticed the container was gone from the
	// runtime; zero while it exists.
	Removed time.Time
}

// Pod is what the runtime says about one pod sandbox.
type Pod struct {
	// UID, Namespace and Name are the pod's, from the sandbox metadata.
	UID, Namespace, Name string
	// SandboxID is the runtime's sandbox ID.
	SandboxID string
	// Attempt is the sandbox attempt (kubelet recreates sandboxes).
	Attempt uint32
	// State is StateReady or StateNotReady.
	State State
	// CreatedAt is when the sandbox was created.
	CreatedAt time.Time
	// Labels holds only the pod labels that name a workload: app,
	// app.kubernetes.io/name, app.kubernetes.io/instance, pod-template-hash,
	// controller-revision-hash, pod-template-generation,
	// statefulset.kubernetes.io/pod-name, job-name and
	// batch.kubernetes.io/job-name. Callers get a copy.
	Labels map[string]string
	// OwnerKind and OwnerName are the pod's controller as INFERRED from
	// kubelet's labels, since CRI carries no ownerReferences: OwnerKind ends
	// in "?" ("ReplicaSet?", "DaemonSet?", "StatefulSet?", "Job?", "Node?"
	// for static pods) and is empty when nothing points at one; OwnerName is
	// empty when the name cannot be derived from the labels and pod name.
	OwnerKind, OwnerName string
	// RuntimeHandler is the RuntimeClass handler ("" for the default).
	RuntimeHandler string
	// CgroupParent is the pod's cgroup as kubelet gave it to the runtime
	// ("/kubepods/burstable/pod<uid>", "kubepods-burstable-pod<uid>.slice").
	CgroupParent string
	// OverheadBytes is the pod's RuntimeClass memory overhead and
	// MemoryLimitBytes the pod-level memory limit (the sum of its
	// containers' limits) kubelet passed in the sandbox config; 0 when the
	// runtime does not report them. Memory requests never reach the runtime
	// and are not here.
	OverheadBytes, MemoryLimitBytes int64
	// Removed is when the cache noticed the sandbox was gone; zero while it
	// exists.
	Removed time.Time
}

// keptPodLabels are the pod labels Pod.Labels keeps.
var keptPodLabels = []string{
	"app",
	"app.kubernetes.io/name",
	"app.kubernetes.io/instance",
	"pod-template-hash",
	"controller-revision-hash",
	"pod-template-generation",
	"statefulset.kubernetes.io/pod-name",
	"job-name",
	"batch.kubernetes.io/job-name",
}

func keepLabels(all map[string]string) map[string]string {
	var out map[string]string
	for _, k := range keptPodLabels {
		if v, ok := all[k]; ok {
			if out == nil {
				out = make(map[string]string, 4)
			}
			out[k] = v
		}
	}
	return out
}

// inferOwner guesses a pod's controller from the labels controllers put on
// the pods they create and from the pod name they generate. Every guess is
// marked with a trailing "?".
func inferOwner(name string, labels, annotations map[string]string) (kind, owner string) {
	switch {
	case labels["batch.kubernetes.io/job-name"] != "":
		return "Job?", labels["batch.kubernetes.io/job-name"]
	case labels["job-name"] != "":
		return "Job?", labels["job-name"]
	case labels["statefulset.kubernetes.io/pod-name"] != "" && labels["controller-revision-hash"] != "":
		// StatefulSet pods are named <set>-<ordinal>.
		if i := strings.LastIndexByte(name, '-'); i > 0 && isDigits(name[i+1:]) {
			return "StatefulSet?", name[:i]
		}
		return "StatefulSet?", ""
	case labels["controller-revision-hash"] != "" && labels["pod-template-generation"] != "":
		// DaemonSet pods are named <set>-<5 random characters>.
		if i := strings.LastIndexByte(name, '-'); i > 0 && len(name)-i-1 == 5 {
			return "DaemonSet?", name[:i]
		}
		return "DaemonSet?", ""
	case labels["pod-template-hash"] != "":
		// ReplicaSet pods are named <replicaset>-<5 random characters> and
		// a Deployment's ReplicaSet is named <deployment>-<pod-template-hash>.
		h := labels["pod-template-hash"]
		if i := strings.LastIndexByte(name, '-'); i > 0 && strings.HasSuffix(name[:i], "-"+h) {
			return "ReplicaSet?", name[:i]
		}
		return "ReplicaSet?", ""
	}
	switch annotations["kubernetes.io/config.source"] {
	case "file", "http":
		// A static pod: its mirror pod is owned by the Node.
		return "Node?", ""
	}
	return "", ""
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func containerState(s runtimeapi.ContainerState) State {
	switch s {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		return StateCreated
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return StateRunning
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return StateExited
	}
	return StateUnknown
}

func sandboxState(s runtimeapi.PodSandboxState) State {
	if s == runtimeapi.PodSandboxState_SANDBOX_READY {
		return StateReady
	}
	return StateNotReady
}

// nanos turns CRI's nanosecond stamps into a time, zero for 0.
func nanos(ns int64) time.Time {
	if ns <= 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// clone returns c with its maps copied, so callers cannot race the cache.
func (c Container) clone() Container {
	c.Labels = maps.Clone(c.Labels)
	c.Annotations = maps.Clone(c.Annotations)
	return c
}

func (p Pod) clone() Pod {
	p.Labels = maps.Clone(p.Labels)
	return p
}

// SandboxName is the container name given to a pod's sandbox (its pause
// process).
const SandboxName = workload.SandboxName
