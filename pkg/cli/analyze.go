package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	_ "time/tzdata" // --tz names, where the machine has no zoneinfo
	"unicode/utf8"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/vocab"
	"github.com/oomwatch/oomwatch/pkg/wire"
)

func analyzeCmd(io IO, g *globals) *cobra.Command {
	var a analyzeFlags
	cmd := &cobra.Command{
		Use:   "analyze [FILE|-]...",
		Short: "Analyze a kernel log (files, or - for stdin) and explain every OOM kill",
		Long: "Reads kernel logs (raw /dev/kmsg records, dmesg, syslog or journal lines, or bare message\n" +
			"bodies, mixed freely) and explains every OOM kill. With no FILE, reads standard input.",
		RunE: func(cmd *cobra.Command, files []string) error {
			if err := g.checkOutput(); err != nil {
				return err
			}
			return runAnalyze(cmd.Context(), io, g.output, a, files)
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&a.lines, "lines", false, "with -o json, include each report's raw kernel lines")
	fs.StringVar(&a.bootTime, "boot-time", "", "RFC 3339 time the node booted, to date records that carry only uptime")
	fs.IntVar(&a.year, "year", 0, "year of syslog timestamps that carry none (default: the year journalctl's '-- Logs begin at' banner gives, else this year)")
	fs.StringVar(&a.tz, "tz", "", "time zone of timestamps that carry none (syslog, dmesg -T): an IANA name (Asia/Shanghai), UTC, or an offset (+08:00) (default: this machine's)")
	fs.DurationVar(&a.hold, "window", time.Minute, "how far ahead (kernel time, or the wall clock's in logs without it) to look for what later reports say of a PID or an incident")
	return cmd
}

// analyzeFlags are analyze's own flags.
type analyzeFlags struct {
	lines    bool
	bootTime string
	year     int
	tz       string
	hold     time.Duration
}

func runAnalyze(ctx context.Context, io IO, output string, a analyzeFlags, files []string) error {
	lines, year, hold := &a.lines, &a.year, &a.hold
	bootTime := &a.bootTime
	opts := analysis.StreamOptions{Hold: *hold}
	loc, err := parseZone(a.tz)
	if err != nil {
		return usageError{fmt.Errorf("--tz: %w", err)}
	}
	if *bootTime != "" {
		t, err := time.Parse(time.RFC3339Nano, *bootTime)
		if err != nil {
			return usageError{fmt.Errorf("--boot-time: %w", err)}
		}
		opts.BootTime = t
	}
	if len(files) == 0 {
		files = []string{"-"}
	}
	out := bufio.NewWriter(io.Stdout)
	defer out.Flush()
	var tw *tabwriter.Writer
	var sum summary
	var jsonErr error
	emit := func(e analysis.Event) {
		sum.add(e)
		if output == "json" {
			// The API's event, as `oomctl events` prints it; offline,
			// with no node or boot.
			pe := wire.FromAnalysis("", "", e)
			if !*lines {
				pe.GetOom().Lines, pe.GetOom().LinesDropped = nil, 0
			}
			validUTF8(pe.ProtoReflect())
			if err := apiJSON(out, pe); err != nil && jsonErr == nil {
				jsonErr = err
			}
			return
		}
		if tw == nil {
			tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tKIND\tVICTIM\tRSS\tREQ/LIMIT\tCOLLATERAL\tCULPRIT")
		}
		fmt.Fprintln(tw, termSafe(tableRow(e, output == "wide")))
	}
	for _, name := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := analyzeOne(name, io.Stdin, io.Stderr, *year, loc, opts, emit); err != nil {
			if tw != nil {
				tw.Flush()
			}
			return err
		}
	}
	if tw != nil {
		tw.Flush()
	}
	if output != "json" {
		fmt.Fprintln(out, sum.String())
	}
	return jsonErr
}

