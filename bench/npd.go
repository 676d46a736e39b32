package bench

import (
	"regexp"
	"strings"
	"time"

	"github.com/euank/go-kmsg-parser/kmsgparser"
)

// NPDOOMPattern is the "OOMKilling" temporary rule of node-problem-detector's
// config/kernel-monitor.json (kubernetes/node-problem-detector master,
// 2026), the only rule of that file about OOM kills.
const NPDOOMPattern = `Killed process \d+ (.+) total-vm:\d+kB, anon-rss:\d+kB, file-rss:\d+kB.*`

// NPDBufferSize is kernel-monitor.json's "bufferSize".
const NPDBufferSize = 10

// This file re-creates, from reading node-problem-detector's source, what
// its kernel monitor does with each /dev/kmsg record; it shares no code with
// it (NPD is not importable without its whole daemon):
//
//   - pkg/systemlogmonitor/logwatchers/kmsg: the watcher reads kmsgparser's
//     channel, drops empty messages and those older than its start time, and
//     sends a *Log{Message: strings.TrimSpace(msg), Timestamp} on a channel
//     of 100;
//   - pkg/systemlogmonitor/log_monitor.go: for each log the monitor pushes it
//     into the log buffer, then matches every rule against the buffer; a
//     match of a temporary rule becomes an event whose message is the
//     matched lines joined by "\n";
//   - pkg/systemlogmonitor/log_buffer.go: a ring of bufferSize lines; a rule
//     is compiled once as `(?:rule)\z`, so it must match up to the end of the
//     newest line. Before PR #1329 every Match joins the ring's lines with
//     "\n" (oldest first, empty slots included) and searches the joined
//     string; since #1329 a rule that cannot match a newline (the OOM rule:
//     its `.` excludes "\n") is matched against the newest line alone.
//
// Only the OOMKilling rule is applied. The shipped kernel monitor matches
// its 12 rules on every line, so a real NPD does more work per record than
// measured here: its figures are an upper bound on NPD's speed.

// npdLog is NPD's types.Log.
type npdLog struct {
	Message   string
	Timestamp time.Time
}

// npdEvent is the event a temporary rule's match produces.
type npdEvent struct {
	Reason    string
	Message   string
	Timestamp time.Time
}

// npdRing is NPD's log buffer: the newest bufferSize lines.
type npdRing struct {
	logs  []*npdLog
	msgs  []string
	count int // lines pushed so far
}

func newNPDRing(size int) *npdRing {
	return &npdRing{logs: make([]*npdLog, size), msgs: make([]string, size)}
}

func (r *npdRing) push(l *npdLog) {
	i := r.count % len(r.logs)
	r.logs[i], r.msgs[i] = l, l.Message
	r.count++
}

// matchJoined searches the ring's lines, oldest first, joined by newlines,
// and returns the lines the match spans.
func (r *npdRing) matchJoined(re *regexp.Regexp) []*npdLog {
	n := len(r.msgs)
	head := r.count % n
	ordered := make([]string, 0, n)
	ordered = append(ordered, r.msgs[head:]...)
	ordered = append(ordered, r.msgs[:head]...)
	joined := strings.Join(ordered, "\n")
	loc := re.FindStringIndex(joined)
	if loc == nil {
		return nil
	}
	// Walk back from the newest line until the lines cover the match start.
	need := len(joined) - loc[0]
	var spanned []*npdLog
	covered := 0
	for k := 0; k < n; k++ {
		i := (r.count - 1 - k + n) % n
		if r.logs[i] == nil {
			break
		}
		spanned = append(spanned, r.logs[i])
		covered += len(r.msgs[i]) + 1
		if covered >= need {
			break
		}
	}
	for a, b := 0, len(spanned)-1; a < b; a, b = a+1, b-1 {
		spanned[a], spanned[b] = spanned[b], spanned[a]
	}
	return spanned
}

// matchLast matches the newest line alone.
func (r *npdRing) matchLast(re *regexp.Regexp) []*npdLog {
	if r.count == 0 {
		return nil
	}
	i := (r.count - 1) % len(r.logs)
	if !re.MatchString(r.msgs[i]) {
		return nil
	}
	return []*npdLog{r.logs[i]}
}

// npdMonitor is NPD's kernel monitor with the OOMKilling rule.
type npdMonitor struct {
	rule     *regexp.Regexp
	lastLine bool
}

func newNPDMonitor(lastLine bool) (*npdMonitor, error) {
	re, err := regexp.Compile(`(?:` + NPDOOMPattern + `)\z`)
	if err != nil {
		return nil, err
	}
	return &npdMonitor{rule: re, lastLine: lastLine}, nil
}

// run reads p to its end, as NPD's watcher and monitor goroutines do, and
// calls emit for every event. start is the watcher's start time: records
// older than it are dropped, as NPD drops those beyond its lookback.
func (m *npdMonitor) run(p kmsgparser.Parser, start time.Time, emit func(npdEvent)) {
	logs := make(chan *npdLog, 100)
	go func() {
		defer close(logs)
		defer p.Close()
		for msg := range p.Parse() {
			if msg.Message == "" || msg.Timestamp.Before(start) {
				continue
			}
			logs <- &npdLog{Message: strings.TrimSpace(msg.Message), Timestamp: msg.Timestamp}
		}
	}()
	ring := newNPDRing(NPDBufferSize)
	for l := range logs {
		ring.push(l)
		var matched []*npdLog
		if m.lastLine {
			matched = ring.matchLast(m.rule)
		} else {
			matched = ring.matchJoined(m.rule)
		}
		if len(matched) == 0 {
			continue
		}
		msgs := make([]string, len(matched))
		for i, ml := range matched {
			msgs[i] = ml.Message
		}
		emit(npdEvent{Reason: "OOMKilling", Message: strings.Join(msgs, "\n"), Timestamp: matched[0].Timestamp})
	}
}
