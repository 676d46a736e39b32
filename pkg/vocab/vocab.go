// Package vocab is the one vocabulary of what a person reads about a
// workload: the explanations of kills and exits, Kubernetes Events, the web
// UI and oomctl's tables all name pods, containers and other cgroups
// through it, so each is spelled one way everywhere:
//
//   - a pod is "pod <namespace>/<name>" once its names are known, "pod
//     <UID>" before (the whole UID: it is what the API and kubelet's cgroup
//     paths carry);
//   - a container is "container <name>", or "container <ID>" with the ID's
//     first 12 hex digits (as crictl and docker print it);
//   - a pod's sandbox is its container "POD";
//   - anything else by its systemd unit or its cgroup path.
//
// The Ref forms drop the leading noun, for table cells whose column says it.
package vocab

import (
	"strings"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Names are what is known of a workload: from its cgroup path (kind, pod
// UID, container ID, runtime, QoS class, unit) and, when the runtime or the
// API answered, its names.
type Names struct {
	Cgroup      string
	Kind        string // as package workload's Kind: "container", "pod", "system-service", ...
	PodUID      string
	ContainerID string
	Runtime     string
	QoS         string
	Unit        string
	// From the container runtime or the Kubernetes API.
	Namespace, PodName, ContainerName string
}

// Kinds of workload the vocabulary words differently (package workload's).
const (
	kindSystemService = "system-service"
	kindUserSession   = "user-session"
	kindRoot          = "root"
)

// ShortIDLen is how many characters of a container ID are shown.
const ShortIDLen = 12

// ShortID shortens a container ID; a container named rather than
// numbered by a hex ID (an LXC container's name) is kept whole.
func ShortID(id string) string {
	if len(id) <= ShortIDLen {
		return id
	}
	for i := range len(id) {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return id
		}
	}
	return id[:ShortIDLen]
}

// PodRef is a pod's reference: "<namespace>/<name>", its name alone when
// the namespace is unknown, else its UID; "" when the workload is in no
// known pod.
func PodRef(n Names) string {
	switch {
	case n.PodName != "" && n.Namespace != "":
		return n.Namespace + "/" + n.PodName
	case n.PodName != "":
		return n.PodName
	}
	return n.PodUID
}

// Pod is "pod " and the pod's reference, or "".
func Pod(n Names) string {
	if r := PodRef(n); r != "" {
		return "pod " + r
	}
	return ""
}

// ContainerRef is a container's reference: its name, else its short ID.
func ContainerRef(n Names) string {
	if n.ContainerName != "" {
		return n.ContainerName
	}
	return ShortID(n.ContainerID)
}

// Container is "container " and the container's reference, or "".
func Container(n Names) string {
	if r := ContainerRef(n); r != "" {
		return "container " + r
	}
	return ""
}

// Host names a workload outside any pod: "system service <unit>", "user
// session <unit>", "the root cgroup", "<runtime> container <ID>" or
// "cgroup <path>"; "" when nothing is known.
func Host(n Names) string {
	switch {
	case n.Kind == kindSystemService && n.Unit != "":
		return "system service " + n.Unit
	case n.Kind == kindUserSession && n.Unit != "":
		return "user session " + n.Unit
	case n.Kind == kindRoot:
		return "the root cgroup"
	case n.ContainerID != "" || n.ContainerName != "":
		return strings.TrimSpace(n.Runtime + " " + Container(n))
	case n.Unit != "":
		return n.Unit
	case n.Cgroup != "":
		return "cgroup " + n.Cgroup
	}
	return ""
}

// Workload names a workload in a sentence: "[<QoS> ]pod <ref>[ container
// <ref>]" for a pod's, else Host's words.
func Workload(n Names) string {
	p := Pod(n)
	if p == "" {
		return Host(n)
	}
	if n.QoS != "" {
		p = n.QoS + " " + p
	}
	if c := Container(n); c != "" {
		p += " " + c
	}
	return p
}

// Label is a workload's label in a table or a chart: "pod <ref> › <container
// ref>", "pod <ref>" or Host's words.
func Label(n Names) string {
	p := Pod(n)
	if p == "" {
		return Host(n)
	}
	if c := ContainerRef(n); c != "" {
		p += " › " + c
	}
	return p
}

// OfPB returns the names of a workload of the API.
func OfPB(w *pb.Workload) Names {
	return Names{Cgroup: w.GetCgroup(), Kind: w.GetWorkloadKind(), PodUID: w.GetPodUid(), ContainerID: w.GetContainerId(),
		Runtime: w.GetRuntime(), QoS: w.GetQos(), Unit: w.GetUnit(), Namespace: w.GetNamespace(), PodName: w.GetPodName(),
		ContainerName: w.GetContainerName()}
}

// Cell is a workload in a table cell of oomctl, where columns are narrow:
// "<namespace>/<pod>[/<container>]" once names are known; before, "pod:"
// and the UID's first group (a UID's first 8 digits tell pods apart at a
// glance) with "/<container ID>" and " (<QoS>)", "container:<ID>", the
// unit, or (wide) the cgroup. wide prints every ID in full and prefers the
// IDs to the names.
func Cell(n Names, wide bool) string {
	id := func(s string) string {
		if !wide {
			return ShortID(s)
		}
		return s
	}
	switch {
	case n.PodName != "" && !wide:
		s := n.Namespace + "/" + n.PodName
		if n.ContainerName != "" {
			s += "/" + n.ContainerName
		}
		return s
	case n.PodUID != "":
		uid := n.PodUID
		if !wide && len(uid) > 8 {
			uid = uid[:8]
		}
		s := "pod:" + uid
		if n.ContainerID != "" {
			s += "/" + id(n.ContainerID)
		}
		if n.QoS != "" {
			s += " (" + n.QoS + ")"
		}
		return s
	case n.ContainerID != "":
		return "container:" + id(n.ContainerID)
	case n.Unit != "":
		return n.Unit
	case n.Cgroup != "" && wide:
		return n.Cgroup
	}
	return ""
}
