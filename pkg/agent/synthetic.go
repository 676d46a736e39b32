package agent

import (
	"context"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/oomwatch/oomwatch/pkg/devkmsg"
	"github.com/oomwatch/oomwatch/pkg/kernlog"
)

// Synthetic kernel logs replace /dev/kmsg for load and fault tests: a
// deterministic stream of complete memcg OOM reports, one every
// SyntheticRecordsPerKill records, so that a restarted agent resumes from
// its checkpoint exactly as it would on a real kernel.

// SyntheticRecordsPerKill is how many kernel records one synthetic kill takes.
const SyntheticRecordsPerKill = 5

// SyntheticSource returns a source of kills synthetic kills at rate kills per
// second (0: as fast as possible) for node; it honours the checkpoint (after)
// and then idles until ctx ends.
func SyntheticSource(node string, kills int, rate float64) func(ctx context.Context, after int64, out chan<- devkmsg.Item) error {
	h := fnv.New32a()
	h.Write([]byte(node))
	salt := h.Sum32()
	return func(ctx context.Context, after int64, out chan<- devkmsg.Item) error {
		defer close(out)
		boot := time.Now().Add(-time.Hour)
		var tick <-chan time.Time
		if rate > 0 {
			t := time.NewTicker(time.Duration(float64(time.Second) / rate))
			defer t.Stop()
			tick = t.C
		}
		last := int64(kills) * SyntheticRecordsPerKill
		for seq := after + 1; seq <= last; seq++ {
			if seq < 1 {
				continue
			}
			kill := int((seq - 1) / SyntheticRecordsPerKill)
			line := int((seq - 1) % SyntheticRecordsPerKill)
			if line == 0 && tick != nil {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-tick:
				}
			}
			mono := time.Duration(seq) * time.Millisecond
			rec := kernlog.Record{Seq: seq, Mono: mono, HasMono: true, Wall: boot.Add(mono), Priority: 4,
				Message: []byte(syntheticLine(salt, kill, line))}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case out <- devkmsg.Item{Record: rec}:
			}
		}
		<-ctx.Done()
		return ctx.Err()
	}
}

func syntheticLine(salt uint32, kill, line int) string {
	pid := 1000 + kill
	pod := fmt.Sprintf("%08x-0000-4000-8000-%012x", salt, kill)
	ctr := fmt.Sprintf("%032x%032x", salt, kill)
	cg := "/kubepods/burstable/pod" + pod + "/" + ctr
	switch line {
	case 0:
		return fmt.Sprintf("synth%d invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=900", kill)
	case 1:
		return fmt.Sprintf("CPU: 0 PID: %d Comm: synth%d Not tainted 6.1.0 #1", pid, kill)
	case 2:
		return fmt.Sprintf("oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=%s,task_memcg=%s,task=synth%d,pid=%d,uid=0", cg, cg, kill, pid)
	case 3:
		return fmt.Sprintf("Memory cgroup out of memory: Killed process %d (synth%d) total-vm:65536kB, anon-rss:32768kB, file-rss:4kB, shmem-rss:0kB, UID:0 pgtables:100kB oom_score_adj:900", pid, kill)
	}
	return fmt.Sprintf("synthetic filler record after kill %d", kill)
}
