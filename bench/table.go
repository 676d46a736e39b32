package bench

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Row is one parser on one input.
type Row struct {
	Input  string
	Parser string
	// Measured is false for rows that only score findings (the VM's).
	Measured bool
	Records  int
	// Throughput figures, medians over the rounds by records/s.
	RecordsPerSec   float64
	CPUNsPerRecord  float64
	AllocsPerOp     float64
	AllocsPerRecord float64
	BytesPerRecord  float64
	// Score is what the parser told about the input's kills.
	Score Score
	// Err is set when the parser failed on the input.
	Err error
	// oomwatch marks oomwatch's own rows, peer the others; floor the
	// front end's floor (FrontEndFloor), which is neither.
	oomwatch, floor bool
}

// Table is the comparison: its rows, and the target verdicts and notes
// printed under it.
type Table struct {
	Rows    []Row
	Targets []Measurement
	Notes   []string
}

// CompareConfig says what Compare runs.
type CompareConfig struct {
	Inputs  []*Input
	Parsers []Parser
	// Rounds repeats every benchmark, interleaved across parsers so that a
	// noisy neighbour hurts them alike; the median round is kept.
	Rounds int
	// Progress, when set, receives a line per benchmark run.
	Progress io.Writer
}

// Compare benchmarks every parser on every input with testing.Benchmark in
// this process and scores what each found.
func Compare(cfg CompareConfig) *Table {
	if cfg.Rounds < 1 {
		cfg.Rounds = 1
	}
	type key struct{ in, p int }
	results := map[key][]Row{}
	for round := range cfg.Rounds {
		for i, in := range cfg.Inputs {
			for j := range cfg.Parsers {
				// Rotate the order each round.
				pj := (j + round) % len(cfg.Parsers)
				p := cfg.Parsers[pj]
				row := measure(p, in)
				if cfg.Progress != nil {
					fmt.Fprintf(cfg.Progress, "round %d/%d  %-28s %-42s %12s records/s\n",
						round+1, cfg.Rounds, in.Name, p.Name(), human(row.RecordsPerSec))
				}
				results[key{i, pj}] = append(results[key{i, pj}], row)
			}
		}
	}
	t := &Table{}
	for i := range cfg.Inputs {
		for j := range cfg.Parsers {
			rows := results[key{i, j}]
			sort.Slice(rows, func(a, b int) bool { return rows[a].RecordsPerSec < rows[b].RecordsPerSec })
			t.Rows = append(t.Rows, rows[len(rows)/2])
		}
	}
	return t
}

// measure runs one benchmark and scores its last output.
func measure(p Parser, in *Input) Row {
	row := Row{Input: in.Name, Parser: p.Name(), Measured: true, Records: in.Records()}
	_, row.oomwatch = p.(OomwatchReader)
	if _, live := p.(OomwatchLive); live {
		row.oomwatch = true
	}
	_, row.floor = p.(FrontEndFloor)
	var out Output
	var err error
	res := testing.Benchmark(Benchmark(p, in, &out, &err))
	if err == nil && (res.N == 0 || out == nil) {
		err = fmt.Errorf("benchmark did not run")
	}
	if err != nil {
		row.Err = err
		return row
	}
	n := float64(in.Records())
	row.RecordsPerSec = res.Extra[UnitRecordsPerSec]
	row.CPUNsPerRecord = res.Extra[UnitCPUPerRecord]
	row.AllocsPerOp = float64(res.MemAllocs) / float64(res.N)
	row.AllocsPerRecord = row.AllocsPerOp / n
	row.BytesPerRecord = float64(res.MemBytes) / float64(res.N) / n
	row.Score = ScoreFindings(in.Kills, out.Findings())
	return row
}

// AddScoredRow adds a row that only scores findings (no throughput).
func (t *Table) AddScoredRow(input, parser string, oomwatch bool, s Score, err error) {
	t.Rows = append(t.Rows, Row{Input: input, Parser: parser, Score: s, Err: err, oomwatch: oomwatch})
}

