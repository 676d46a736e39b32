package agent

import (
	"context"
	"testing"
	"time"

	"github.com/euank/go-kmsg-parser/kmsgparser"
	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/devkmsg"
)

// ordinaryLines are kernel messages of the kinds a busy node prints, none
// of them part of an OOM report, as kmsgparser delivers them (with the
// trailing newline, some with dictionary lines).
var ordinaryLines = []string{
	"cni0: port 12(veth3f2a9c1d) entered blocking state\n SUBSYSTEM=net\n DEVICE=n12\n",
	"device veth3f2a9c1d entered promiscuous mode\n",
	`audit: type=1400 audit(1700123456.123:4567): apparmor="DENIED" operation="open" class="file" profile="cri-containerd.apparmor.d" name="/proc/123/mounts" pid=4567 comm="runc" requested_mask="r" denied_mask="r" fsuid=0 ouid=0` + "\n",
	"audit: type=1334 audit(1700123456.123:4567): prog-id=1234 op=LOAD\n",
	"EXT4-fs (nvme0n1p1): mounted filesystem 1234abcd-12ab-34cd-56ef-1234567890ab with ordered data mode. Quota mode: none.\n",
	"usb 1-2: new high-speed USB device number 7 using xhci_hcd\n",
	"IPv6: ADDRCONF(NETDEV_CHANGE): veth3f2a9c1d: link becomes ready\n",
	"eth0: renamed from tmp01234\n",
}

// BenchmarkRunReaderOrdinary measures what RunReader does for one ordinary
// record after kmsgparser's channel, in one goroutine: the lock, Take and
// the pipeline's bookkeeping. It is the part of the live path that
// oomwatch owns (bench/ measures the whole path against cAdvisor's).
func BenchmarkRunReaderOrdinary(b *testing.B) {
	boot := time.Now().Add(-time.Hour).Truncate(time.Second)
	parser := &itemParser{boot: boot, closed: make(chan struct{})}
	src := devkmsg.New(logrus.NewEntry(logrus.New()), devkmsg.Options{
		After:     -1,
		BootTime:  boot,
		NewParser: func() (kmsgparser.Parser, error) { return parser, nil },
		Oldest:    func() (int64, int64, error) { return 0, 0, nil },
		Newest:    func() (int64, error) { return -1, nil },
	})
	ctx := context.Background()
	r, err := src.Open(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	var n int64
	p := NewPipeline(PipelineConfig{Node: "node-a", BootID: "boot-1", Sink: &fakeSink{}, Check: &fakeCheck{},
		Proc: fakeProc(b, "5.0", nil), Records: func(k int) { n += int64(k) }}, logrus.NewEntry(logrus.New()))
	msgs := make([]kmsgparser.Message, 1024)
	for i := range msgs {
		msgs[i] = kmsgparser.Message{Priority: 6, Message: ordinaryLines[i%len(ordinaryLines)]}
	}
	p.mu.Lock()
	p.tick = time.NewTicker(time.Hour)
	p.mu.Unlock()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := msgs[i%len(msgs)]
		m.SequenceNumber = i
		m.Timestamp = boot.Add(time.Duration(i) * time.Microsecond)
		p.mu.Lock()
		gap, rec, err := r.Take(ctx, m, true)
		if err == nil {
			err = p.take(ctx, gap, rec, 0)
		}
		p.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
	}
}
