package vocab

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

func TestWarningFigures(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		kind pb.WarningKind
		f    *pb.WarningFigures
		want string
	}{
		{pb.WarningKind_WARNING_KIND_NEAR_LIMIT, &pb.WarningFigures{WorkingSetBytes: 60 * mib, LimitBytes: 64 * mib, Ratio: 0.93}, "93% of 64.0 MiB"},
		{pb.WarningKind_WARNING_KIND_LIMIT_RECLAIM, &pb.WarningFigures{LimitBytes: 64 * mib, Ratio: 0.97, MaxEventsDelta: 12}, "97% of 64.0 MiB, 12 at the limit"},
		{pb.WarningKind_WARNING_KIND_FORECAST, &pb.WarningFigures{TimeLeft: durationpb.New(38 * time.Second), GrowthBytesPerSecond: mib}, "38s left at 1.0 MiB/s"},
		{pb.WarningKind_WARNING_KIND_FORECAST, &pb.WarningFigures{WorkingSetBytes: 40 * mib}, "40.0 MiB"},
		{pb.WarningKind_WARNING_KIND_PRESSURE, &pb.WarningFigures{PsiFullAvg10: 23.4}, "PSI 23%"},
		{pb.WarningKind_WARNING_KIND_NODE_LOW, &pb.WarningFigures{MemAvailableBytes: 180 * mib, MemTotalBytes: 2048 * mib}, "180.0 MiB free of 2.0 GiB"},
		{pb.WarningKind_WARNING_KIND_NODE_LOW, nil, "-"},
		{pb.WarningKind_WARNING_KIND_UNSPECIFIED, &pb.WarningFigures{}, "-"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if got := WarningFigures(tc.kind, tc.f); got != tc.want {
				t.Errorf("WarningFigures(%v) = %q, want %q", tc.kind, got, tc.want)
			}
		})
	}
}

func TestPrecedingSentence(t *testing.T) {
	w := &pb.PrecedingWarning{WarningKind: pb.WarningKind_WARNING_KIND_FORECAST, Cgroup: "/kubepods/pod1/c1",
		Figures: &pb.WarningFigures{LimitBytes: 64 << 20, WorkingSetBytes: 40 << 20, Ratio: 0.63, GrowthBytesPerSecond: 1 << 20,
			TimeLeft: durationpb.New(40 * time.Second)}}
	named := &pb.Workload{Namespace: "shop", PodName: "cart-7d9", ContainerName: "api", PodUid: "u1"}
	for _, tc := range []struct {
		name string
		w    *pb.PrecedingWarning
		who  *pb.Workload
		want string
	}{
		{"named", w, named, "container api (pod shop/cart-7d9) will reach its 64.0 MiB limit in about 40s: working set 40.0 MiB (63%), growing 1.0 MiB/s"},
		{"by cgroup", w, nil, "cgroup /kubepods/pod1/c1 will reach its 64.0 MiB limit in about 40s: working set 40.0 MiB (63%), growing 1.0 MiB/s"},
		{"the node", &pb.PrecedingWarning{WarningKind: pb.WarningKind_WARNING_KIND_PRESSURE, Figures: &pb.WarningFigures{PsiFullAvg10: 23}}, nil,
			"the node is stalled on memory: all its tasks waited 23.0% of the last 10 s (PSI full avg10)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := PrecedingSentence(tc.w, tc.who); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}
