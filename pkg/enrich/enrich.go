// Package enrich adds what the node knows beyond the kernel's words to an
// OOM event: pod, namespace, container and image names from the container
// runtime (CRI), limits and overhead, and the cgroup files' figures at kill
// time.
package enrich

import (
	"bytes"
	"context"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/cgroupstat"
	"github.com/oomwatch/oomwatch/pkg/cri"
	"github.com/oomwatch/oomwatch/pkg/kubepods"
	"github.com/oomwatch/oomwatch/pkg/oom"
	"github.com/oomwatch/oomwatch/pkg/recent"
	"github.com/oomwatch/oomwatch/pkg/workload"
)

// Runtime is what the enricher asks the container runtime.
type Runtime interface {
	Container(ctx context.Context, id string) (cri.Container, bool)
	Pod(ctx context.Context, uid string) (cri.Pod, bool)
}

// Specs is what the enricher asks the Kubernetes API: memory requests
// (kubelet never gives them to the runtime), limits, and names when the
// runtime does not know a pod.
type Specs interface {
	Pod(ctx context.Context, uid string) (kubepods.Pod, bool)
}

// Enricher fills in names and figures. Observe it with every kernel record
// so that it reads the cgroup files at the moment of the kill: a killed
// container's cgroup is removed within tens of milliseconds.
type Enricher struct {
	root    string
	runtime Runtime // may be nil
	specs   Specs   // may be nil
	mu      sync.Mutex
	snaps   *recent.Map[string, snapshot]
	pre     *prefetcher
}

type snapshot struct {
	stats cgroupstat.Stats
	at    time.Time
}

// snapTTL bounds how long a figure read at kill time is used.
const snapTTL = 5 * time.Minute

// maxSnaps bounds the cgroups whose figures are held from kill time.
const maxSnaps = 512

// New returns an Enricher reading cgroups under root (the host's cgroup
// mount). runtime and specs may be nil: without either, events carry IDs
// only; without specs, no requests.
func New(root string, runtime Runtime, specs Specs) *Enricher {
	return &Enricher{root: root, runtime: runtime, specs: specs, snaps: recent.NewMap[string, snapshot](maxSnaps), pre: newPrefetcher()}
}

var summaryPrefix = []byte("oom-kill:")

// Observe looks at one kernel record. On a report's first line it has the
// runtime list its containers; on the "oom-kill:" summary line, printed
// just before the kill, it reads the victim's container and pod cgroup files
// and looks the container up, while they still exist (in the background:
// the reader never waits for the runtime). The agent's pipeline shows it
// only the records that may be part of an OOM report (agent.Observer); the
// others among those cost a prefix test and a substring search.
func (e *Enricher) Observe(msg []byte) {
	if !bytes.HasPrefix(msg, summaryPrefix) {
		e.early(msg)
		return
	}
	sum := oom.ParseSummary(string(msg))
	for i, p := range []string{sum.TaskMemcg, sum.OOMMemcg} {
		if p == "" || (i == 1 && p == sum.TaskMemcg) {
			continue
		}
		e.snap(p)
		if w := workload.FromCgroup(p); w.Kind == workload.KindContainer {
			e.snap(path.Dir(p))
			e.prefetchContainer(w.ContainerID)
		}
	}
}

func (e *Enricher) snap(p string) {
	st, err := cgroupstat.Read(e.root, p)
	if err != nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.snaps.Put(p, snapshot{stats: st, at: time.Now()})
}

// stats returns a cgroup's figures: those read at kill time when there are,
// else read now.
func (e *Enricher) stats(p string) (cgroupstat.Stats, bool) {
	if p == "" {
		return cgroupstat.Stats{}, false
	}
	e.mu.Lock()
	s, ok := e.snaps.Get(p)
	e.mu.Unlock()
	if ok && time.Since(s.at) < snapTTL {
		return s.stats, true
	}
	st, err := cgroupstat.Read(e.root, p)
	return st, err == nil
}

// Enrich fills every workload of ev, and the victim's cgroup figures, then
// has analysis.Refine judge again what those facts change (the limit a
// single-container pod's kill hit) and write the reason anew.
func (e *Enricher) Enrich(ctx context.Context, ev *analysis.Event) {
	defer analysis.Refine(ev)
	for i := range ev.Victims {
		e.names(ctx, &ev.Victims[i].Workload)
	}
	if ev.Trigger != nil {
		e.names(ctx, &ev.Trigger.Workload)
	}
	for i := range ev.TopConsumers {
		e.names(ctx, &ev.TopConsumers[i].Workload)
	}
	if ev.Culprit != nil {
		e.names(ctx, &ev.Culprit.Workload)
	}
	if len(ev.Victims) > 0 {
		e.figures(&ev.Victims[0].Workload)
		e.limited(ev)
	}
	if ev.Culprit != nil {
		e.figures(&ev.Culprit.Workload)
	}
}

// Name fills a workload's names (namespace, pod, container, image, labels)
// from the container runtime, as a kill's are: the agent names its memory
// warnings' cgroups with it. It does not ask the Kubernetes API, which the
// agent lists only when an OOM kill needs it.
func (e *Enricher) Name(ctx context.Context, w *analysis.Workload) {
	e.runtimeNames(ctx, w)
}

