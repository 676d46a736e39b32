package store

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/s2"
	"google.golang.org/protobuf/proto"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// fixtureKills returns the protobuf encodings, larger than compressAbove,
// of the OOM kills of the real kernel logs in package analysis's
// testdata, each as an agent on a Kubernetes node sends it.
func fixtureKills(tb testing.TB) [][]byte {
	tb.Helper()
	var logs []string
	for _, glob := range []string{"*.kmsg", "*.txt"} {
		m, err := filepath.Glob(filepath.Join("..", "analysis", "testdata", glob))
		if err != nil {
			tb.Fatal(err)
		}
		logs = append(logs, m...)
	}
	var out [][]byte
	for _, path := range logs {
		f, err := os.Open(path)
		if err != nil {
			tb.Fatal(err)
		}
		_, err = analysis.ReadLog(f, analysis.StreamOptions{}, func(e analysis.Event) {
			ev := &pb.Event{Node: "ip-10-0-1-23.ec2.internal", BootId: "6a1e0c52-95c4-4d7e-8f6b-0b3d7f1c2e91", Seq: 123456,
				Payload: &pb.Event_Oom{Oom: wire.OOMKill(e)}}
			raw, err := proto.Marshal(ev)
			if err != nil {
				tb.Fatal(err)
			}
			if len(raw) > compressAbove {
				out = append(out, raw)
			}
		})
		f.Close()
		if err != nil {
			tb.Fatalf("%s: %v", path, err)
		}
	}
	if len(out) < 10 {
		tb.Fatalf("%d kills in the fixture logs", len(out))
	}
	return out
}

// TestDict1Gains: on real kernel reports (the dictionary holds the
// kernel's and kubelet's vocabulary, not text of these logs), the
// dictionary makes the stored rows smaller than plain S2 does, and what
// pack keeps reads back.
func TestDict1Gains(t *testing.T) {
	var plain, dict int
	kills := fixtureKills(t)
	for _, raw := range kills {
		plain += len(s2.Encode(nil, raw))
		packed := pack(raw)
		dict += len(packed)
		back, err := unpack(packed)
		if err != nil || string(back) != string(raw) {
			t.Fatalf("pack then unpack: %v", err)
		}
	}
	t.Logf("%d kills: plain S2 %d B, with dict1 %d B per kill (%.0f%%)", len(kills), plain/len(kills), dict/len(kills), 100*float64(dict)/float64(plain))
	if dict >= plain*9/10 {
		t.Errorf("dict1 keeps %d B against plain S2's %d: less than 10%% saved", dict, plain)
	}
}

// BenchmarkPackKills compresses the fixture logs' kills with plain S2 and
// with dict1 (bytes/kill: the row's data).
func BenchmarkPackKills(b *testing.B) {
	kills := fixtureKills(b)
	for _, c := range []struct {
		name string
		f    func([]byte) []byte
	}{
		{"s2", func(raw []byte) []byte { return s2.Encode(nil, raw) }},
		{"s2+dict1", func(raw []byte) []byte { return dict1.Encode(nil, raw) }},
		{"pack", pack},
	} {
		b.Run(c.name, func(b *testing.B) {
			var n, size int
			for b.Loop() {
				for _, raw := range kills {
					size += len(c.f(raw))
					n++
				}
			}
			b.ReportMetric(float64(size)/float64(n), "bytes/kill")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/kill")
		})
	}
}