// validUTF8 replaces the bytes of m's strings that are not UTF-8 with
// U+FFFD, as encoding/json does, since protojson refuses them: a kernel log
// read as text (dmesg, syslog) may hold raw bytes in a command name or a
// line, which /dev/kmsg would have escaped as \xNN.
func validUTF8(m protoreflect.Message) {
	fix := func(v protoreflect.Value) (protoreflect.Value, bool) {
		if s := v.String(); !utf8.ValidString(s) {
			return protoreflect.ValueOfString(strings.ToValidUTF8(s, "\uFFFD")), true
		}
		return v, false
	}
	type change struct {
		fd protoreflect.FieldDescriptor
		v  protoreflect.Value
	}
	var changes []change
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			// Pod labels, which a kernel log does not hold.
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				switch {
				case fd.Message() != nil:
					validUTF8(l.Get(i).Message())
				case fd.Kind() == protoreflect.StringKind:
					if s, ok := fix(l.Get(i)); ok {
						l.Set(i, s)
					}
				}
			}
		case fd.Message() != nil:
			validUTF8(v.Message())
		case fd.Kind() == protoreflect.StringKind:
			if s, ok := fix(v); ok {
				changes = append(changes, change{fd, s})
			}
		}
		return true
	})
	for _, c := range changes {
		m.Set(c.fd, c.v)
	}
}

func analyzeOne(name string, stdin io.Reader, stderr io.Writer, year int, loc *time.Location, opts analysis.StreamOptions, emit func(analysis.Event)) error {
	var in io.Reader = stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	st, err := analysis.ReadLogIn(in, year, loc, opts, emit)
	for _, e := range st.LongLineErrs {
		termLine(stderr, "oomctl analyze: warning: %s: %v\n", displayName(name), e)
	}
	if more := st.LongLines - int64(len(st.LongLineErrs)); more > 0 {
		termLine(stderr, "oomctl analyze: warning: %s: %d more over-long lines skipped\n", displayName(name), more)
	}
	if st.Repeats > 0 {
		termLine(stderr, "oomctl analyze: %s: %d report(s) skipped as copies of one already read (every kill line the same, to its time)\n", displayName(name), st.Repeats)
	}
	for _, u := range st.Unkilled {
		termLine(stderr, "oomctl analyze: %s: an OOM report without a kill line %s (cut from this copy of the log, or nothing was killed)\n", displayName(name), u)
	}
	if more := st.Assembler.Abandoned - int64(len(st.Unkilled)); more > 0 {
		termLine(stderr, "oomctl analyze: %s: %d more OOM reports without a kill line\n", displayName(name), more)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", displayName(name), err)
	}
	return nil
}

func displayName(name string) string {
	if name == "-" {
		return "standard input"
	}
	return name
}

type summary struct{ kills, node, limit, other, collateral, unknown int }

func (s *summary) add(e analysis.Event) {
	s.kills++
	switch e.Kind {
	case analysis.KindNode:
		s.node++
	case analysis.KindLimit:
		s.limit++
	default:
		s.other++
	}
	switch e.CollateralVerdict {
	case analysis.CollateralYes:
		s.collateral++
	case analysis.CollateralUnknown:
		s.unknown++
	}
}

func (s summary) String() string {
	out := fmt.Sprintf("%d kills: %d node-level, %d limit-level", s.kills, s.node, s.limit)
	if s.other > 0 {
		out += fmt.Sprintf(", %d other", s.other)
	}
	out += fmt.Sprintf(", %d collateral", s.collateral)
	if s.unknown > 0 {
		out += fmt.Sprintf(", %d unknown", s.unknown)
	}
	return out
}

