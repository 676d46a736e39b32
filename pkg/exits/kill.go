package exits

import (
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/oomwatch/oomwatch/pkg/cri"
	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// kill is what the Joiner keeps of one OOM kill event.
type kill struct {
	id      string // "<node>/<boot>/oom/<seq>"
	at      time.Time
	arrived time.Time
	mono    *durationpb.Duration
	kind    string
	scope   string
	memcg   string
	limit   int64 // the memcg limit the kernel printed; 0 when unknown
	// victims holds the first victim of each distinct workload; counts the
	// victims of each.
	victims    []*pb.Process
	counts     []int
	group      []bool // the kept victim was a memory.oom.group kill
	culprit    *pb.Culprit
	collateral bool
	// verdict is the kill's collateral verdict (analysis.Collateral*).
	verdict  string
	evidence []string
}

// newKill keeps what the Joiner needs of an OOM kill event.
func newKill(ev *pb.Event, now time.Time) *kill {
	o := ev.GetOom()
	k := &kill{
		id:         eventid.String(ev),
		at:         now,
		arrived:    now,
		kind:       wire.Kind(o),
		scope:      wire.Scope(o),
		memcg:      o.GetOomMemcg(),
		limit:      o.GetMemcgLimitBytes(),
		collateral: o.GetCollateral(),
		verdict:    wire.Verdict(o),
		evidence:   Evidence(o.GetLines()),
	}
	if ev.GetTime() != nil {
		k.at = ev.GetTime().AsTime()
	}
	if ev.GetMonotonic() != nil {
		k.mono = proto.Clone(ev.GetMonotonic()).(*durationpb.Duration)
	}
	if c := o.GetCulprit(); c != nil {
		k.culprit = proto.Clone(c).(*pb.Culprit)
	}
	for i, v := range o.GetVictims() {
		w := v.GetWorkload()
		dup := false
		for x, kept := range k.victims {
			if sameWorkload(kept.GetWorkload(), w) {
				k.counts[x]++
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		k.victims = append(k.victims, proto.Clone(v).(*pb.Process))
		k.counts = append(k.counts, 1)
		k.group = append(k.group, i > 0 || v.GetGroupMember())
	}
	return k
}

func sameWorkload(a, b *pb.Workload) bool {
	return a.GetContainerId() == b.GetContainerId() && a.GetCgroup() == b.GetCgroup()
}

// victimIn returns the index of the kept victim that ran in container id,
// or -1.
func (k *kill) victimIn(id string) int {
	for i, v := range k.victims {
		w := v.GetWorkload()
		if normID(w.GetContainerId()) == id {
			return i
		}
		// The runtime's ID in the cgroup path, for victims whose workload
		// was not parsed into a container (an unusual cgroup layout).
		if len(id) >= 12 && strings.Contains(strings.ToLower(w.GetCgroup()), id) {
			return i
		}
	}
	return -1
}

// match returns the OOM kill that explains the exit c: a kill of a process
// in c (by container ID, or by a cgroup path holding the ID) stamped
// within Window before c finished; the latest one when several are. It
// returns the kill and the index of the victim in c. j.mu is held.
func (j *Joiner) match(c cri.Container) (*kill, int) {
	fin := finishedAt(c, time.Time{})
	var best *kill
	bestV := -1
	for _, k := range j.kills {
		v := k.victimIn(c.ID)
		if v < 0 {
			continue
		}
		if !fin.IsZero() && (k.at.Before(fin.Add(-j.opts.Window)) || k.at.After(fin.Add(clockSkew))) {
			continue
		}
		if best == nil || k.at.After(best.at) {
			best, bestV = k, v
		}
	}
	return best, bestV
}

// expireKills forgets kills too old to explain any exit still to come.
// j.mu is held.
func (j *Joiner) expireKills(now time.Time) {
	keepFor := j.opts.Window + j.opts.Hold + clockSkew
	n := 0
	for n < len(j.kills) && now.Sub(j.kills[n].arrived) > keepFor {
		n++
	}
	clear(j.kills[:n])
	j.kills = j.kills[n:]
}
