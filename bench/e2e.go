package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/oomwatch/oomwatch/test/e2e/scenario"
	"github.com/oomwatch/oomwatch/test/e2e/vm"
)

// E2EScenario is the e2e scenario (test/e2e/scenario) whose kill the
// e2e-latency hook repeats: a container's memory.max is hit, one kill.
const E2EScenario = "container-limit"

// E2EKills is how many kills the e2e-latency hook times in one guest.
const E2EKills = 30

// e2eSample is one line of cmd/e2eprobe's output.
type e2eSample struct {
	Kill        int    `json:"kill"`
	ID          string `json:"id"`
	EndSeq      int64  `json:"end_seq"`
	EndWall     int64  `json:"end_wall_ns"`
	Listed      int64  `json:"listed_ns"`
	Latency     int64  `json:"latency_ns"`
	Received    int64  `json:"received_ns"`
	Polls       int    `json:"polls"`
	OffsetError int64  `json:"offset_error_ns"`
	AgentSkew   *int64 `json:"agent_skew_ns"`
	Extra       int    `json:"extra_events"`
}

// E2EResult is what EndToEndLatency measured.
type E2EResult struct {
	Samples []e2eSample
	// Latency is each kill's, sorted. Its parts, each sorted: Read, from
	// the kernel's record to the agent's reading it (the agent logs when it
	// read the report's last record); Sent, from there to the aggregator's
	// receive time (the agent closes the report, spools, sends); Listed,
	// from there to the event listed (commit, acknowledgement, query).
	Latency, Read, Sent, Listed []time.Duration
	// MaxOffsetError bounds the clock conversion's error; MaxSkew is the
	// largest difference between the agent's and the probe's conversion.
	MaxOffsetError, MaxSkew time.Duration
	Kernel                  string
}

// EndToEndLatency measures the time from the kernel's last record of an
// OOM report to the event being listed by the aggregator: in one qemu
// guest (Debian's 6.1 cloud kernel, test/e2e/vm) the aggregator and the
// agent start as in the e2e tests (scenario.Prelude), then cmd/e2eprobe
// repeats E2EScenario's kill E2EKills times, one after the other; for each
// it waits for the event (Watch) and calls ListEvents until the event is
// listed. Both clocks are the guest's: the kernel's record timestamps are
// put on the wall clock by a marker record written just before each kill.
func EndToEndLatency(ctx context.Context, cfg HookConfig) ([]Measurement, error) {
	kills := E2EKills
	if cfg.Short {
		kills = 3
	}
	r, err := RunE2E(ctx, cfg, kills)
	if err != nil {
		return nil, err
	}
	p := func(l []time.Duration) string {
		return fmt.Sprintf("p50 %s, p99 %s (min %s, max %s)", ms(quantile(l, 0.5)), ms(quantile(l, 0.99)), ms(l[0]), ms(l[len(l)-1]))
	}
	m := Measurement{
		Name: fmt.Sprintf("e2e latency, kernel's last record of the report -> event listed by ListEvents (%s kill x%d, %s in qemu TCG)",
			E2EScenario, len(r.Latency), r.Kernel),
		Value: fmt.Sprintf("%s; its parts (p50, p99): kernel record -> agent read %s, %s; -> aggregator received %s, %s; -> listed %s, %s; clock conversion within %s (the agent's own, which dates the event, differs by up to %s)",
			p(r.Latency), ms(quantile(r.Read, 0.5)), ms(quantile(r.Read, 0.99)), ms(quantile(r.Sent, 0.5)), ms(quantile(r.Sent, 0.99)),
			ms(quantile(r.Listed, 0.5)), ms(quantile(r.Listed, 0.99)), ms(r.MaxOffsetError), ms(r.MaxSkew)),
		Target:  "report p50/p99 (the issue sets no figure)",
		Verdict: VerdictMeasured,
	}
	if len(r.Latency) < kills {
		m.Verdict = VerdictNotMet
		m.Value += fmt.Sprintf("; only %d of %d kills were listed", len(r.Latency), kills)
	}
	return []Measurement{m}, nil
}