// fastestPeer returns the fastest measured peer row of input, if any.
func (t *Table) fastestPeer(input string) (Row, bool) {
	var best Row
	ok := false
	for _, r := range t.Rows {
		if r.Input == input && r.Measured && !r.oomwatch && !r.floor && r.Err == nil && r.RecordsPerSec > best.RecordsPerSec {
			best, ok = r, true
		}
	}
	return best, ok
}

// cheapestPeer returns the measured peer row of input using the least CPU
// time per record, if any.
func (t *Table) cheapestPeer(input string) (Row, bool) {
	var best Row
	ok := false
	for _, r := range t.Rows {
		if r.Input == input && r.Measured && !r.oomwatch && !r.floor && r.Err == nil && (!ok || r.CPUNsPerRecord < best.CPUNsPerRecord) {
			best, ok = r, true
		}
	}
	return best, ok
}

// row returns the measured row of parser on input.
func (t *Table) row(input, parser string) (Row, bool) {
	for _, r := range t.Rows {
		if r.Input == input && r.Parser == parser && r.Measured && r.Err == nil {
			return r, true
		}
	}
	return Row{}, false
}

// Judge adds the verdicts of the throughput and allocation targets.
// nonOOM names the input of ordinary records.
func (t *Table) Judge(inputs []*Input, nonOOM string) {
	reader := OomwatchReader{}.Name()
	// Live against live first: what a node pays, on the same kmsgparser.
	live, ca := OomwatchLive{}.Name(), CAdvisor{}.Name()
	for _, in := range inputs {
		ow, ok1 := t.row(in.Name, live)
		peer, ok2 := t.row(in.Name, ca)
		m := Measurement{Name: "live path CPU ns/record <= 0.8x cAdvisor's on the same kmsgparser: " + in.Name, Target: "<= 0.80x"}
		if !ok1 || !ok2 || peer.CPUNsPerRecord <= 0 {
			m.Value, m.Verdict = "not measured", VerdictNotMeasured
		} else {
			x := ow.CPUNsPerRecord / peer.CPUNsPerRecord
			m.Value = fmt.Sprintf("%.2fx (%.0f vs %.0f ns/record; records/s %s vs %s)", x, ow.CPUNsPerRecord, peer.CPUNsPerRecord,
				human(ow.RecordsPerSec), human(peer.RecordsPerSec))
			if f, ok := t.row(in.Name, FrontEndFloor{}.Name()); ok {
				m.Value += floorNote(ow.CPUNsPerRecord, peer.CPUNsPerRecord, f.CPUNsPerRecord)
			}
			m.Verdict = verdict(x <= 0.8)
		}
		t.Targets = append(t.Targets, m)
		m = Measurement{Name: "live path allocations per record: kmsgparser's own 3, plus the Assembler's for report records (the offline row's), none of devkmsg's: " + in.Name,
			Target: "<= 3 + the offline row's"}
		off, ok3 := t.row(in.Name, reader)
		if !ok1 || !ok3 {
			m.Value, m.Verdict = "not measured", VerdictNotMeasured
		} else {
			m.Value = fmt.Sprintf("%.3f (offline %.3f, cAdvisor %.3f)", ow.AllocsPerRecord, off.AllocsPerRecord, peer.AllocsPerRecord)
			// Opening the log allocates a few dozen times per run, whatever
			// its length.
			m.Verdict = verdict(ow.AllocsPerOp <= float64(kmsgparserAllocs*ow.Records)+off.AllocsPerOp+setupAllocs)
		}
		t.Targets = append(t.Targets, m)
	}
	for _, in := range inputs {
		ow, ok1 := t.row(in.Name, reader)
		peer, ok2 := t.fastestPeer(in.Name)
		m := Measurement{Name: "records/s >= 5x the faster peer: " + in.Name, Target: ">= 5.0x"}
		if !ok1 || !ok2 {
			m.Value, m.Verdict = "not measured", VerdictNotMeasured
		} else {
			x := ow.RecordsPerSec / peer.RecordsPerSec
			m.Value = fmt.Sprintf("%.1fx (%s vs %s: %s)", x, human(ow.RecordsPerSec), peer.Parser, human(peer.RecordsPerSec))
			if cheap, ok := t.cheapestPeer(in.Name); ok && ow.CPUNsPerRecord > 0 {
				m.Value += fmt.Sprintf("; in CPU time %.1fx (%.0f vs %s: %.0f ns/record)",
					cheap.CPUNsPerRecord/ow.CPUNsPerRecord, ow.CPUNsPerRecord, cheap.Parser, cheap.CPUNsPerRecord)
			}
			m.Verdict = verdict(x >= 5)
		}
		t.Targets = append(t.Targets, m)
	}
	for _, p := range []string{reader} {
		m := Measurement{Name: "allocations per non-OOM record: " + p, Target: "0"}
		if r, ok := t.row(nonOOM, p); ok {
			// A reader and an assembler allocate a few buffers per run; any
			// per-record allocation shows as at least one per record.
			m.Value = fmt.Sprintf("%.6f (%.0f per %s-record run)", r.AllocsPerRecord, r.AllocsPerOp, count(r.Records))
			m.Verdict = verdict(r.AllocsPerRecord < 0.001)
		} else {
			m.Value, m.Verdict = "not measured", VerdictNotMeasured
		}
		t.Targets = append(t.Targets, m)
	}
}

