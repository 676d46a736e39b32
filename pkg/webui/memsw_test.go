package webui

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// TestKillMemswLimit: a kill that hit the memory+swap limit shows both, and
// which one was hit; one that hit the memory limit shows that one.
func TestKillMemswLimit(t *testing.T) {
	at := time.Date(2026, 12, 6, 6, 0, 0, 0, time.UTC)
	ev := func(memsw bool) *pb.Event {
		k := &pb.OOMKill{Kind: "limit", MemcgUsageBytes: proto.Int64(31 << 30), MemcgLimitBytes: proto.Int64(32 << 30)}
		if memsw {
			k.MemswUsageBytes, k.MemswLimitBytes = proto.Int64(34<<30), proto.Int64(34<<30)
		}
		return &pb.Event{Id: "n/b/oom/1", Node: "n", Time: timestamppb.New(at), Payload: &pb.Event_Oom{Oom: k}}
	}
	got := killOf(ev(true), at, at).Memcg
	if want := "memory usage 31.0 GiB of limit 32.0 GiB; memory+swap usage 34.0 GiB of limit 34.0 GiB (the limit hit)"; got != want {
		t.Errorf("memory+swap: %q, want %q", got, want)
	}
	if got := killOf(ev(false), at, at).Memcg; got != "usage 31.0 GiB of limit 32.0 GiB" || strings.Contains(got, "swap") {
		t.Errorf("memory: %q", got)
	}
}
