package bench

import (
	"bytes"
	"io"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/euank/go-kmsg-parser/kmsgparser"
)

var (
	inputsOnce sync.Once
	inputs     []*Input
)

// benchInputs returns the comparison's inputs, small under -short.
func benchInputs() []*Input {
	inputsOnce.Do(func() { inputs = Inputs(testing.Short()) })
	return inputs
}

// BenchmarkParsers runs every parser on every input: records/s, records/op,
// CPU ns/record and allocations (divide allocs/op by records/op for
// allocations per record). cmd/benchtable runs the same functions side by
// side and prints the table.
func BenchmarkParsers(b *testing.B) {
	for _, in := range benchInputs() {
		for _, p := range Parsers() {
			var out Output
			var err error
			b.Run(in.Name+"/"+p.Name(), Benchmark(p, in, &out, &err))
		}
	}
}

func TestInputsAreDeterministic(t *testing.T) {
	for _, tc := range []struct {
		name string
		gen  func() *Input
	}{
		{"non-OOM", func() *Input { return NonOOM(2000) }},
		{"node report", func() *Input { return NodeReport(300) }},
		{"mix", func() *Input { return Mix(5000, 8) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := tc.gen(), tc.gen()
			if !bytes.Equal(a.Data, b.Data) || !reflect.DeepEqual(a.Kills, b.Kills) {
				t.Fatal("two generations differ")
			}
			if a.Records() == 0 || bytes.Count(a.Data, []byte("\n")) != a.Records() {
				t.Fatalf("%d records, %d lines", a.Records(), bytes.Count(a.Data, []byte("\n")))
			}
		})
	}
}

// TestTruthAgreesWithGenerator checks the plain truth extractor used for the
// real-kernel rows against the kills the generator recorded.
func TestTruthAgreesWithGenerator(t *testing.T) {
	for _, in := range []*Input{NonOOM(1000), NodeReport(100), Mix(8000, 8)} {
		t.Run(in.Name, func(t *testing.T) {
			got := KillsFromKmsg(in.Data)
			if len(got) != len(in.Kills) {
				t.Fatalf("%d kills extracted, %d generated", len(got), len(in.Kills))
			}
			for i := range got {
				if got[i] != in.Kills[i] {
					t.Errorf("kill %d: extracted %+v, generated %+v", i, got[i], in.Kills[i])
				}
			}
		})
	}
}

func TestMixHoldsEveryKind(t *testing.T) {
	in := Mix(8000, 8)
	var node, limit, group, storm int
	for _, k := range in.Kills {
		switch {
		case k.Storm:
			storm++
		case k.GroupMember:
			group++
		case k.Kind == KindNode:
			node++
		default:
			limit++
		}
	}
	// 8 reports: 2 limit, 2 node, 2 group (a victim and 3 members each), 2 storms of 5.
	if node != 2 || limit != 4 || group != 6 || storm != 10 {
		t.Fatalf("node=%d limit=%d group=%d storm=%d", node, limit, group, storm)
	}
}

