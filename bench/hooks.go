package bench

import (
	"context"
	"errors"
	"io"
)

// Verdicts of a Measurement.
const (
	VerdictMet         = "met"
	VerdictNotMet      = "NOT MET"
	VerdictNotMeasured = "not measured"
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

// ErrNotImplemented is returned by the hooks nobody has filled in yet.
var ErrNotImplemented = errors.New("not implemented yet")

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
// Measurements (with verdicts against Target), or an error, ErrNotImplemented
// for one not written yet; cmd/benchtable prints either under the table.
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
			Target: "aggregator ingest events/s with 1,000 concurrent agent streams"},
		{Name: "query", Run: QueryLatency,
			Target: "aggregator query p50/p99 over 1M stored events"},
		{Name: "e2e-latency", Run: EndToEndLatency,
			Target: "kill-to-visible latency: kernel kill line to the event in `oomctl events`"},
	}
}

// AggregatorIngest is the hook for the aggregator's ingest rate: start the
// aggregator (…/aggregator, listening on 127.0.0.1:0 with a database in a
// temporary directory), open 1,000 concurrent agent streams
// (pkg/transport) each sending events as fast as acknowledged, and report
// events/s stored, with p50/p99 acknowledgement latency. Not written yet:
// the aggregator binary does not exist at the time of writing.
func AggregatorIngest(ctx context.Context, cfg HookConfig) ([]Measurement, error) {
	return nil, ErrNotImplemented
}

// QueryLatency is the hook for query latency: store 1M events (pkg/store,
// spread over 1,000 nodes, 10,000 pods and 30 days), then time the queries
// oomctl makes (events by pod, by node, incidents over a day) and report
// p50/p99 of each. Not written yet.
func QueryLatency(ctx context.Context, cfg HookConfig) ([]Measurement, error) {
	return nil, ErrNotImplemented
}

// EndToEndLatency is the hook for end-to-end latency: in the qemu guest,
// run the aggregator and the agent, cause a kill, and report the time from
// the kill line's kernel timestamp to the event's visibility in
// `oomctl events` (both clocks inside the guest). Not written yet.
func EndToEndLatency(ctx context.Context, cfg HookConfig) ([]Measurement, error) {
	return nil, ErrNotImplemented
}