// names asks the runtime about a workload's container and pod, then the
// Kubernetes API about the pod's spec.
func (e *Enricher) names(ctx context.Context, w *analysis.Workload) {
	e.runtimeNames(ctx, w)
	e.spec(ctx, w)
}

// spec adds the pod spec's requests and limits, and the names the runtime
// did not give.
func (e *Enricher) spec(ctx context.Context, w *analysis.Workload) {
	if e.specs == nil || w.PodUID == "" {
		return
	}
	p, ok := e.specs.Pod(ctx, w.PodUID)
	if !ok {
		return
	}
	if w.PodName == "" {
		w.Namespace, w.PodName = p.Namespace, p.Name
	}
	pr := resources(&w.PodResources)
	pr.MemoryRequestBytes, pr.SpecRead = p.RequestBytes, true
	if p.OverheadBytes > 0 && pr.PodOverheadBytes == 0 {
		pr.PodOverheadBytes = p.OverheadBytes
	}
	if w.ContainerID == "" {
		return
	}
	name, ok := p.ContainerIDs[w.ContainerID]
	if !ok {
		return
	}
	if w.ContainerName == "" {
		w.ContainerName = name
	}
	c := p.Containers[name]
	cr := resources(&w.ContainerResources)
	// The spec's limit is what Kubernetes asked for, none included: under
	// a pod-level limit the runtime gives a container without one the
	// pod's, which is not the container's own.
	cr.MemoryRequestBytes, cr.MemoryLimitBytes, cr.SpecRead = c.RequestBytes, c.LimitBytes, true
}

// runtimeNames asks the runtime about a workload's container and pod.
func (e *Enricher) runtimeNames(ctx context.Context, w *analysis.Workload) {
	if e.runtime == nil {
		return
	}
	if w.ContainerID != "" {
		if c, ok := e.container(ctx, w.ContainerID); ok {
			w.ContainerName, w.Image = c.Name, c.Image
			if w.Namespace == "" {
				w.Namespace, w.PodName = c.PodNamespace, c.PodName
			}
			if w.PodUID == "" {
				w.PodUID = c.PodUID
			}
			if c.MemoryLimitBytes > 0 {
				res := resources(&w.ContainerResources)
				res.MemoryLimitBytes = c.MemoryLimitBytes
			}
		}
	}
	if w.PodUID != "" {
		if p, ok := e.runtime.Pod(ctx, w.PodUID); ok {
			w.Namespace, w.PodName = p.Namespace, p.Name
			if len(p.Labels) > 0 {
				w.Labels = p.Labels
			}
			if p.OwnerKind != "" {
				if w.Labels == nil {
					w.Labels = map[string]string{}
				}
				w.Labels["oomwatch.io/owner"] = strings.TrimSpace(p.OwnerKind + " " + p.OwnerName)
			}
			if p.OverheadBytes > 0 || p.MemoryLimitBytes > 0 {
				res := resources(&w.PodResources)
				res.PodOverheadBytes, res.MemoryLimitBytes = p.OverheadBytes, p.MemoryLimitBytes
			}
		}
	}
}

// figures reads the workload's container and pod cgroups.
func (e *Enricher) figures(w *analysis.Workload) {
	if w.Cgroup == "" {
		return
	}
	kind := workload.Kind(w.WorkloadKind)
	ctr, pod := "", ""
	switch kind {
	case workload.KindContainer:
		ctr = w.Cgroup
		if w.PodUID != "" {
			pod = path.Dir(w.Cgroup)
		}
	case workload.KindPod:
		pod = w.Cgroup
	default:
		return
	}
	if st, ok := e.stats(ctr); ok {
		fill(resources(&w.ContainerResources), st)
	}
	if st, ok := e.stats(pod); ok {
		fill(resources(&w.PodResources), st)
	}
}

// limited reads the limited cgroup of a limit kill whose limit is neither
// the victim's container's nor its pod's (a QoS slice, kubepods under
// node-allocatable enforcement, a parent of several pods).
func (e *Enricher) limited(ev *analysis.Event) {
	m := ev.OOMMemcg
	if ev.Kind != analysis.KindLimit || m == "" {
		return
	}
	v := ev.Victims[0].Cgroup
	if m == v || (workload.FromCgroup(v).Kind == workload.KindContainer && m == path.Dir(v)) {
		return
	}
	if st, ok := e.stats(m); ok {
		fill(resources(&ev.Limited), st)
	}
}

func resources(p **analysis.Resources) *analysis.Resources {
	if *p == nil {
		*p = &analysis.Resources{}
	}
	return *p
}

func fill(r *analysis.Resources, st cgroupstat.Stats) {
	r.CgroupRead = true
	r.MemoryMaxBytes = st.MaxBytes
	r.MemoryCurrentBytes = st.CurrentBytes
	r.MemoryPeakBytes = st.PeakBytes
	r.MemoryMinBytes = st.MinBytes
	r.MemoryLowBytes = st.LowBytes
	r.EventsOOM = int64(st.Events.OOM)
	r.EventsOOMKill = int64(st.Events.OOMKill)
	r.EventsOOMGroupKill = int64(st.Events.OOMGroupKill)
	r.OOMGroup = st.OOMGroup
	if r.MemoryLimitBytes == 0 && st.MaxBytes > 0 && !r.SpecRead {
		r.MemoryLimitBytes = st.MaxBytes
	}
}
