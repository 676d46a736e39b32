package aggregator

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

var testHello = &pb.Hello{Node: "node-a", BootId: boot}

func TestValidateHello(t *testing.T) {
	tests := []struct {
		name string
		h    *pb.Hello
		ok   bool
	}{
		{name: "uuid", h: &pb.Hello{Node: "ip-10-0-1-7.ec2.internal", BootId: boot}, ok: true},
		{name: "short boot", h: &pb.Hello{Node: "node-a", BootId: "b1"}, ok: true},
		{name: "nil", h: nil},
		{name: "empty node", h: &pb.Hello{BootId: boot}},
		{name: "slash", h: &pb.Hello{Node: "a/b", BootId: boot}},
		{name: "leading dash", h: &pb.Hello{Node: "-a", BootId: boot}},
		{name: "space", h: &pb.Hello{Node: "node a", BootId: boot}},
		{name: "node too long", h: &pb.Hello{Node: strings.Repeat("a", MaxNodeBytes+1), BootId: boot}},
		{name: "boot too long", h: &pb.Hello{Node: "a", BootId: strings.Repeat("b", MaxBootIDBytes+1)}},
		{name: "boot with slash", h: &pb.Hello{Node: "a", BootId: "x/y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ValidateHello(tt.h); (err == nil) != tt.ok {
				t.Fatalf("ValidateHello = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

// seeds are valid and nearly valid events of every type.
func seeds() []*pb.Event {
	full := oom("node-a", 7, "shop", "cart-1")
	full.GetOom().Trigger = full.GetOom().Victims[0]
	full.GetOom().TopConsumers = []*pb.Process{full.GetOom().Victims[0]}
	full.GetOom().Victims[0].Workload.Labels = map[string]string{"app": "cart"}
	loss := &pb.Event{Node: "node-a", BootId: boot, Seq: 9, Time: timestamppb.New(t0),
		Payload: &pb.Event_Loss{Loss: &pb.Loss{Cause: "kernel-gap", Lost: 3, Detail: "lost"}}}
	exit := &pb.Event{Node: "node-a", BootId: boot, Seq: 2, Time: timestamppb.New(t0),
		Payload: &pb.Event_Exit{Exit: &pb.ContainerExit{Workload: &pb.Workload{Namespace: "shop"}, ExitCode: 137,
			Verdict: "oom-limit", Evidence: []string{"memory.events oom_kill 1"}}}}
	long := oom("node-a", 8, "shop", "cart-1")
	long.GetOom().Lines = []string{strings.Repeat("x", MaxLineBytes)}
	return []*pb.Event{full, loss, exit, long, agentWarning("node-a", 0, 3), killWarned(10, 2, "node-a")}
}

// checkLimits is the fuzz target's own reading of the limits, written
// apart from the validator: it walks every field by reflection, so a
// field the validator forgets is still checked.
func checkLimits(e *pb.Event) error {
	// Another boot of the stream's node is accepted (an agent's spool
	// holds the events of the boot before a reboot); another node is not.
	if e.GetNode() != testHello.GetNode() {
		return fmt.Errorf("accepted another node's event")
	}
	if b := e.GetBootId(); len(b) > MaxBootIDBytes || !bootIDShape.MatchString(b) {
		return fmt.Errorf("accepted boot_id %q, which is no boot ID", b)
	}
	if e.GetPayload() == nil || e.GetSeq() < 0 || e.GetTime() == nil || e.GetTime().AsTime().Before(MinTime) {
		return fmt.Errorf("accepted an event without payload, seq or time")
	}
	if proto.Size(e) > MaxEventBytes {
		return fmt.Errorf("accepted %d bytes", proto.Size(e))
	}
	return walk(e.ProtoReflect())
}

// bootIDShape is what a boot ID may look like: letters and digits, with
// '-', '.' and '_' between them.
var bootIDShape = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)

func walk(m protoreflect.Message) error {
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := string(fd.Name())
		lineField := name == "lines" || name == "evidence"
		maxStr := MaxStringBytes
		if lineField {
			maxStr = MaxLineBytes
		}
		switch {
		case fd.IsMap():
			if v.Map().Len() > MaxLabels {
				err = fmt.Errorf("%s: %d entries", name, v.Map().Len())
			}
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				if len(k.String()) > MaxStringBytes || len(mv.String()) > MaxStringBytes {
					err = fmt.Errorf("%s: long entry", name)
				}
				return err == nil
			})
		case fd.IsList():
			l := v.List()
			limit := map[string]int{"victims": MaxVictims, "top_consumers": MaxTopConsumers, "lines": MaxLines, "evidence": MaxLines,
				"preceding_warnings": MaxPrecedingWarnings}[name]
			if limit == 0 || l.Len() > limit {
				err = fmt.Errorf("%s: %d items (limit %d)", name, l.Len(), limit)
				return false
			}
			for i := 0; i < l.Len() && err == nil; i++ {
				switch fd.Kind() {
				case protoreflect.StringKind:
					if len(l.Get(i).String()) > maxStr {
						err = fmt.Errorf("%s[%d]: %d bytes", name, i, len(l.Get(i).String()))
					}
				case protoreflect.MessageKind:
					err = walk(l.Get(i).Message())
				}
			}
		case fd.Kind() == protoreflect.StringKind:
			if len(v.String()) > maxStr {
				err = fmt.Errorf("%s: %d bytes", name, len(v.String()))
			}
			if strings.ContainsFunc(v.String(), func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
				err = fmt.Errorf("%s: control character in %q", name, v.String())
			}
		case fd.Kind() == protoreflect.Int32Kind || fd.Kind() == protoreflect.Int64Kind:
			lo := int64(-1)
			if name == "oom_score_adj" {
				lo = -1000
			}
			if v.Int() < lo || v.Int() > math.MaxInt64/2 && name != "seq" && name != "end_seq" && name != "after_seq" && name != "next_seq" {
				err = fmt.Errorf("%s: %d", name, v.Int())
			}
		case fd.Kind() == protoreflect.MessageKind && fd.Message().FullName() == "google.protobuf.Timestamp":
			if ts := v.Message().Interface().(*timestamppb.Timestamp); ts.AsTime().Before(MinTime) || ts.AsTime().After(time.Now().Add(DefaultMaxClockSkew)) {
				err = fmt.Errorf("%s: time %v", name, ts.AsTime())
			}
		case fd.Kind() == protoreflect.MessageKind:
			err = walk(v.Message())
		}
		return err == nil
	})
	return err
}