// TestWhatEachParserFinds pins what each parser tells on the mix. A peer
// release that changes it should change the table, and this test.
func TestWhatEachParserFinds(t *testing.T) {
	in := Mix(8000, 8) // 22 kills, 12 with a printed cgroup, 2 node-level
	for _, tc := range []struct {
		p    Parser
		want Score
	}{
		{OomwatchReader{}, Score{Kills: 22, Found: 22, PIDs: 22, CgroupKnown: 12, Cgroups: 12, NodeCgroupKnown: 2, NodeCgroups: 2, Kinds: 22}},
		{OomwatchLive{}, Score{Kills: 22, Found: 22, PIDs: 22, CgroupKnown: 12, Cgroups: 12, NodeCgroupKnown: 2, NodeCgroups: 2, Kinds: 22}},
		// cAdvisor: a kill only after "invoked oom-killer" (no storm kills, no
		// group members); cgroups only when the summary has oom_memcg= (not
		// node-level kills), and the limit constraint only then.
		{CAdvisor{}, Score{Kills: 22, Found: 6, PIDs: 6, CgroupKnown: 12, Cgroups: 4, NodeCgroupKnown: 2, Kinds: 4}},
		// NPD: every kill line, the group's first victim twice; facts only as text.
		{NPD{}, Score{Kills: 22, Found: 22, Extra: 2, PIDInText: true, CgroupKnown: 12, NodeCgroupKnown: 2, KindInText: true}},
		{NPD{LastLineShortcut: true}, Score{Kills: 22, Found: 22, Extra: 2, PIDInText: true, CgroupKnown: 12, NodeCgroupKnown: 2, KindInText: true}},
	} {
		t.Run(tc.p.Name(), func(t *testing.T) {
			out, err := tc.p.Parse(in)
			if err != nil {
				t.Fatal(err)
			}
			if got := ScoreFindings(in.Kills, out.Findings()); got != tc.want {
				t.Fatalf("score\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestNPDJoinedMatchSpansLines(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pattern string
		lines   []string
		want    []string
	}{
		{"one line", `Killed process \d+`, []string{"a", "Killed process 7"}, []string{"Killed process 7"}},
		{"two lines", `Kill process \d+\nKilled process \d+`, []string{"x", "Kill process 7", "Killed process 7"},
			[]string{"Kill process 7", "Killed process 7"}},
		{"not at the end", `Killed process \d+`, []string{"Killed process 7", "later"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			re := regexp.MustCompile(`(?:` + tc.pattern + `)\z`)
			r := newNPDRing(NPDBufferSize)
			for _, l := range tc.lines {
				r.push(&npdLog{Message: l})
			}
			var got []string
			for _, l := range r.matchJoined(re) {
				got = append(got, l.Message)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("matched %q, want %q", got, tc.want)
			}
		})
	}
}

func TestMemDeviceReadsOneRecordPerRead(t *testing.T) {
	in := NonOOM(3)
	d := newMemDevice(in, false)
	buf := make([]byte, 8192)
	for i := range 3 {
		n, err := d.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], in.Record(i)) {
			t.Fatalf("read %d: %q, %v", i, buf[:n], err)
		}
	}
	if _, err := d.Read(buf); err != io.EOF {
		t.Fatalf("at the end: %v, want EOF", err)
	}
	small := newMemDevice(in, false)
	if _, err := small.Read(make([]byte, 4)); err != syscall.EINVAL {
		t.Fatalf("small buffer: %v, want EINVAL", err)
	}
	blocking := newMemDevice(NonOOM(0), true)
	done := make(chan error)
	go func() {
		_, err := blocking.Read(buf)
		done <- err
	}()
	select {
	case <-done:
		t.Fatal("blocking device returned before Close")
	case <-time.After(50 * time.Millisecond):
	}
	_ = blocking.Close()
	if err := <-done; err != io.EOF {
		t.Fatalf("after Close: %v, want EOF", err)
	}
}

// TestStandInFrontEnd checks the stand-in used where /dev/kmsg cannot be
// opened: it must deliver what kmsgparser delivers, and every parser must
// find the same kills through it.
func TestStandInFrontEnd(t *testing.T) {
	in := Mix(4000, 4)
	read := func(p kmsgparser.Parser) []kmsgparser.Message {
		var out []kmsgparser.Message
		for m := range p.Parse() {
			out = append(out, m)
		}
		return out
	}
	stand := read(&standInParser{dev: newMemDevice(in, false), boot: bootTime})
	if len(stand) != in.Records() {
		t.Fatalf("stand-in delivered %d messages, want %d", len(stand), in.Records())
	}
	if real, err := newKmsgParser(newMemDevice(in, false), bootTime); err == nil {
		if got := read(real); !reflect.DeepEqual(got, stand) {
			t.Fatal("stand-in and kmsgparser deliver different messages")
		}
	} else {
		t.Logf("real kmsgparser unavailable (%v): compared parsers only", err)
	}
	want := map[string]Score{}
	for _, p := range Parsers() {
		out, err := p.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		want[p.Name()] = ScoreFindings(in.Kills, out.Findings())
	}
	forceStandIn = true
	defer func() { forceStandIn = false }()
	for _, p := range Parsers() {
		out, err := p.Parse(in)
		if err != nil {
			t.Fatalf("%s: %v", p.Name(), err)
		}
		if got := ScoreFindings(in.Kills, out.Findings()); got != want[p.Name()] {
			t.Errorf("%s through the stand-in: %+v, want %+v", p.Name(), got, want[p.Name()])
		}
	}
}

// TestFrontEndFloor: the floor row drains every record and finds nothing;
// in the table it is no peer (the 5x target is judged against cAdvisor,
// though the floor is faster), its score cells are empty, and the live
// target says where both paths stand over it.
func TestFrontEndFloor(t *testing.T) {
	in := Mix(8000, 8)
	out, err := FrontEndFloor{}.Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	if f := out.Findings(); len(f) != 0 {
		t.Fatalf("findings %v", f)
	}
	tab := &Table{Rows: []Row{
		{Input: in.Name, Parser: OomwatchReader{}.Name(), Measured: true, RecordsPerSec: 10e6, CPUNsPerRecord: 100, oomwatch: true},
		{Input: in.Name, Parser: OomwatchLive{}.Name(), Measured: true, RecordsPerSec: 2e6, CPUNsPerRecord: 500, oomwatch: true},
		{Input: in.Name, Parser: CAdvisor{}.Name(), Measured: true, RecordsPerSec: 1e6, CPUNsPerRecord: 600},
		{Input: in.Name, Parser: FrontEndFloor{}.Name(), Measured: true, RecordsPerSec: 3e6, CPUNsPerRecord: 400, floor: true},
	}}
	tab.Judge([]*Input{in}, in.Name)
	var live, fast string
	for _, m := range tab.Targets {
		switch {
		case strings.HasPrefix(m.Name, "live path CPU"):
			live = m.Value
		case strings.HasPrefix(m.Name, "records/s >= 5x"):
			fast = m.Value
		}
	}
	if want := "0.83x (500 vs 600 ns/record; records/s 2.00M vs 1.00M); the front end alone (floor) 400 ns = 0.67x of cAdvisor's, " +
		"so after the channel oomwatch takes 100 ns, cAdvisor 200 ns, and the target leaves 80 ns"; live != want {
		t.Errorf("live target:\n got %s\nwant %s", live, want)
	}
	if !strings.HasPrefix(fast, "10.0x (10.00M vs cAdvisor") || !strings.Contains(fast, "in CPU time 6.0x") {
		t.Errorf("5x target against %s", fast)
	}
	if got := floorNote(500, 600, 490); !strings.HasSuffix(got, "leaves nothing: the floor alone is over 0.8x") {
		t.Errorf("floor over the target: %s", got)
	}
	tab.Rows[0].Score = Score{NodeCgroupKnown: 1, NodeCgroups: 1}
	tab.Rows[3].Score = Score{NodeCgroupKnown: 1}
	if nc := tab.nodeCgroups(); len(nc) != 1 || !strings.HasPrefix(nc[0], OomwatchReader{}.Name()) {
		t.Errorf("node-level cgroups %v", nc)
	}
	var b strings.Builder
	tab.Print(&b)
	for _, l := range strings.Split(b.String(), "\n") {
		if !strings.Contains(l, FrontEndFloor{}.Name()) {
			continue
		}
		cells := strings.Split(l, "|")
		for _, c := range cells[len(cells)-4:] {
			if strings.TrimSpace(c) != "-" {
				t.Errorf("floor row %q", l)
			}
		}
	}
}
