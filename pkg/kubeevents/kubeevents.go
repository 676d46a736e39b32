// Package kubeevents records OOM kills, and warnings before them, as
// Kubernetes Events, so that
// `kubectl describe pod` and `kubectl describe node` show them. Only the
// aggregator writes Events (one writer with RBAC, not every node). Writes
// are rate-limited and deduplicated: an Event's name is derived from the
// oomwatch event's identity, so a replay or an aggregator restart never
// writes the same Event twice.
package kubeevents

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Reasons of the Events written. They tell the three kinds of kill apart.
const (
	// ReasonLimit: the victim hit its own container's (or pod's) limit.
	ReasonLimit = "OOMKilledLimit"
	// ReasonNode: the node ran out of memory and the victim was the
	// largest holder.
	ReasonNode = "OOMKilledNodePressure"
	// ReasonCollateral: the victim was killed for memory another workload held.
	ReasonCollateral = "OOMKilledCollateral"
	// ReasonNodeOOM is the Event on the Node of a node-level incident.
	ReasonNodeOOM = "NodeOOM"
)

// Component is the Events' source.
const Component = "oomwatch"

// maxMessage bounds an Event's message (the API allows 1 KiB in practice).
const maxMessage = 1000

// Options tune a Writer.
type Options struct {
	// QPS and Burst limit the Events written per second. Defaults 5 and 20.
	QPS   float32
	Burst int
	// NodeIncidentGap: node-level kills on one node closer than this share
	// one Node Event. Default 60 s.
	NodeIncidentGap time.Duration
	// Now returns the time (tests).
	Now func() time.Time
}

// Stats counts what a Writer did.
type Stats struct {
	Written, Duplicates, RateLimited, Skipped, Errors int64
}

// Writer writes Events for oomwatch events.
type Writer struct {
	client   corev1client.EventsGetter
	opts     Options
	log      *logrus.Entry
	limiter  flowcontrol.RateLimiter
	mu       sync.Mutex
	lastNode map[string]time.Time
	// lastWarn is when each object last got a warning's Event, by object
	// and reason (bounded, see warnAllowed).
	lastWarn map[string]time.Time
	stats    Stats
}

// New returns a Writer creating Events through client (a clientset's
// CoreV1()).
func New(client corev1client.EventsGetter, opts Options, log *logrus.Entry) *Writer {
	if opts.QPS <= 0 {
		opts.QPS = 5
	}
	if opts.Burst <= 0 {
		opts.Burst = 20
	}
	if opts.NodeIncidentGap <= 0 {
		opts.NodeIncidentGap = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Writer{client: client, opts: opts, log: log,
		limiter:  flowcontrol.NewTokenBucketRateLimiter(opts.QPS, opts.Burst),
		lastNode: map[string]time.Time{}, lastWarn: map[string]time.Time{}}
}

// Stats returns the counters so far.
func (w *Writer) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

func (w *Writer) count(f func(*Stats)) {
	w.mu.Lock()
	f(&w.stats)
	w.mu.Unlock()
}

// Handle writes the Events of one stored oomwatch event: on the victim's
// Pod when its namespace and name are known, and on the Node for the first
// node-level kill of an incident; for a newly opened warning, on its Pod
// or Node (see handleWarning). Other event types are ignored.
func (w *Writer) Handle(ctx context.Context, ev *pb.Event) error {
	if m := ev.GetWarning(); m != nil {
		return w.handleWarning(ctx, ev, m)
	}
	k := ev.GetOom()
	if k == nil || len(k.GetVictims()) == 0 {
		return nil
	}
	var firstErr error
	v := k.GetVictims()[0].GetWorkload()
	if v.GetNamespace() != "" && v.GetPodName() != "" {
		reason := ReasonLimit
		switch {
		case k.GetCollateral():
			reason = ReasonCollateral
		case wire.Kind(k) == "node":
			reason = ReasonNode
		}
		ref := corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: v.GetNamespace(), Name: v.GetPodName(),
			UID: types.UID(v.GetPodUid())}
		if c := v.GetContainerName(); c != "" {
			ref.FieldPath = "spec.containers{" + c + "}"
		}
		if err := w.write(ctx, ev, ref, reason, k.GetReason()); err != nil {
			firstErr = err
		}
	} else {
		w.count(func(s *Stats) { s.Skipped++ })
	}
	if wire.Kind(k) == "node" && ev.GetNode() != "" && w.newNodeIncident(ev) {
		ref := corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: ev.GetNode(), UID: types.UID(ev.GetNode())}
		msg := "The node ran out of memory and the kernel's OOM killer ran. " + k.GetReason()
		if err := w.write(ctx, ev, ref, ReasonNodeOOM, msg); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// newNodeIncident tells whether a node-level kill starts a new incident on
// its node (and remembers it).
func (w *Writer) newNodeIncident(ev *pb.Event) bool {
	at := w.opts.Now()
	if ev.Time != nil {
		at = ev.Time.AsTime()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	last, ok := w.lastNode[ev.GetNode()]
	w.lastNode[ev.GetNode()] = at
	if len(w.lastNode) > 10000 {
		// Bounded: forget the map rather than grow without end.
		w.lastNode = map[string]time.Time{ev.GetNode(): at}
	}
	return !ok || at.Sub(last) > w.opts.NodeIncidentGap || at.Before(last)
}

// EventName is the Event's name for one oomwatch event and object: stable,
// so that writing it twice is an AlreadyExists, not a second Event.
func EventName(ev *pb.Event, ref corev1.ObjectReference) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s/%s/%s/%d/%s/%s", ev.GetNode(), ev.GetBootId(), eventid.TypeOf(ev), ev.GetSeq(), ref.Kind, ref.Name)))
	name := ref.Name
	if len(name) > 200 {
		name = name[:200]
	}
	return name + ".oomwatch-" + hex.EncodeToString(h[:8])
}

func (w *Writer) write(ctx context.Context, ev *pb.Event, ref corev1.ObjectReference, reason, message string) error {
	if !w.limiter.TryAccept() {
		w.count(func(s *Stats) { s.RateLimited++ })
		w.log.WithFields(logrus.Fields{"reason": reason, "object": ref.Kind + "/" + ref.Name}).Debug("Kubernetes Event rate-limited")
		return nil
	}
	if len(message) > maxMessage {
		message = message[:maxMessage-3] + "..."
	}
	when := metav1.NewTime(w.opts.Now())
	if ev.Time != nil {
		when = metav1.NewTime(ev.Time.AsTime())
	}
	ns := ref.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	e := &corev1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: EventName(ev, ref), Namespace: ns},
		InvolvedObject:      ref,
		Reason:              reason,
		Message:             message,
		Type:                corev1.EventTypeWarning,
		Source:              corev1.EventSource{Component: Component, Host: ev.GetNode()},
		FirstTimestamp:      when,
		LastTimestamp:       when,
		Count:               1,
		ReportingController: "oomwatch.io/aggregator",
		ReportingInstance:   "oomwatch-aggregator",
	}
	_, err := w.client.Events(ns).Create(ctx, e, metav1.CreateOptions{})
	switch {
	case err == nil:
		w.count(func(s *Stats) { s.Written++ })
		return nil
	case apierrors.IsAlreadyExists(err):
		w.count(func(s *Stats) { s.Duplicates++ })
		return nil
	default:
		w.count(func(s *Stats) { s.Errors++ })
		return fmt.Errorf("create event %s/%s: %w", ns, e.Name, err)
	}
}