func TestValidateEvent(t *testing.T) {
	for i, e := range seeds() {
		if err := ValidateEvent(e, testHello); err != nil {
			t.Fatalf("seed %d refused: %v", i, err)
		}
		if err := checkLimits(e); err != nil {
			t.Fatalf("seed %d: %v", i, err)
		}
	}
	long := strings.Repeat("l", MaxStringBytes+1)
	mutations := map[string]func(e *pb.Event){
		"label count":  func(e *pb.Event) { e.GetOom().Victims[0].Workload.Labels = labels(MaxLabels + 1) },
		"label value":  func(e *pb.Event) { e.GetOom().Victims[0].Workload.Labels = map[string]string{"a": long} },
		"comm":         func(e *pb.Event) { e.GetOom().Trigger = &pb.Process{Comm: long} },
		"culprit":      func(e *pb.Event) { e.GetOom().Culprit.Source = long },
		"cgroup":       func(e *pb.Event) { e.GetOom().TopConsumers[0].Workload = &pb.Workload{Cgroup: long} },
		"top count":    func(e *pb.Event) { e.GetOom().TopConsumers = make([]*pb.Process, MaxTopConsumers+1) },
		"reason":       func(e *pb.Event) { e.GetOom().Reason = long },
		"far future":   func(e *pb.Event) { e.Time = &timestamppb.Timestamp{Seconds: 1 << 40} },
		"bad time":     func(e *pb.Event) { e.Time = &timestamppb.Timestamp{Nanos: -1} },
		"bad duration": func(e *pb.Event) { e.Monotonic.Seconds = -1 },
	}
	story := func(f func(x *pb.ContainerExit)) func(e *pb.Event) {
		return func(e *pb.Event) {
			x := &pb.ContainerExit{Verdict: "oom-child", ChildKills: 3, Victims: []*pb.ChildKill{{Pid: 1, Comm: "sleep"}}}
			f(x)
			e.Payload = &pb.Event_Exit{Exit: x}
		}
	}
	mutations["negative revision"] = func(e *pb.Event) { e.Revision = -1 }
	mutations["story victims"] = story(func(x *pb.ContainerExit) {
		x.ChildKills = 1 << 20
		x.Victims = make([]*pb.ChildKill, MaxVictims+1)
	})
	mutations["story count"] = story(func(x *pb.ContainerExit) { x.ChildKills = -1 })
	mutations["story more listed than killed"] = story(func(x *pb.ContainerExit) { x.VictimsDropped = 5 })
	mutations["story victim comm"] = story(func(x *pb.ContainerExit) { x.Victims[0].Comm = long })
	mutations["story largest comm"] = story(func(x *pb.ContainerExit) { x.Largest = &pb.ChildKill{Comm: long} })
	mutations["story time"] = story(func(x *pb.ContainerExit) { x.LastKillAt = &timestamppb.Timestamp{Nanos: -1} })
	if err := ValidateEvent(func() *pb.Event { e := seeds()[0]; story(func(*pb.ContainerExit) {})(e); return e }(), testHello); err != nil {
		t.Fatalf("a valid story refused: %v", err)
	}
	for name, mutate := range mutations {
		t.Run(name, func(t *testing.T) {
			e := seeds()[0]
			mutate(e)
			if err := ValidateEvent(e, testHello); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestValidateEventRanges plays the hostile agent: every number, time and
// string out of its range is refused, with the field named.
func TestValidateEventRanges(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	oomEv := func() *pb.Event { return seeds()[0] }
	lossEv := func() *pb.Event { return seeds()[1] }
	exitEv := func() *pb.Event { return seeds()[2] }
	res := func(e *pb.Event) *pb.Resources {
		r := &pb.Resources{MemoryMaxBytes: -1, MemoryCurrentBytes: 5, EventsOom: -1}
		e.GetOom().Victims[0].Workload.ContainerResources = r
		return r
	}
	tests := []struct {
		name  string
		ev    func() *pb.Event
		mut   func(e *pb.Event)
		field string // "" : accepted
	}{
		{name: "negative lost (crashed the aggregator)", ev: lossEv, mut: func(e *pb.Event) { e.GetLoss().Lost = -5 }, field: "loss.lost"},
		{name: "huge lost", ev: lossEv, mut: func(e *pb.Event) { e.GetLoss().Lost = MaxCount + 1 }, field: "loss.lost"},
		{name: "after_seq -1", ev: lossEv, mut: func(e *pb.Event) { e.GetLoss().AfterSeq = -1 }},
		{name: "after_seq -2", ev: lossEv, mut: func(e *pb.Event) { e.GetLoss().AfterSeq = -2 }, field: "loss.after_seq"},
		{name: "negative next_seq", ev: lossEv, mut: func(e *pb.Event) { e.GetLoss().NextSeq = -1 }, field: "loss.next_seq"},
		{name: "loss from the future", ev: lossEv, mut: func(e *pb.Event) { e.GetLoss().To = timestamppb.New(now.Add(time.Hour)) }, field: "loss.to"},
		{name: "time in 2200", ev: oomEv, mut: func(e *pb.Event) { e.Time = timestamppb.New(time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)) }, field: "time"},
		{name: "time within the skew", ev: oomEv, mut: func(e *pb.Event) { e.Time = timestamppb.New(now.Add(9 * time.Minute)) }},
		{name: "time past the skew", ev: oomEv, mut: func(e *pb.Event) { e.Time = timestamppb.New(now.Add(11 * time.Minute)) }, field: "time"},
		{name: "time in 1999", ev: oomEv, mut: func(e *pb.Event) { e.Time = timestamppb.New(MinTime.Add(-time.Second)) }, field: "time"},
		{name: "monotonic of a century", ev: oomEv, mut: func(e *pb.Event) { e.Monotonic.Seconds = 100 * 365 * 86400 }, field: "monotonic"},
		{name: "negative pid", ev: oomEv, mut: func(e *pb.Event) { e.GetOom().Victims[0].Pid = -1 }, field: "oom.victims[0].pid"},
		{name: "pid past PID_MAX_LIMIT", ev: oomEv, mut: func(e *pb.Event) { e.GetOom().Trigger = &pb.Process{Pid: MaxPID + 1} }, field: "oom.trigger.pid"},
		{name: "negative rss", ev: oomEv, mut: func(e *pb.Event) { e.GetOom().Culprit.RssBytes = proto.Int64(-1) }, field: "oom.culprit.rss_bytes"},
		{name: "negative tasks", ev: oomEv, mut: func(e *pb.Event) { e.GetOom().Culprit.Tasks = -3 }, field: "oom.culprit.tasks"},
		{name: "oom_score_adj 1001", ev: oomEv, mut: func(e *pb.Event) { e.GetOom().Victims[0].OomScoreAdj = proto.Int32(1001) }, field: "oom_score_adj"},
		{name: "oom_score_adj -1000", ev: oomEv, mut: func(e *pb.Event) { e.GetOom().Victims[0].OomScoreAdj = proto.Int32(-1000) }},
		{name: "negative uid", ev: oomEv, mut: func(e *pb.Event) { e.GetOom().Victims[0].Uid = proto.Int32(-1) }, field: "uid"},
		{name: "negative limit", ev: oomEv, mut: func(e *pb.Event) { e.GetOom().MemcgLimitBytes = proto.Int64(-4096) }, field: "oom.memcg_limit_bytes"},
		{name: "negative memory+swap limit", ev: oomEv, mut: func(e *pb.Event) { e.GetOom().MemswLimitBytes = proto.Int64(-1) }, field: "oom.memsw_limit_bytes"},
		{name: "negative node memory", ev: oomEv, mut: func(e *pb.Event) { e.GetOom().NodeMemory = &pb.NodeMemory{MemTotalBytes: -1} }, field: "mem_total_bytes"},
		{name: "negative lines_dropped", ev: oomEv, mut: func(e *pb.Event) { e.GetOom().LinesDropped = -1 }, field: "oom.lines_dropped"},
		{name: "absent cgroup files", ev: oomEv, mut: func(e *pb.Event) { res(e) }},
		{name: "memory.max -2", ev: oomEv, mut: func(e *pb.Event) { res(e).MemoryMaxBytes = -2 }, field: "container_resources.memory_max_bytes"},
		{name: "negative request", ev: oomEv, mut: func(e *pb.Event) { res(e).MemoryRequestBytes = -1 }, field: "memory_request_bytes"},
		{name: "huge limit", ev: oomEv, mut: func(e *pb.Event) { res(e).MemoryLimitBytes = MaxBytes + 1 }, field: "memory_limit_bytes"},
		{name: "newline in a kernel line", ev: oomEv, mut: func(e *pb.Event) { e.GetOom().Lines = []string{"a\nKilled process 1 (forged)"} }, field: "oom.lines[0]"},
		{name: "tab in a kernel line", ev: oomEv, mut: func(e *pb.Event) { e.GetOom().Lines = []string{"a\tb"} }},
		{name: "escape in comm", ev: oomEv, mut: func(e *pb.Event) { e.GetOom().Victims[0].Comm = "x\x1b[2J" }, field: "oom.victims[0].comm"},
		{name: "long comm", ev: oomEv, mut: func(e *pb.Event) { e.GetOom().Victims[0].Comm = strings.Repeat("c", MaxCommBytes+1) }, field: "comm"},
		{name: "carriage return in namespace", ev: oomEv, mut: func(e *pb.Event) { e.GetOom().Culprit.Workload = &pb.Workload{Namespace: "shop\r"} }, field: "oom.culprit.workload.namespace"},
		{name: "NUL in a label", ev: oomEv, mut: func(e *pb.Event) { e.GetOom().Victims[0].Workload.Labels = map[string]string{"app": "a\x00"} }, field: "labels"},
		{name: "invalid UTF-8", ev: oomEv, mut: func(e *pb.Event) { e.GetOom().Reason = "\xff" }, field: "oom.reason"},
		{name: "exit code 300", ev: exitEv, mut: func(e *pb.Event) { e.GetExit().ExitCode = 300 }, field: "exit.exit_code"},
		{name: "negative exit code", ev: exitEv, mut: func(e *pb.Event) { e.GetExit().ExitCode = -1 }, field: "exit.exit_code"},
		{name: "exit finished in 2200", ev: exitEv, mut: func(e *pb.Event) {
			e.GetExit().FinishedAt = timestamppb.New(time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC))
		}, field: "exit.finished_at"},
		{name: "newline in evidence", ev: exitEv, mut: func(e *pb.Event) { e.GetExit().Evidence = []string{"x\ny"} }, field: "exit.evidence[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.ev()
			tt.mut(e)
			err := ValidateEventAt(e, testHello, now, DefaultMaxClockSkew)
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.field != "" && err == nil:
				t.Fatal("accepted")
			case tt.field != "" && !strings.Contains(err.Error(), tt.field):
				t.Fatalf("error %q does not name %s", err, tt.field)
			case err != nil && !errors.Is(err, ErrInvalidEvent):
				t.Fatalf("error %v is not ErrInvalidEvent", err)
			}
		})
	}
	if err := ValidateHello(&pb.Hello{Node: "a", BootId: "b", AgentVersion: "1.0\nforged"}); err == nil {
		t.Fatal("a Hello with a newline in agent_version was accepted")
	}
}