// floorNote says where the live path and cAdvisor stand over the front
// end's floor (FrontEndFloor's CPU ns/record) and how much the 0.8x target
// leaves over it for everything after kmsgparser's channel.
func floorNote(ow, ca, floor float64) string {
	s := fmt.Sprintf("; the front end alone (floor) %.0f ns = %.2fx of cAdvisor's, so after the channel oomwatch takes %.0f ns, cAdvisor %.0f ns, and the target leaves ",
		floor, floor/ca, ow-floor, ca-floor)
	if room := 0.8*ca - floor; room > 0 {
		return s + fmt.Sprintf("%.0f ns", room)
	}
	return s + "nothing: the floor alone is over 0.8x"
}

// kmsgparserAllocs is what kmsgparser v2.0.0 allocates per record: the
// record as a string, strings.SplitN and strings.Split on its header.
const kmsgparserAllocs = 3

// setupAllocs bounds the allocations of opening the log (devkmsg's
// calibration, the parser, its goroutine and channel) once per run.
const setupAllocs = 100

// nodeCgroups sums, per parser, how many node-level victims' cgroups it
// reported over every row.
func (t *Table) nodeCgroups() []string {
	type sum struct{ got, of int }
	var order []string
	sums := map[string]*sum{}
	for _, r := range t.Rows {
		if r.Err != nil || r.floor || r.Score.NodeCgroupKnown == 0 {
			continue
		}
		s := sums[r.Parser]
		if s == nil {
			s = &sum{}
			sums[r.Parser] = s
			order = append(order, r.Parser)
		}
		s.got += r.Score.NodeCgroups
		s.of += r.Score.NodeCgroupKnown
	}
	var out []string
	for _, p := range order {
		out = append(out, fmt.Sprintf("%s %d/%d", p, sums[p].got, sums[p].of))
	}
	return out
}

