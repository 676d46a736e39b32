package webui

import (
	"testing"
	"time"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

func TestLimits(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name string
		qos  string
		r    *pb.Resources
		want string
	}{
		{name: "nothing known", want: ""},
		{name: "BestEffort has none by definition", qos: "BestEffort", want: "no request, no limit (BestEffort)"},
		{name: "from the pod spec", qos: "Burstable", r: &pb.Resources{SpecRead: true, MemoryRequestBytes: 512 * mib, MemoryLimitBytes: 2048 * mib},
			want: "request 512.0 MiB · limit 2.0 GiB"},
		{name: "from the pod spec, none set", qos: "BestEffort", r: &pb.Resources{SpecRead: true}, want: "no request · no limit"},
		{name: "runtime limit", qos: "Burstable", r: &pb.Resources{MemoryLimitBytes: 64 * mib}, want: "request not reported by the runtime · limit 64.0 MiB"},
		{name: "Guaranteed request is its limit", qos: "Guaranteed", r: &pb.Resources{MemoryLimitBytes: 64 * mib}, want: "request 64.0 MiB (= limit, Guaranteed) · limit 64.0 MiB"},
		{name: "memory.max", qos: "Burstable", r: &pb.Resources{CgroupRead: true, MemoryMaxBytes: 32 * mib}, want: "request not reported by the runtime · limit 32.0 MiB"},
		{name: "memory.max is max", qos: "Burstable", r: &pb.Resources{CgroupRead: true}, want: "request not reported by the runtime · no limit"},
	}
	for _, tt := range tests {
		if got := limitsOf(tt.qos, tt.r); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
	if got := cgroupFigures(&pb.Resources{CgroupRead: true, MemoryPeakBytes: 3 * mib, MemoryCurrentBytes: 0}); got != "cgroup: peak 3.0 MiB, after the kill 0 B" {
		t.Errorf("cgroup figures %q", got)
	}
	if got := cgroupFigures(&pb.Resources{MemoryPeakBytes: 3 * mib}); got != "" {
		t.Errorf("figures not read: %q", got)
	}
}

func TestTimes(t *testing.T) {
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		time.Second: "just now", 30 * time.Second: "30 s ago", 5 * time.Minute: "5 min ago", 3 * time.Hour: "3 h ago",
		72 * time.Hour: "3 days ago", -10 * time.Minute: "10 min from now",
	} {
		if got := age(now, now.Add(-d)); got != want {
			t.Errorf("age %v: %q, want %q", d, got, want)
		}
	}
	for d, want := range map[time.Duration]string{
		0: "one instant", 92600 * time.Microsecond: "93 ms", 48199 * time.Millisecond: "48.2 s", 125 * time.Second: "2 min 5 s",
	} {
		if got := span(d); got != want {
			t.Errorf("span %v: %q, want %q", d, got, want)
		}
	}
}