func labels(n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprint(i)] = "v"
	}
	return m
}

// FuzzIngestValidate feeds arbitrary encoded events to the validator: it
// must never panic, and what it accepts must keep every limit.
func FuzzIngestValidate(f *testing.F) {
	for _, e := range seeds() {
		b, err := proto.Marshal(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e := &pb.Event{}
		if proto.Unmarshal(data, e) != nil {
			return
		}
		if ValidateEvent(e, testHello) != nil {
			return
		}
		if err := checkLimits(e); err != nil {
			t.Fatalf("accepted an event past the limits: %v", err)
		}
	})
}

// FuzzBadString: the check eight bytes at a time answers as the one byte
// at a time did, and refuses exactly what checking UTF-8 and then each
// byte refuses.
func FuzzBadString(f *testing.F) {
	for _, s := range []string{"", "ok\tline", "a\nb", "\x7f", "caf\xc3\xa9", "\xc3", "\xed\xa0\x80", "\xef\xbf\xbd", "é\x01",
		"[ 1234]  1000  1234   123456     2048   1024   1024     0   172032        0           999 hog",
		"0123456\x1f89abcdef", "0123456789abcde\x7f", "01234567\t9abcdef~", "0123456é89abcdef\x01",
		"0123456\xe2\x82\xac9abcdef", "01234567\xf0\x9f\x98\x80bcdef\x00", "0123456\xe2\x82", " !~\x7e\x7f\x80\xff\x20"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := badString(s, MaxLineBytes), bytewiseBadString(s, MaxLineBytes); got != want {
			t.Fatalf("badString(%q) = %q, want %q", s, got, want)
		}
		// The same answer as checking UTF-8 and then each byte.
		bad := !utf8.ValidString(s) || len(s) > MaxLineBytes
		for i := 0; i < len(s); i++ {
			if b := s[i]; (b < 0x20 && b != '\t') || b == 0x7f {
				bad = true
			}
		}
		if got := badString(s, MaxLineBytes) != ""; got != bad {
			t.Fatalf("badString(%q) refused = %v, want %v", s, got, bad)
		}
	})
}

