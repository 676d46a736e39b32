package analysis

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/oomwatch/oomwatch/pkg/kernlog"
	"github.com/oomwatch/oomwatch/pkg/oom"
)

// ErrNotKernelLog reports input in which no line is a kernel log record.
var ErrNotKernelLog = errors.New("no kernel log records found")

// ErrBinaryInput reports input that holds NUL bytes: not a text log.
var ErrBinaryInput = errors.New("input is binary, not a text kernel log")

// LogStats counts what ReadLog saw.
type LogStats struct {
	Lines      int64 // lines read
	Records    int64 // kernel records (any rendering)
	Recognised int64 // records in a kernel rendering (kmsg, dmesg, syslog)
	Events     int64 // events emitted
	Repeats    int64 // reports skipped as copies of one already read
	// Unkilled describes the first maxUnkilled reports that ended without
	// a kill (Assembler.Abandoned counts them all): when and who invoked
	// the OOM killer.
	Unkilled  []string
	Assembler oom.Stats
	// LongLines counts lines over kernlog.MaxLineBytes, skipped;
	// LongLineErrs says which (the first maxLongLineErrs of them).
	LongLines    int64
	LongLineErrs []error
}

// maxLongLineErrs bounds LogStats.LongLineErrs.
const maxLongLineErrs = 5

// maxUnkilled bounds LogStats.Unkilled.
const maxUnkilled = 5

// unkilled describes a report without a kill: "at +29925.400s (uptime),
// nfsd (pid 4242) invoked the OOM killer".
func unkilled(r *oom.Report) string {
	var b strings.Builder
	switch {
	case !r.Wall.IsZero():
		b.WriteString("at " + r.Wall.UTC().Format(time.RFC3339))
	case r.HasMono:
		fmt.Fprintf(&b, "at +%.3fs (uptime)", r.Mono.Seconds())
	case r.Seq >= 0:
		fmt.Fprintf(&b, "at sequence %d", r.Seq)
	default:
		b.WriteString("(no time)")
	}
	switch t := r.Trigger; {
	case t != nil && t.PID > 0:
		fmt.Fprintf(&b, ", %s (pid %d) invoked the OOM killer", t.Comm, t.PID)
	case t != nil:
		fmt.Fprintf(&b, ", %s invoked the OOM killer", t.Comm)
	default:
		b.WriteString(", a report whose start is missing")
	}
	return b.String()
}

// ReadLog reads a kernel log in any mix of renderings and calls emit for
// every OOM kill, in order. It streams: memory does not grow with the input.
// Input with no kernel record at all, or binary input, is an error.
func ReadLog(in io.Reader, opts StreamOptions, emit func(Event)) (LogStats, error) {
	return ReadLogYear(in, 0, opts, emit)
}

// ReadLogYear is ReadLog with the year given to syslog timestamps that
// carry none (0: the current year, or the one before for dates ahead).
func ReadLogYear(in io.Reader, year int, opts StreamOptions, emit func(Event)) (LogStats, error) {
	return ReadLogIn(in, year, nil, opts, emit)
}

// ReadLogIn is ReadLogYear with the time zone of timestamps that carry
// none (syslog, dmesg -T); nil is the local zone.
func ReadLogIn(in io.Reader, year int, loc *time.Location, opts StreamOptions, emit func(Event)) (LogStats, error) {
	var st LogStats
	stream := NewStream(opts, func(e Event) {
		st.Events++
		emit(e)
	})
	asm := oom.NewAssembler(oom.Options{Abandoned: func(r *oom.Report) {
		if len(st.Unkilled) < maxUnkilled {
			st.Unkilled = append(st.Unkilled, unkilled(r))
		}
	}}, stream.Add)
	rd := kernlog.NewReader(in)
	rd.Year = year
	if loc != nil {
		rd.Location = loc
	}
	rd.LongLine = func(err error) {
		st.LongLines++
		if len(st.LongLineErrs) < maxLongLineErrs {
			st.LongLineErrs = append(st.LongLineErrs, err)
		}
	}
	boots := 0
	for rd.Next() {
		rec := rd.Record()
		st.Records++
		if bytes.IndexByte(rec.Message, 0) >= 0 {
			return st, fmt.Errorf("line %d: %w", rd.Line(), ErrBinaryInput)
		}
		if b := rd.Boots(); b != boots {
			// A report open at a reboot ends there; the next boot's
			// PIDs are other processes.
			boots = b
			asm.Flush()
			stream.NewBoot()
		}
		if rd.Format() != kernlog.FormatBare {
			st.Recognised++
		}
		asm.Feed(rec)
	}
	st.Lines = rd.Line()
	asm.Flush()
	stream.Flush()
	st.Repeats = stream.Repeats()
	st.Assembler = asm.Stats()
	if err := rd.Err(); err != nil {
		return st, err
	}
	if st.Recognised == 0 && st.Events == 0 && st.Assembler.Abandoned == 0 {
		return st, ErrNotKernelLog
	}
	return st, nil
}
