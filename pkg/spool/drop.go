package spool

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// CauseOverflow is the Loss cause of events the spool dropped because it was
// full.
const CauseOverflow = "spool-overflow"

// DropReport summarises the pending events the spool dropped, oldest first,
// to stay within its bounds, since the drops were last reported with
// TakeDropped. It is kept on disk with the events, so it survives restarts.
type DropReport struct {
	// Count is the number of events dropped.
	Count int64 `json:"count"`
	// FirstTime and LastTime are the earliest and latest event times among
	// the dropped events (zero when none had a time).
	FirstTime time.Time `json:"first_time,omitzero"`
	LastTime  time.Time `json:"last_time,omitzero"`
	// Types counts the dropped events per type (oom, loss, exit).
	Types map[string]int64 `json:"types,omitempty"`
	// Boots says which sequence numbers were dropped, per boot, in the
	// order the boots were first dropped.
	Boots []BootDrops `json:"boots,omitempty"`
}

// BootDrops is the part of a DropReport about one boot.
type BootDrops struct {
	BootID string `json:"boot_id"`
	// Count is the number of events of this boot dropped.
	Count int64 `json:"count"`
	// FirstSeq and LastSeq are the smallest and largest sequence numbers
	// dropped (of any type).
	FirstSeq int64 `json:"first_seq"`
	LastSeq  int64 `json:"last_seq"`
}

// add counts one dropped event; t is its time in Unix nanoseconds, 0 when
// unknown.
func (r *DropReport) add(k Key, t int64) {
	r.Count++
	if r.Types == nil {
		r.Types = map[string]int64{}
	}
	r.Types[k.Type]++
	if t != 0 {
		tt := time.Unix(0, t).UTC()
		if r.FirstTime.IsZero() || tt.Before(r.FirstTime) {
			r.FirstTime = tt
		}
		if r.LastTime.IsZero() || tt.After(r.LastTime) {
			r.LastTime = tt
		}
	}
	for i := range r.Boots {
		b := &r.Boots[i]
		if b.BootID == k.BootID {
			b.Count++
			b.FirstSeq = min(b.FirstSeq, k.Seq)
			b.LastSeq = max(b.LastSeq, k.Seq)
			return
		}
	}
	r.Boots = append(r.Boots, BootDrops{BootID: k.BootID, Count: 1, FirstSeq: k.Seq, LastSeq: k.Seq})
}

// Add counts ev as dropped, for reports of events lost elsewhere than in
// the spool (the agent's in-memory queue) with the same figures.
func (r *DropReport) Add(ev *pb.Event) {
	var t int64
	if ev.GetTime() != nil {
		t = unixNano(ev.GetTime().AsTime())
	}
	r.add(KeyOf(ev), t)
}

// Merge adds the drops of d to r.
func (r *DropReport) Merge(d DropReport) { r.merge(d.clone()) }

// merge adds the drops of d to r.
func (r *DropReport) merge(d DropReport) {
	if d.Count == 0 {
		return
	}
	r.Count += d.Count
	for t, n := range d.Types {
		if r.Types == nil {
			r.Types = map[string]int64{}
		}
		r.Types[t] += n
	}
	if !d.FirstTime.IsZero() && (r.FirstTime.IsZero() || d.FirstTime.Before(r.FirstTime)) {
		r.FirstTime = d.FirstTime
	}
	if !d.LastTime.IsZero() && (r.LastTime.IsZero() || d.LastTime.After(r.LastTime)) {
		r.LastTime = d.LastTime
	}
next:
	for _, db := range d.Boots {
		for i := range r.Boots {
			b := &r.Boots[i]
			if b.BootID == db.BootID {
				b.Count += db.Count
				b.FirstSeq = min(b.FirstSeq, db.FirstSeq)
				b.LastSeq = max(b.LastSeq, db.LastSeq)
				continue next
			}
		}
		r.Boots = append(r.Boots, db)
	}
}

// clone returns a deep copy of r.
func (r DropReport) clone() DropReport {
	c := r
	if r.Types != nil {
		c.Types = make(map[string]int64, len(r.Types))
		for t, n := range r.Types {
			c.Types[t] = n
		}
	}
	c.Boots = append([]BootDrops(nil), r.Boots...)
	return c
}

// String describes the drops in one sentence.
func (r DropReport) String() string {
	if r.Count == 0 {
		return "no events dropped from the spool"
	}
	return r.Describe("dropped from the agent's spool (full: the aggregator did not acknowledge them in time)")
}

// Describe describes the events counted in r in one sentence: "<count>
// events <what>", then their types, times and sequence numbers.
func (r DropReport) Describe(what string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d events %s", r.Count, what)
	if len(r.Types) > 0 {
		types := make([]string, 0, len(r.Types))
		for t := range r.Types {
			types = append(types, t)
		}
		sort.Strings(types)
		for i, t := range types {
			types[i] = fmt.Sprintf("%s %d", t, r.Types[t])
		}
		fmt.Fprintf(&b, ": %s", strings.Join(types, ", "))
	}
	if !r.FirstTime.IsZero() {
		fmt.Fprintf(&b, "; event times %s to %s", r.FirstTime.Format(time.RFC3339), r.LastTime.Format(time.RFC3339))
	}
	for _, bd := range r.Boots {
		fmt.Fprintf(&b, "; boot %s: %d events, seq %d to %d", bd.BootID, bd.Count, bd.FirstSeq, bd.LastSeq)
	}
	return b.String()
}

// Loss returns the Loss event that reports r to the aggregator, with cause
// CauseOverflow, for use in the function given to TakeDropped. seq must not
// repeat within the boot for loss events: now.UnixNano() is a good choice (it
// cannot meet a kernel-gap loss, whose seq is a kernel record number).
func (r DropReport) Loss(node, bootID string, seq int64, now time.Time) *pb.Event {
	return r.LossEvent(CauseOverflow, r.String(), node, bootID, seq, now)
}

// LossEvent returns a Loss event that reports r with cause and detail; seq
// as for Loss.
func (r DropReport) LossEvent(cause, detail, node, bootID string, seq int64, now time.Time) *pb.Event {
	l := &pb.Loss{Cause: cause, Lost: r.Count, Detail: detail}
	if !r.FirstTime.IsZero() {
		l.From = timestamppb.New(r.FirstTime)
		l.To = timestamppb.New(r.LastTime)
	}
	return &pb.Event{Node: node, BootId: bootID, Seq: seq, Time: timestamppb.New(now), Payload: &pb.Event_Loss{Loss: l}}
}