// TestBadStringEveryByteEverywhere: every byte value, and every UTF-8
// sequence and its cut-short forms, at every offset of a 24-byte line of
// printable ASCII, answered as one byte at a time answers.
func TestBadStringEveryByteEverywhere(t *testing.T) {
	base := "[ 1234]  1000  1234 hog!"
	var pieces []string
	for b := range 256 {
		pieces = append(pieces, string([]byte{byte(b)}))
	}
	for _, r := range []string{"é", "€", "😀", "\uFFFD"} {
		for n := 1; n <= len(r); n++ {
			pieces = append(pieces, r[:n])
		}
	}
	n := 0
	for _, p := range pieces {
		for at := 0; at <= len(base); at++ {
			for _, s := range []string{base[:at] + p + base[at:], base[:at] + p} {
				if got, want := badString(s, MaxLineBytes), bytewiseBadString(s, MaxLineBytes); got != want {
					t.Fatalf("badString(%q) = %q, want %q", s, got, want)
				}
				n++
			}
		}
	}
	if n < 13000 {
		t.Fatalf("only %d strings checked", n)
	}
}

// bytewiseBadString is badString one rune at a time, the way a reader
// of the rules would write it: the fuzz target and
// TestBadStringEveryByteEverywhere hold the two to the same answers.
func bytewiseBadString(s string, max int) string {
	if len(s) > max {
		return fmt.Sprintf("%d bytes, more than %d", len(s), max)
	}
	for i, r := range s {
		if _, size := utf8.DecodeRuneInString(s[i:]); r == utf8.RuneError && size == 1 {
			return "not valid UTF-8"
		}
		if (r < 0x20 && r != '\t') || r == 0x7f {
			return fmt.Sprintf("control character %#02x at byte %d", r, i)
		}
	}
	return ""
}