func tableRow(e analysis.Event, wide bool) string {
	when := "-"
	switch {
	case e.Time != nil:
		when = e.Time.UTC().Format("2006-01-02T15:04:05Z")
	case e.UptimeSeconds != nil:
		when = fmt.Sprintf("+%.3fs", *e.UptimeSeconds)
	}
	kind := e.Kind
	if e.LimitScope != "" {
		kind += "/" + e.LimitScope
	}
	if !e.Complete {
		kind += "*"
	}
	v := e.Victims[0]
	victim := processCell(v.PID, v.Comm, v.Workload, wide)
	shared := analysis.Sharing(e.Victims)
	if shared > 0 {
		victim += fmt.Sprintf(" +%d sharing", shared)
	}
	if n := len(e.Victims) - 1 - shared; n > 0 {
		victim += fmt.Sprintf(" +%d group", n)
	}
	rss := "-"
	if v.RSSBytes != nil {
		rss = analysis.Bytes(*v.RSSBytes)
	}
	coll := e.CollateralVerdict
	if coll == "" {
		coll = "-"
	}
	culprit := "-"
	if c := e.Culprit; c != nil {
		culprit = processCell(c.PID, c.Comm, c.Workload, wide)
		if c.RSSBytes != nil {
			culprit += " " + analysis.Bytes(*c.RSSBytes)
		}
	}
	return strings.Join([]string{when, kind, victim, rss, requestLimit(v.Workload), coll, culprit}, "\t")
}

// requestLimit is a container's memory request and limit, "none" when the
// pod spec or the cgroup says there is none, "?" when unknown.
func requestLimit(w analysis.Workload) string {
	r := w.ContainerResources
	if r == nil {
		return "-"
	}
	req, limit := "?", "?"
	switch {
	case r.SpecRead && r.MemoryRequestBytes > 0:
		req = shortBytes(r.MemoryRequestBytes)
	case r.SpecRead:
		req = "none"
	}
	switch {
	case r.MemoryLimitBytes > 0:
		limit = shortBytes(r.MemoryLimitBytes)
	case r.SpecRead || (r.CgroupRead && r.MemoryMaxBytes == 0):
		limit = "none"
	}
	if req == "?" && limit == "?" {
		return "-"
	}
	return req + "/" + limit
}

// shortBytes writes whole MiB and GiB as Kubernetes quantities (512Mi).
func shortBytes(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return fmt.Sprintf("%dGi", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dMi", n>>20)
	}
	return analysis.Bytes(n)
}

// processCell names a process by its workload: names when known, IDs
// (shortened unless wide) otherwise.
func processCell(pid int, comm string, w analysis.Workload, wide bool) string {
	proc := fmt.Sprintf("%s[%d]", comm, pid)
	if pid == 0 {
		proc = comm
	}
	if c := vocab.Cell(w.Names(), wide); c != "" {
		return c + " " + proc
	}
	return proc
}

// parseZone reads --tz: "" is this machine's zone (nil), "UTC", "Local", an
// offset ("+08:00", "-0430", "+8"), or an IANA name (the names are built
// into the binary: a container image may have no zoneinfo).
func parseZone(s string) (*time.Location, error) {
	switch {
	case s == "":
		return nil, nil
	case strings.EqualFold(s, "utc"), s == "Z":
		return time.UTC, nil
	case strings.EqualFold(s, "local"):
		return time.Local, nil
	case s[0] == '+' || s[0] == '-':
		sign := 1
		if s[0] == '-' {
			sign = -1
		}
		hh, mm, ok := strings.Cut(s[1:], ":")
		if !ok && len(hh) == 4 {
			hh, mm = hh[:2], hh[2:]
		}
		h, err := strconv.Atoi(hh)
		m := 0
		if err == nil && mm != "" {
			m, err = strconv.Atoi(mm)
		}
		if err != nil || len(hh) > 2 || len(mm) > 2 || h > 14 || m > 59 || h < 0 || m < 0 {
			return nil, fmt.Errorf("%q is not an offset like +08:00", s)
		}
		return time.FixedZone(s, sign*(h*3600+m*60)), nil
	}
	loc, err := time.LoadLocation(s)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	return loc, nil
}
