package bench

import (
	"context"
	"io"
)

// Verdicts of a Measurement.
const (
	VerdictMet         = "met"
	VerdictNotMet      = "NOT MET"
	VerdictNotMeasured = "not measured"
	// VerdictMeasured marks a figure asked for without a target.
	VerdictMeasured = "measured"
)

func verdict(ok bool) string {
	if ok {
		return VerdictMet
	}
	return VerdictNotMet
}

// Measurement is one figure set against a target, printed under the table.
type Measurement struct {
	Name    string
	Value   string
	Target  string
	Verdict string
}

// HookConfig is what every hook gets.
type HookConfig struct {
	// Short asks for a quick run that only proves the hook works.
	Short bool
	// RepoRoot is the oomwatch repository root (the product module), for
	// hooks that build its binaries.
	RepoRoot string
	// ArtifactDir, when set, keeps what the VM hooks brought back (console,
	// exported files) in a directory per hook.
	ArtifactDir string
	// Log receives progress lines.
	Log io.Writer
}

// Hook measures the rows of one target the issue "Performance measured
// against the peers" asks for beyond record throughput. A hook returns its
// Measurements (with verdicts against Target), or an error; cmd/benchtable
// prints either under the table.
type Hook struct {
	// Name is the -hooks flag value that selects it.
	Name string
	// Target states the goal, for the not-measured line.
	Target string
	// NeedsVM tells that the hook boots the qemu guest (test/e2e/vm).
	NeedsVM bool
	Run     func(ctx context.Context, cfg HookConfig) ([]Measurement, error)
}

// Hooks returns the hooks, in the order of the issue.
func Hooks() []Hook {
	return []Hook{
		{Name: "detect-vm", NeedsVM: true, Run: nil,
			Target: "which peer finds which real kernel OOM kill (6.1 in qemu): see the real-kernel rows"},
		{Name: "footprint", NeedsVM: true, Run: AgentFootprint,
			Target: "agent RSS < 20 MiB and CPU < 0.1% of a core idle for 60 s; RSS during a 10,000-task OOM burst"},
		{Name: "ingest", Run: AggregatorIngest,
			Target: "aggregator ingest >= 20,000 events/s with 1,000 concurrent agent streams"},
		{Name: "query", Run: QueryLatency,
			Target: "aggregator query p99 < 50 ms over 1M stored events, by namespace and time"},
		{Name: "kmsg-flood", NeedsVM: true, Run: KmsgFlood,
			Target: "the live path's CPU per record <= 0.8x cAdvisor's where read(2) is paid: a flooded /dev/kmsg in qemu, against a raw read loop"},
		{Name: "e2e-latency", NeedsVM: true, Run: EndToEndLatency,
			Target: "p50/p99 from the kernel's last record of a kill to its event listed by ListEvents"},
	}
}
