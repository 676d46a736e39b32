package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/euank/go-kmsg-parser/kmsgparser"
	"github.com/google/cadvisor/utils/oomparser"
	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/devkmsg"
	"github.com/oomwatch/oomwatch/pkg/oom"
)

// Live runs oomwatch's live path, cAdvisor's OOM parser and NPD's OOMKilling
// rule side by side on the real /dev/kmsg, each with its own reader, from
// the oldest record on, as the three daemons would run on one node. It is
// what cmd/peerwatch runs inside the qemu guest.
type Live struct {
	mu     sync.Mutex
	ow     oomwatchOutput
	ca     cadvisorOutput
	npd    npdOutput
	gaps   int64
	cancel context.CancelFunc
	owDone chan struct{}
	npdP   kmsgparser.Parser
	npdEnd chan struct{}
}

// LiveResult is what Live's parsers reported, keyed by parser name.
type LiveResult struct {
	Findings map[string][]Finding `json:"findings"`
	// Lost counts records devkmsg reported lost (kernel log overwritten
	// before it was read); the peers' readers lose them silently.
	Lost int64 `json:"lost"`
}

// StartLive starts the three readers. log receives devkmsg's warnings.
func StartLive(ctx context.Context, log *logrus.Entry) (*Live, error) {
	ctx, cancel := context.WithCancel(ctx)
	l := &Live{cancel: cancel, owDone: make(chan struct{}), npdEnd: make(chan struct{})}

	// cAdvisor: exactly what its manager does.
	quietKlog.Do(silenceKlog)
	op, err := oomparser.New()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("cadvisor oomparser: %w", err)
	}
	ch := make(chan *oomparser.OomInstance, 10)
	go op.StreamOoms(ch)
	go func() {
		for o := range ch {
			l.mu.Lock()
			l.ca = append(l.ca, o)
			l.mu.Unlock()
		}
	}()

	// NPD: its kmsg watcher and monitor.
	p, err := kmsgparser.NewParser()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("kmsgparser: %w", err)
	}
	l.npdP = p
	mon, err := newNPDMonitor(false)
	if err != nil {
		cancel()
		return nil, err
	}
	boot, err := devkmsg.BootTime()
	if err != nil {
		cancel()
		return nil, err
	}
	go func() {
		defer close(l.npdEnd)
		// NPD's lookback (5m) exceeds the guest's uptime: it starts at boot.
		mon.run(p, boot.Add(-time.Second), func(e npdEvent) {
			l.mu.Lock()
			l.npd = append(l.npd, e)
			l.mu.Unlock()
		})
	}()

	// oomwatch: a devkmsg.Reader feeding the Assembler in one goroutine,
	// as the agent's pipeline runs them.
	r, err := devkmsg.New(log, devkmsg.Options{After: -1}).Open(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	stopReader := context.AfterFunc(ctx, r.Stop)
	go func() {
		defer close(l.owDone)
		defer stopReader()
		defer r.Close()
		a := oom.NewAssembler(oom.Options{}, func(r *oom.Report) {
			l.mu.Lock()
			l.ow = append(l.ow, r)
			l.mu.Unlock()
		})
		defer a.Flush()
		for {
			m, ok := <-r.C()
			gap, rec, err := r.Take(ctx, m, ok)
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					log.WithError(err).Error("devkmsg stopped")
				}
				return
			}
			if gap != nil {
				l.mu.Lock()
				l.gaps += gap.Lost
				l.mu.Unlock()
			}
			if rec != nil {
				a.Feed(rec)
			}
		}
	}()
	return l, nil
}

// Stop ends oomwatch's and NPD's readers and returns every parser's
// findings. cAdvisor's StreamOoms cannot be stopped (it owns its parser):
// what it reported so far is taken.
func (l *Live) Stop() LiveResult {
	l.cancel()
	<-l.owDone
	_ = l.npdP.Close()
	select {
	case <-l.npdEnd:
	case <-time.After(5 * time.Second):
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return LiveResult{
		Findings: map[string][]Finding{
			OomwatchLive{}.Name(): l.ow.Findings(),
			CAdvisor{}.Name():     l.ca.Findings(),
			npdLiveName:           l.npd.Findings(),
		},
		Lost: l.gaps,
	}
}

// npdLiveName is NPD's row on a real kernel: both matchers find the same
// kill lines.
const npdLiveName = "NPD OOMKilling"