// Print writes the table, the targets and the notes.
func (t *Table) Print(w io.Writer) {
	header := []string{"input", "parser", "records/s", "oomwatch x", "CPU ns/rec", "CPU x", "allocs/rec", "B/rec", "kills found", "victim PID", "victim cgroup", "node/limit"}
	var cells [][]string
	for _, r := range t.Rows {
		c := []string{r.Input, r.Parser}
		switch {
		case r.Err != nil:
			c = append(c, "error: "+firstLine(r.Err.Error()), "", "", "", "", "", "", "", "", "")
			cells = append(cells, c)
			continue
		case !r.Measured:
			c = append(c, "-", "-", "-", "-", "-", "-")
		default:
			ratio, cpuRatio := "-", "-"
			if ow, ok := t.row(r.Input, OomwatchReader{}.Name()); ok && r.RecordsPerSec > 0 && ow.CPUNsPerRecord > 0 {
				ratio = fmt.Sprintf("%.1f", ow.RecordsPerSec/r.RecordsPerSec)
				cpuRatio = fmt.Sprintf("%.1f", r.CPUNsPerRecord/ow.CPUNsPerRecord)
			}
			c = append(c, human(r.RecordsPerSec), ratio, fmt.Sprintf("%.0f", r.CPUNsPerRecord), cpuRatio,
				allocs(r.AllocsPerRecord), fmt.Sprintf("%.0f", r.BytesPerRecord))
		}
		if r.floor {
			// It reads no kills: nothing to score.
			c = append(c, "-", "-", "-", "-")
		} else {
			c = append(c, r.Score.KillsCell(), r.Score.PIDCell(), r.Score.CgroupCell(), r.Score.KindCell())
		}
		cells = append(cells, c)
	}
	width := make([]int, len(header))
	for i, h := range header {
		width[i] = len(h)
	}
	for _, c := range cells {
		for i, s := range c {
			width[i] = max(width[i], len(s))
		}
	}
	line := func(c []string) {
		var b strings.Builder
		for i, s := range c {
			if i > 0 {
				b.WriteString(" | ")
			}
			if i >= 2 && i <= 7 {
				fmt.Fprintf(&b, "%*s", width[i], s)
			} else {
				fmt.Fprintf(&b, "%-*s", width[i], s)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line(header)
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = strings.Repeat("-", width[i])
	}
	line(sep)
	prev := ""
	for i, c := range cells {
		if t.Rows[i].Input == prev {
			c[0] = ""
		}
		prev = t.Rows[i].Input
		line(c)
	}
	fmt.Fprintln(w)
	if nc := t.nodeCgroups(); len(nc) > 0 {
		fmt.Fprintf(w, "Node-level victims' cgroups reported (all rows): %s\n\n", strings.Join(nc, "; "))
	}
	if len(t.Targets) > 0 {
		fmt.Fprintln(w, "Targets:")
		for _, m := range t.Targets {
			fmt.Fprintf(w, "  [%s] %s: %s (target %s)\n", m.Verdict, m.Name, m.Value, m.Target)
		}
		fmt.Fprintln(w)
	}
	for _, n := range t.Notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
}

// Notes returns the standing notes of the table: the machine, the front
// end, and how to read the columns.
func Notes() []string {
	return []string{
		"machine: " + MachineSummary(),
		"peers' front end: " + FrontEnd() + "; cAdvisor " + CAdvisorVersion + " StreamOoms runs unmodified; NPD is re-created from its source (bench/npd.go), OOMKilling rule only (a real NPD matches 12 kernel rules per line, so its figures are an upper bound)",
		"records/s: wall clock, median of the rounds; CPU ns/rec: process CPU time (all goroutines and the GC) per record: the peers and oomwatch's live path run on two goroutines (kmsgparser's reader and the consumer), oomwatch's offline reader on one",
		"oomwatch x: oomwatch kernlog.Reader+Assembler records/s divided by the row's; CPU x: the row's CPU ns/rec divided by oomwatch kernlog.Reader+Assembler's (steadier than wall clock on a shared machine); kills found: victims reported at all (+N: extra or repeated reports); victim cgroup: victims attributed to the cgroup the kernel printed (task_memcg=, or the memory.oom.group cgroup), out of those it printed; text only: the fact is only inside an event's message text",
	}
}

// MachineSummary describes this machine: CPUs, CPU model, memory, Go.
func MachineSummary() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := "unknown memory"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				if kb, err := strconv.ParseFloat(f[1], 64); err == nil {
					mem = fmt.Sprintf("%.1f GiB RAM", kb/(1<<20))
				}
			}
		}
	}
	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			load = ", load average " + strings.Join(f[:3], " ") + " at the end"
		}
	}
	return fmt.Sprintf("%d CPUs (%s), %s, %s %s/%s, GOMAXPROCS %d%s", runtime.NumCPU(), model, mem,
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), load)
}

// human renders a rate as 12.3M, 456k.
func human(v float64) string {
	switch {
	case v == 0 || math.IsNaN(v):
		return "-"
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// allocs renders allocations per record.
func allocs(v float64) string {
	if v < 0.001 {
		return "0"
	}
	if v < 10 {
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return s
}
