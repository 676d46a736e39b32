// Package workload attributes a cgroup path, as the kernel prints it in an OOM
// report or as /proc/<pid>/cgroup shows it, to the workload that owns it: a
// Kubernetes container or pod, a QoS slice, a systemd service, a user session,
// a plain container, or the root cgroup.
//
// The parser understands both kubelet cgroup drivers (systemd and cgroupfs) on
// cgroup v1 and v2, with any prefix before the kubepods root (LXC payloads,
// nested container hosts, kind nodes), and it never guesses: a pod UID or a
// container ID cut short by a truncated log line is left empty.
package workload

import (
	"path"
	"strings"

	"github.com/oomwatch/oomwatch/pkg/vocab"
)

// Kind is the kind of workload a cgroup belongs to.
type Kind string

// Kinds of workload.
const (
	// KindContainer is a container cgroup (or a cgroup nested inside one),
	// inside or outside Kubernetes.
	KindContainer Kind = "container"
	// KindPod is the pod cgroup itself, or a pod-level path whose container
	// component is missing.
	KindPod Kind = "pod"
	// KindQoS is the kubepods root or one of its QoS slices (kubepods,
	// kubepods.slice, kubepods-burstable.slice, /kubepods/besteffort, ...).
	KindQoS Kind = "qos-slice"
	// KindSystemService is a systemd system unit: a service under system.slice
	// or under another top-level slice of the node's own (Bottlerocket's
	// /podruntime.slice/containerd.service, a kube-reserved
	// /runtime.slice/kubelet.service), or init.scope.
	KindSystemService Kind = "system-service"
	// KindUserSession is anything under user.slice: login sessions and user
	// managers with their apps.
	KindUserSession Kind = "user-session"
	// KindRoot is the root cgroup "/".
	KindRoot Kind = "root"
	// KindOther is any other cgroup, attributed by its path alone.
	KindOther Kind = "other"
	// KindUnknown means no cgroup was given.
	KindUnknown Kind = ""
)

// SandboxName is the container name of a pod's sandbox (its pause
// process, in a cgroup named by the sandbox ID beside the pod's
// containers): kubelet's own name for it ("POD"), as cAdvisor's metrics
// and dockershim's container names spell it.
const SandboxName = "POD"

// QoS classes of Kubernetes pods, as found in Workload.QoS.
const (
	QoSGuaranteed = "guaranteed"
	QoSBurstable  = "burstable"
	QoSBestEffort = "besteffort"
)

// Container runtimes, as found in Workload.Runtime.
const (
	RuntimeContainerd = "containerd"
	RuntimeCRIO       = "cri-o"
	RuntimeDocker     = "docker"
	RuntimePodman     = "podman"
	// RuntimeLXC is an LXC system container (Proxmox VE, LXD, Incus), whose
	// ContainerID is its name (Proxmox's numeric VMID).
	RuntimeLXC = "lxc"
)

// Kubelet cgroup drivers, as found in Workload.Driver.
const (
	DriverSystemd  = "systemd"
	DriverCgroupfs = "cgroupfs"
)

// Workload is what FromCgroup learns about a cgroup path. Fields that the path
// does not prove are left empty.
type Workload struct {
	// Cgroup is the path as given, trimmed of surrounding blanks and a trailing
	// ':' and cleaned with path.Clean; "" when none was given.
	Cgroup string
	// Kind is the kind of workload.
	Kind Kind
	// PodUID is the pod UID in lower case, with dashes when the UID has them
	// (0f1e2d3c-4b5a-4968-a7b6-c5d4e3f2a1b0; systemd's '_' escapes are undone),
	// or the 32 hex digits kubelet uses for static pods. Empty unless complete.
	PodUID string
	// ContainerID is the runtime's container ID without runtime prefix or
	// ".scope" suffix. Empty unless provably complete: 64 hex digits, or any
	// [0-9a-z]+ closed by ".scope".
	ContainerID string
	// Runtime is the container runtime named by the path (RuntimeContainerd,
	// RuntimeCRIO, RuntimeDocker, RuntimePodman), "" when the path does not
	// say (a bare cgroupfs container ID).
	Runtime string
	// Conmon is set when the cgroup is CRI-O's (or podman's) conmon monitor
	// scope of the container, not the container itself.
	Conmon bool
	// QoS is the pod QoS class (QoSGuaranteed, QoSBurstable, QoSBestEffort),
	// "" outside pods or when unknown.
	QoS string
	// Unit is the systemd unit or slice of a non-Kubernetes, non-container
	// workload, e.g. "containerd.service", "session-27.scope",
	// "user@1000.service".
	Unit string
	// Driver is the kubelet cgroup driver (DriverSystemd, DriverCgroupfs) of a
	// path under kubepods, else "".
	Driver string
}

