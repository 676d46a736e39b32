package kubeevents

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/oomwatch/oomwatch/pkg/vocab"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Reasons of the Events written for warnings (issue #17).
const (
	// ReasonNearLimit is the Event on a Pod of a newly opened warning of
	// its container or pod: near-limit, forecast, limit-reclaim, pressure.
	ReasonNearLimit = "MemoryNearLimit"
	// ReasonNodeLow is the Event on a Node of a newly opened node-low
	// warning, or the node's pressure.
	ReasonNodeLow = "NodeMemoryLow"
)

// Bounds of the warnings' Events.
const (
	// WarningEventEvery is how often at most one object gets an Event of
	// one reason: a workload whose warnings open and resolve in turn makes
	// one Event per WarningEventEvery.
	WarningEventEvery = 5 * time.Minute
	// maxWarnedObjects bounds the objects whose last Event is remembered;
	// past it, once those older than WarningEventEvery are forgotten, new
	// objects' Events are refused (counted RateLimited) until room frees.
	maxWarnedObjects = 10000
)

// handleWarning writes the Event of a warning newly opened:
// MemoryNearLimit on the Pod of a container's or pod's warning,
// NodeMemoryLow on the Node of node-low and of the node's pressure.
//
// Handle sees each stored event once, when first stored: for a warning
// that is its opening (revision 0), or its first revision to arrive when
// the opening was lost on the way (a spool overflow): either way the
// cluster learns of it now. Its updates and its resolution replace the
// stored warning and write nothing; a warning first stored resolved, or
// open but stale (its revision older than wire.WarningStale, a replay
// after a long outage), writes nothing either.
func (w *Writer) handleWarning(ctx context.Context, ev *pb.Event, m *pb.MemoryWarning) error {
	if m.GetState() != pb.WarningState_WARNING_STATE_OPEN || wire.IsStale(ev, w.opts.Now()) {
		return nil
	}
	wl := m.GetWorkload()
	var ref corev1.ObjectReference
	var reason string
	switch {
	case m.GetWarningKind() == pb.WarningKind_WARNING_KIND_NODE_LOW ||
		m.GetWarningKind() == pb.WarningKind_WARNING_KIND_PRESSURE && wl.GetCgroup() == "":
		if ev.GetNode() == "" {
			return nil
		}
		ref = corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: ev.GetNode(), UID: types.UID(ev.GetNode())}
		reason = ReasonNodeLow
	case wl.GetNamespace() != "" && wl.GetPodName() != "":
		ref = corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: wl.GetNamespace(), Name: wl.GetPodName(),
			UID: types.UID(wl.GetPodUid())}
		if c := wl.GetContainerName(); c != "" {
			ref.FieldPath = "spec.containers{" + c + "}"
		}
		reason = ReasonNearLimit
	default:
		// A cgroup outside any named pod (a system service): no object.
		w.count(func(s *Stats) { s.Skipped++ })
		return nil
	}
	if !w.warnAllowed(ref.Kind+"/"+ref.Namespace+"/"+ref.Name+"/"+reason, w.opts.Now()) {
		w.count(func(s *Stats) { s.RateLimited++ })
		return nil
	}
	msg := m.GetSummary()
	if msg == "" {
		msg = vocab.Warning(m)
	}
	return w.write(ctx, ev, ref, reason, msg)
}

// warnAllowed reports whether the object and reason of key may get an
// Event at now, and if so remembers it.
func (w *Writer) warnAllowed(key string, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if last, ok := w.lastWarn[key]; ok && now.Sub(last) < WarningEventEvery && !now.Before(last) {
		return false
	}
	if _, ok := w.lastWarn[key]; !ok && len(w.lastWarn) >= maxWarnedObjects {
		for k, last := range w.lastWarn {
			if now.Sub(last) >= WarningEventEvery || now.Before(last) {
				delete(w.lastWarn, k)
			}
		}
		if len(w.lastWarn) >= maxWarnedObjects {
			return false
		}
	}
	w.lastWarn[key] = now
	return true
}