// TestValidateNamesField puts a control character into each string of
// the seeds and of a real kill, one at a time, and checks that the event
// is refused with an error that names that string by its path (the proto field names from the event
// down, "[i]" for a list's element, `labels["key"]` for a map's value
// and "labels key" for its key): the checker builds the names only when a
// check fails (see checker), from parts that must still join into the
// path.
func TestValidateNamesField(t *testing.T) {
	kill, h, now := realKill(t)
	events := append(seeds(), kill)
	checked := 0
	for i, e := range events {
		hello, at := testHello, t0.Add(time.Minute)
		if e == kill {
			hello, at = h, now
		}
		if err := ValidateEventAt(e, hello, at, DefaultMaxClockSkew); err != nil {
			continue // the nearly valid seeds
		}
		for _, s := range stringFields(e.ProtoReflect(), "") {
			if s.path == "node" || s.path == "boot_id" {
				continue // checked against the Hello first
			}
			c := proto.Clone(e).(*pb.Event)
			s.set(c.ProtoReflect(), "x\x01")
			err := ValidateEventAt(c, hello, at, DefaultMaxClockSkew)
			// Some strings are read before their characters are checked
			// (an event ID, a kill's word beside its enum): the error
			// names them all the same.
			want := ": " + s.path + ": "
			if enum, ok := besideEnum[s.path]; ok {
				want = ": " + enum + ": "
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("event %d, %s: %v; want an error naming %q", i, s.path, err, want)
			}
			checked++
		}
	}
	if checked < 100 {
		t.Fatalf("only %d strings checked", checked)
	}
}