// Key is the identity used to sum memory per workload: "container:<id>" when
// the container ID is known, else "pod:<uid>" when the pod UID is known, else
// "cgroup:<path>"; "" when there is no cgroup. A conmon scope shares the key
// of its container.
func (w Workload) Key() string {
	switch {
	case w.Cgroup == "":
		return ""
	case w.ContainerID != "":
		return "container:" + w.ContainerID
	case w.PodUID != "":
		return "pod:" + w.PodUID
	default:
		return "cgroup:" + w.Cgroup
	}
}

// PodKey is "pod:<uid>" when the pod UID is known, else Key. It groups all
// containers of a pod.
func (w Workload) PodKey() string {
	if w.PodUID != "" && w.Cgroup != "" {
		return "pod:" + w.PodUID
	}
	return w.Key()
}

// String is a short human label such as "pod <uid> container <id12>",
// "system service containerd.service", "user session session-27.scope" or
// "root cgroup".
func (w Workload) String() string {
	switch w.Kind {
	case KindContainer:
		var b strings.Builder
		if w.PodUID != "" || w.Driver != "" {
			b.WriteString(podLabel(w))
			b.WriteByte(' ')
		} else if w.Runtime != "" {
			b.WriteString(w.Runtime)
			b.WriteByte(' ')
		}
		if w.Conmon {
			b.WriteString("conmon of ")
		}
		b.WriteString("container ")
		if w.ContainerID == "" {
			b.WriteString("(unknown id)")
		} else {
			b.WriteString(vocab.ShortID(w.ContainerID))
		}
		return b.String()
	case KindPod:
		return podLabel(w)
	case KindQoS:
		if w.QoS == "" {
			return "all pods (" + path.Base(w.Cgroup) + ")"
		}
		return w.QoS + " pods"
	case KindSystemService:
		return "system service " + w.Unit
	case KindUserSession:
		return "user session " + w.Unit
	case KindRoot:
		return "root cgroup"
	case KindOther:
		return "cgroup " + w.Cgroup
	default:
		if w.Cgroup == "" {
			return "no cgroup"
		}
		return "cgroup " + w.Cgroup
	}
}

func podLabel(w Workload) string {
	if p := vocab.Pod(vocab.Names{PodUID: w.PodUID}); p != "" {
		return p
	}
	if w.QoS != "" {
		return w.QoS + " pod (unknown uid)"
	}
	return "pod (unknown uid)"
}

// FromCgroup attributes a cgroup path to its workload. It is pure, cheap and
// never panics; unrecognised paths give KindOther with the path.
func FromCgroup(p string) Workload {
	cg := cleanCgroup(p)
	w := Workload{Cgroup: cg}
	switch cg {
	case "":
		return w
	case "/":
		w.Kind = KindRoot
		return w
	}

	// Room for the usual depth without allocating; deeper paths still work.
	var buf [16]string
	comps := splitPath(buf[:0], cg)
	if len(comps) == 0 {
		w.Kind = KindOther
		return w
	}
	if fromKube(&w, comps) {
		return w
	}
	if fromContainer(&w, comps) || fromLXC(&w, comps) {
		return w
	}
	fromSystemd(&w, comps)
	return w
}

// cleanCgroup trims blanks and the ':' that ends "Memory cgroup stats for
// <cg>:", then cleans the path; it is idempotent.
func cleanCgroup(s string) string {
	for {
		t := strings.TrimSpace(s)
		t = strings.TrimRight(t, ":")
		t = strings.TrimSpace(t)
		if t == "" {
			return ""
		}
		if !isClean(t) {
			t = path.Clean(t)
		}
		if t == s {
			return t
		}
		s = t
	}
}

// isClean reports whether path.Clean would return p unchanged; kernel paths
// always are, and checking is much cheaper than cleaning.
func isClean(p string) bool {
	switch p {
	case "":
		return false
	case "/":
		return true
	}
	start := 0
	for i := 0; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		switch p[start:i] {
		case "":
			// Only the leading '/' of an absolute path may make an empty element.
			if i != 0 {
				return false
			}
		case ".", "..":
			return false
		}
		start = i + 1
	}
	return true
}