// RunE2E boots the guest and times kills.
func RunE2E(ctx context.Context, cfg HookConfig, kills int) (*E2EResult, error) {
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", args...)
		}
	}
	assets, err := vm.EnsureAssets(ctx, logf)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "oomwatch-bench-e2e-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	logf("e2e-latency: building agent, aggregator, oomctl, hog and e2eprobe")
	files := map[string]vm.File{}
	for name, b := range map[string]struct{ mod, pkg string }{
		"agent":      {cfg.RepoRoot, "./agent"},
		"aggregator": {cfg.RepoRoot, "./aggregator"},
		"oomctl":     {cfg.RepoRoot, "./oomctl"},
		"hog":        {cfg.RepoRoot, "./test/e2e/hog"},
		"e2eprobe":   {filepath.Join(cfg.RepoRoot, "bench"), "./cmd/e2eprobe"},
	} {
		p, err := buildStripped(ctx, b.mod, dir, b.pkg)
		if err != nil {
			return nil, err
		}
		files["/bin/"+name] = vm.File{HostPath: p}
	}
	script, err := e2eScript(kills)
	if err != nil {
		return nil, err
	}
	logf("e2e-latency: booting %s, %d kills", assets.KernelPackage, kills)
	res, err := vm.Run(ctx, vm.Config{
		Assets:   assets,
		Files:    files,
		Script:   script,
		MemoryMB: 384,
		CPUs:     2,
		Timeout:  15 * time.Minute,
	})
	if res != nil {
		saveArtifacts(cfg.ArtifactDir, "e2e-latency", res, logf)
	}
	if err != nil {
		return nil, err
	}
	raw, err := res.File("latency.jsonl")
	if err != nil {
		probe, _ := res.File("probe.log")
		return nil, fmt.Errorf("latency.jsonl: %w: %s", err, lastLines(probe, 5))
	}
	r, err := parseE2E(raw)
	if err != nil {
		return nil, err
	}
	agentLog, err := res.File("agent.log")
	if err != nil {
		return nil, err
	}
	if err := r.agentTimes(agentLog); err != nil {
		return nil, err
	}
	r.Kernel = assets.KernelPackage
	if len(r.Latency) == 0 {
		probe, _ := res.File("probe.log")
		return nil, fmt.Errorf("no kill timed: %s", lastLines(probe, 5))
	}
	logf("e2e-latency: p50 %s, p99 %s", ms(quantile(r.Latency, 0.5)), ms(quantile(r.Latency, 0.99)))
	return r, nil
}

// e2eScript is the guest script: the e2e prelude (aggregator and agent),
// then the probe repeating E2EScenario's kill.
func e2eScript(kills int) (string, error) {
	var kill string
	for _, sc := range scenario.All() {
		if sc.Name == E2EScenario {
			kill = sc.Script
		}
	}
	if kill == "" {
		return "", fmt.Errorf("no e2e scenario %q", E2EScenario)
	}
	var b strings.Builder
	b.WriteString(scenario.Prelude())
	fmt.Fprintf(&b, "cat > /tmp/kill.sh <<'KILL'\n%s\n%s\nKILL\n", scenario.Helpers, kill)
	fmt.Fprintf(&b, `
e2eprobe -server %s -node e2e-node -n %d -kill 'sh /tmp/kill.sh' -out /tmp/latency.jsonl 2>/tmp/probe.log
status=$?
export_file latency.jsonl /tmp/latency.jsonl
export_file probe.log /tmp/probe.log
export_file agent.log /tmp/agent.log
export_file aggregator.log /tmp/aggregator.log
exit $status
`, scenario.Server, kills)
	return b.String(), nil
}

// buildStripped is buildStatic without symbols and debug information,
// which a 384 MiB guest needs to unpack five binaries.
func buildStripped(ctx context.Context, moduleDir, outDir, pkg string) (string, error) {
	out := filepath.Join(outDir, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", vm.BuildTags, "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w: %s", pkg, err, b)
	}
	return out, nil
}

// parseE2E reads the probe's JSON lines.
func parseE2E(raw []byte) (*E2EResult, error) {
	r := &E2EResult{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		var s e2eSample
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			return nil, fmt.Errorf("latency.jsonl: %w", err)
		}
		r.Samples = append(r.Samples, s)
		r.Latency = append(r.Latency, time.Duration(s.Latency))
		r.Listed = append(r.Listed, time.Duration(s.Listed-s.Received))
		r.MaxOffsetError = max(r.MaxOffsetError, time.Duration(s.OffsetError))
		if s.AgentSkew != nil {
			r.MaxSkew = max(r.MaxSkew, time.Duration(abs(*s.AgentSkew)))
		}
	}
	slices.Sort(r.Latency)
	slices.Sort(r.Listed)
	return r, sc.Err()
}

// agentTimes splits each kill's latency at the time the agent read the
// report's last record, from its log line for the kill.
func (r *E2EResult) agentTimes(agentLog []byte) error {
	read := map[int64]time.Time{}
	for _, line := range bytes.Split(agentLog, []byte("\n")) {
		var l struct {
			Seq  *int64 `json:"seq"`
			Read string `json:"last_record_read"`
		}
		if json.Unmarshal(line, &l) != nil || l.Seq == nil || l.Read == "" {
			continue
		}
		if at, err := time.Parse(time.RFC3339Nano, l.Read); err == nil {
			read[*l.Seq] = at
		}
	}
	for _, s := range r.Samples {
		seq, err := strconv.ParseInt(s.ID[strings.LastIndexByte(s.ID, '/')+1:], 10, 64)
		if err != nil {
			return fmt.Errorf("event ID %q: %w", s.ID, err)
		}
		at, ok := read[seq]
		if !ok {
			return fmt.Errorf("agent.log: no line for the kill of seq %d", seq)
		}
		r.Read = append(r.Read, time.Duration(at.UnixNano()-s.EndWall))
		r.Sent = append(r.Sent, time.Duration(s.Received-at.UnixNano()))
	}
	slices.Sort(r.Read)
	slices.Sort(r.Sent)
	return nil
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// lastLines returns the last n lines of b, for errors.
func lastLines(b []byte, n int) string {
	l := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(l[max(0, len(l)-n):], " | ")
}