// besideEnum names the strings that an enum beside them, checked first,
// must agree with: the error names the enum.
var besideEnum = map[string]string{"oom.culprit.source": "oom.culprit.culprit_source"}

// stringField is a string somewhere in a message: its path and how to
// set it in a copy of that message.
type stringField struct {
	path string
	set  func(root protoreflect.Message, v string)
}

// stringFields lists every string set in m, f its path.
func stringFields(m protoreflect.Message, f string) []stringField {
	var out []stringField
	at := func(name string) string {
		if f == "" {
			return name
		}
		return f + "." + name
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		path := at(string(fd.Name()))
		switch {
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				key := k.String()
				out = append(out,
					stringField{path + "[" + strconv.QuoteToASCII(key) + "]", func(root protoreflect.Message, s string) {
						find(root, f).Mutable(fd).Map().Set(protoreflect.ValueOfString(key).MapKey(), protoreflect.ValueOfString(s))
					}},
					stringField{path + " key", func(root protoreflect.Message, s string) {
						mm := find(root, f).Mutable(fd).Map()
						val := mm.Get(protoreflect.ValueOfString(key).MapKey())
						mm.Clear(protoreflect.ValueOfString(key).MapKey())
						mm.Set(protoreflect.ValueOfString(s).MapKey(), val)
					}})
				return true
			})
		case fd.IsList():
			for i := 0; i < v.List().Len(); i++ {
				elem := path + "[" + strconv.Itoa(i) + "]"
				switch fd.Kind() {
				case protoreflect.StringKind:
					out = append(out, stringField{elem, func(root protoreflect.Message, s string) {
						find(root, f).Mutable(fd).List().Set(i, protoreflect.ValueOfString(s))
					}})
				case protoreflect.MessageKind:
					out = append(out, stringFields(v.List().Get(i).Message(), elem)...)
				}
			}
		case fd.Kind() == protoreflect.StringKind:
			out = append(out, stringField{path, func(root protoreflect.Message, s string) {
				find(root, f).Set(fd, protoreflect.ValueOfString(s))
			}})
		case fd.Kind() == protoreflect.MessageKind:
			out = append(out, stringFields(v.Message(), path)...)
		}
		return true
	})
	return out
}

// find returns the message at path f (as stringFields writes it) in root.
func find(root protoreflect.Message, f string) protoreflect.Message {
	m := root
	for part := range strings.SplitSeq(f, ".") {
		if part == "" {
			continue
		}
		name, index := part, -1
		if j := strings.IndexByte(part, '['); j >= 0 {
			name = part[:j]
			index, _ = strconv.Atoi(strings.TrimSuffix(part[j+1:], "]"))
		}
		fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
		if index >= 0 {
			m = m.Mutable(fd).List().Get(index).Message()
		} else {
			m = m.Mutable(fd).Message()
		}
	}
	return m
}