func splitPath(dst []string, p string) []string {
	for p != "" {
		i := strings.IndexByte(p, '/')
		if i < 0 {
			return append(dst, p)
		}
		if i > 0 {
			dst = append(dst, p[:i])
		}
		p = p[i+1:]
	}
	return dst
}

// Levels of the kubepods hierarchy.
type level int

const (
	levelNone level = iota
	levelRoot
	levelQoS
	levelPod
	levelContainer
)

// fromKube fills w from the innermost kubepods tree in comps and reports
// whether there was one. The innermost tree wins so that a kubelet nested in
// a container (kind, LXC, minikube) is attributed at its own level.
func fromKube(w *Workload, comps []string) bool {
	for i := len(comps) - 1; i >= 0; i-- {
		c := comps[i]
		if c == "kubepods" {
			walkCgroupfs(w, comps[i:])
			return true
		}
		if strings.Contains(c, "kubepods") {
			if e := parseSystemdElem(c); e.level != levelNone {
				// Walk up to the outermost slice of this tree.
				s, lv := i, e.level
				for s > 0 {
					up := parseSystemdElem(comps[s-1]).level
					if up == levelNone || up >= lv {
						break
					}
					s, lv = s-1, up
				}
				walkSystemd(w, comps[s:])
				return true
			}
		}
	}
	return false
}

// walkCgroupfs reads kubepods[/burstable|/besteffort]/pod<uid>/<container>.
func walkCgroupfs(w *Workload, comps []string) {
	w.Driver = DriverCgroupfs
	w.Kind = KindQoS
	rest := comps[1:]
	if len(rest) == 0 {
		return
	}
	switch rest[0] {
	case QoSBurstable, QoSBestEffort:
		w.QoS = rest[0]
		rest = rest[1:]
		if len(rest) == 0 {
			return
		}
		// Every child of a QoS cgroup is a pod, even one whose name was cut.
	default:
		if !strings.HasPrefix(rest[0], "pod") {
			w.Kind = KindOther
			return
		}
		w.QoS = QoSGuaranteed
	}
	w.Kind = KindPod
	if uid, ok := strings.CutPrefix(rest[0], "pod"); ok {
		w.PodUID = normalizeUID(uid)
	}
	if len(rest) > 1 {
		setContainer(w, rest[1])
	}
}

// walkSystemd reads kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice/<container>.scope,
// with any prefix before "kubepods" (kind's "kubelet-kubepods..."), and the
// "<pod>.slice:<runtime>:<id>" names that containerd gives when kubelet uses
// systemd but containerd does not (k8s issue 106514).
func walkSystemd(w *Workload, comps []string) {
	w.Driver = DriverSystemd
	for j, c := range comps {
		e := parseSystemdElem(c)
		switch e.level {
		case levelRoot:
			w.Kind = KindQoS
			continue
		case levelQoS:
			w.Kind = KindQoS
			w.QoS = e.qos
			continue
		case levelPod, levelContainer:
			w.Kind = KindPod
			w.QoS = e.qos
			w.PodUID = normalizeUID(e.uid)
			if e.level == levelContainer {
				w.Kind = KindContainer
				w.Runtime, w.ContainerID, w.Conmon = e.runtime, e.id, e.conmon
			} else if j+1 < len(comps) {
				setContainer(w, comps[j+1])
			}
			return
		}
		// Not a kubepods name: a child of a QoS slice is a pod whose name was
		// cut; anything else is unknown.
		if w.Kind == KindQoS && w.QoS != "" {
			w.Kind = KindPod
			if j+1 < len(comps) {
				setContainer(w, comps[j+1])
			}
			return
		}
		w.Kind = KindOther
		return
	}
}

type systemdElem struct {
	level   level
	qos     string
	uid     string // as written; normalizeUID validates it
	runtime string
	id      string
	conmon  bool
}

