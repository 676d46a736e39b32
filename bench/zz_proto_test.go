package bench

import (
	"context"
	"io"
	"testing"

	"github.com/euank/go-kmsg-parser/kmsgparser"
	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/devkmsg"
	"github.com/oomwatch/oomwatch/pkg/oom"
)

type protoLoop struct{ mode int }

func (p protoLoop) Name() string { return []string{"full", "nofeed", "recvonly"}[p.mode] }
func (p protoLoop) Parse(in *Input) (Output, error) {
	last, _ := lastSeq(in)
	var out oomwatchOutput
	a := oom.NewAssembler(oom.Options{}, func(r *oom.Report) { out = append(out, r) })
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	src := devkmsg.New(logrus.NewEntry(logger), devkmsg.Options{
		After: -1, BootTime: bootTime,
		NewParser: func() (kmsgparser.Parser, error) {
			p, _ := newFrontEnd(newMemDevice(in, true), bootTime)
			return p, nil
		},
		Oldest: func() (int64, int64, error) { return firstRecord(in) },
		Newest: func() (int64, error) { return last, nil },
	})
	ctx := context.Background()
	r, _ := src.Open(ctx)
	defer r.Close()
	for done := false; !done; {
		m, ok := <-r.C()
		if p.mode == 2 {
			done = int64(m.SequenceNumber) == last
			continue
		}
		_, rec, _ := r.Take(ctx, m, ok)
		if rec != nil {
			if p.mode == 0 {
				a.Feed(rec)
			}
			done = rec.Seq == last
		}
	}
	a.Flush()
	return out, nil
}

func BenchmarkProto(b *testing.B) {
	for _, in := range benchInputs()[:1] {
		for _, p := range []Parser{protoLoop{0}, protoLoop{1}, protoLoop{2}, CAdvisor{}} {
			var out Output
			var err error
			b.Run(in.Name+"/"+p.Name(), Benchmark(p, in, &out, &err))
		}
	}
}