// parseSystemdElem parses one systemd kubepods slice name. The ".slice"
// suffix is optional so that a name cut by a truncated line still gives its
// level (the UID check catches the cut).
func parseSystemdElem(c string) systemdElem {
	var e systemdElem
	name, ctr, colon := strings.Cut(c, ":")
	name = strings.TrimSuffix(name, ".slice")
	i := strings.LastIndex(name, "kubepods")
	if i < 0 || (i > 0 && name[i-1] != '-') {
		return e
	}
	rest := name[i+len("kubepods"):]
	switch {
	case rest == "":
		e.level = levelRoot
	case rest == "-burstable":
		e.level, e.qos = levelQoS, QoSBurstable
	case rest == "-besteffort":
		e.level, e.qos = levelQoS, QoSBestEffort
	case strings.HasPrefix(rest, "-burstable-pod"):
		e.level, e.qos = levelPod, QoSBurstable
		e.uid = rest[len("-burstable-pod"):]
	case strings.HasPrefix(rest, "-besteffort-pod"):
		e.level, e.qos = levelPod, QoSBestEffort
		e.uid = rest[len("-besteffort-pod"):]
	case strings.HasPrefix(rest, "-pod"):
		e.level, e.qos = levelPod, QoSGuaranteed
		e.uid = rest[len("-pod"):]
	default:
		return systemdElem{}
	}
	if colon {
		if e.level != levelPod {
			return systemdElem{}
		}
		// "<pod>.slice:<prefix>:<id>": runc's systemd path format, here used
		// verbatim as a cgroupfs directory name.
		prefix, id, _ := strings.Cut(ctr, ":")
		e.level = levelContainer
		e.runtime, e.conmon = runtimeOfPrefix(prefix)
		if isHex64(id) {
			e.id = id
		}
	}
	return e
}

// Runtime prefixes of container cgroup names; longer prefixes first.
var containerPrefixes = [...]string{"cri-containerd-", "crio-conmon-", "crio-", "docker-", "libpod-conmon-", "libpod-"}

// setContainer marks w as a container of its pod and fills what the
// container component c proves. Every child of a pod cgroup is a container.
func setContainer(w *Workload, c string) {
	w.Kind = KindContainer
	w.Runtime, w.ContainerID, w.Conmon, _ = parseContainer(c)
}

// fromContainer recognises containers outside Kubernetes, innermost first:
// "<runtime>-<id>.scope" anywhere, and cgroup v1 docker's "docker/<id>". A
// last component cut inside the ID still counts, without the ID.
func fromContainer(w *Workload, comps []string) bool {
	for i := len(comps) - 1; i >= 0; i-- {
		c := comps[i]
		cut := i == len(comps)-1
		runtime, id, conmon, rest := parseContainer(c)
		switch {
		case runtime != "" && (id != "" || (cut && rest != "" && isHexChars(rest))):
			w.Runtime, w.Conmon = runtime, conmon
		case i > 0 && comps[i-1] == "docker" && (id != "" || (cut && isHexChars(c))):
			w.Runtime = RuntimeDocker
		default:
			continue
		}
		w.Kind = KindContainer
		w.ContainerID = id
		return true
	}
	return false
}

// fromLXC recognises LXC system containers: Proxmox VE's and LXC 3's
// "lxc/<name>" (Proxmox's VMID; its cgroup v2 payload under "ns"), LXC 4's,
// LXD's and Incus's "lxc.payload.<name>". The container with every cgroup
// inside it, its own services included, is one workload, as a pod is; a
// Kubernetes or runtime container inside it was recognised before this.
// The monitor's "lxc.monitor.<name>" runs on the host's behalf: another
// cgroup.
func fromLXC(w *Workload, comps []string) bool {
	var name string
	switch c := comps[0]; {
	case c == "lxc" && len(comps) > 1:
		name = comps[1]
	case strings.HasPrefix(c, "lxc.payload."):
		name = c[len("lxc.payload."):]
	}
	if !isLXCName(name) {
		return false
	}
	w.Kind, w.Runtime, w.ContainerID = KindContainer, RuntimeLXC, name
	return true
}

// fromSystemd classifies the remaining paths by their top-level cgroup.
func fromSystemd(w *Workload, comps []string) {
	switch comps[0] {
	case "init.scope":
		w.Kind = KindSystemService
		w.Unit = comps[0]
	case "system.slice":
		w.Kind = KindSystemService
		w.Unit = unitOf(comps)
	case "user.slice":
		w.Kind = KindUserSession
		w.Unit = unitOf(comps)
	default:
		w.Kind = KindOther
		if strings.HasSuffix(comps[0], ".slice") {
			w.Unit = unitOf(comps)
			if strings.HasSuffix(w.Unit, ".service") {
				w.Kind = KindSystemService
			}
		}
	}
}

// unitOf is the outermost service or scope in comps (the unit that owns the
// processes; what lies below is its own business), else the innermost slice.
func unitOf(comps []string) string {
	slice := comps[0]
	for _, c := range comps {
		if strings.HasSuffix(c, ".service") || strings.HasSuffix(c, ".scope") {
			return c
		}
		if strings.HasSuffix(c, ".slice") {
			slice = c
		}
	}
	return slice
}
