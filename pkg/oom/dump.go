package oom

import (
	"bytes"
	"strings"
)

// The "Tasks state" table of a report: its header names the columns
// (they changed across kernels), each row one task.

// isDumpHeader recognises "[ pid ]   uid  tgid total_vm      rss ... name".
func isDumpHeader(msg []byte) bool {
	i := 1
	for i < len(msg) && msg[i] == ' ' {
		i++
	}
	return bytes.HasPrefix(msg[i:], []byte("pid")) && bytes.Contains(msg, []byte("rss")) &&
		bytes.Contains(msg, []byte("name"))
}

// dumpLayout describes the columns of a task dump. All kernels since 2.6.36
// print pid, uid, tgid, total_vm and rss first, oom_score_adj second to last
// and the name last; the columns between differ by version.
type dumpLayout struct {
	numeric int // numeric columns after the pid
	// anon is the column of rss_anon (6.x kernels), 0 when the header
	// names none or was not seen.
	anon int
}

// parseDumpHeader counts the numeric columns of a dump header.
func parseDumpHeader(msg string) dumpLayout {
	i := strings.IndexByte(msg, ']')
	if i < 0 {
		return dumpLayout{}
	}
	cols := strings.Fields(msg[i+1:])
	if len(cols) < 2 {
		return dumpLayout{}
	}
	l := dumpLayout{numeric: len(cols) - 1}
	for c, name := range cols[:l.numeric] {
		if name == "rss_anon" {
			l.anon = c
		}
	}
	return l
}

// anonColumn is where a row read as c numeric columns has its rss_anon:
// the header's, else 6.x's layout of ten (uid tgid total_vm rss rss_anon
// rss_file rss_shmem pgtables_bytes swapents oom_score_adj), else none.
func (l dumpLayout) anonColumn(c int) int {
	switch {
	case l.anon > 0 && l.anon < c:
		return l.anon
	case l.numeric == 0 && c == 10:
		return 4
	}
	return 0
}

// maxDumpColumns bounds the numeric columns read from a dump row.
const maxDumpColumns = 12

// dumpRow is a task dump row as scanned: "[ 1234]     0  1234   530382
// 5191 ... 0 name". The numeric columns are read as far as they go, and
// where each starts is kept, so that the row is scanned once whatever the
// layout it is read under.
type dumpRow struct {
	pid   int
	count int // numeric columns after the pid
	nums  [maxDumpColumns]int64
	// starts[c] is where column c starts, after the spaces before it:
	// the name of a row read as c numeric columns.
	starts [maxDumpColumns + 1]int
}

// scan reads msg into row and tells whether it has the shape of a dump row:
// a pid, at least six numbers (uid tgid total_vm rss ... oom_score_adj) and
// a name. Every row of a large report goes through here once. (Reading the
// runs of spaces and digits eight bytes at a time was slower than these
// byte loops, which the CPU predicts well: the rows look alike.)
func (row *dumpRow) scan(msg []byte) bool {
	row.count = 0
	i := 1
	for i < len(msg) && msg[i] == ' ' {
		i++
	}
	pid, n := atoi(msg, i)
	if n == 0 {
		return false
	}
	i += n
	if i >= len(msg) || msg[i] != ']' {
		return false
	}
	i++
	row.pid = pid
	count := 0
	for {
		j := i
		for j < len(msg) && msg[j] == ' ' {
			j++
		}
		row.starts[count] = j
		if count == maxDumpColumns || j == i || j >= len(msg) {
			break
		}
		k := j
		if msg[k] == '-' {
			k++
		}
		v, m := atoi(msg, k)
		if m == 0 || (k+m < len(msg) && msg[k+m] != ' ') {
			break
		}
		if k != j {
			v = -v
		}
		row.nums[count] = int64(v)
		count++
		i = k + m
	}
	row.count = count
	_, ok := row.columns(msg, 0)
	return ok
}

// columns returns the numeric columns a layout of numeric columns reads
// (all that scan found when numeric is 0) and whether the row has six or
// more of them and a name after them.
func (row *dumpRow) columns(msg []byte, numeric int) (int, bool) {
	c := row.count
	if numeric > 0 && numeric < c {
		c = numeric
	}
	return c, c >= 6 && row.starts[c] < len(msg)
}

// nameless tells whether the row scan just read (and refused) has its
// numeric columns and nothing after them: a row whose name a paste wrapped
// onto the next line.
func (row *dumpRow) nameless(msg []byte) bool {
	return row.count >= 6 && row.count < maxDumpColumns && row.starts[row.count] >= len(msg)
}

// name returns the name of the row read as c numeric columns.
func (row *dumpRow) name(msg []byte, c int) []byte { return msg[row.starts[c]:] }

// noAdj is the oom_score_adj of a row that does not show it (cutRow).
const noAdj = -1 << 31

// cutRow tells whether a row's name is where a paste cut the row ("...",
// "…"): the kernel's name column is never only that.
func cutRow(name []byte) bool {
	name = bytes.TrimSpace(name)
	return string(name) == "..." || string(name) == "…"
}

// atoi reads up to 18 decimal digits at b[i:], returning their value and
// how many there were.
func atoi(b []byte, i int) (int, int) {
	v, n := 0, 0
	for i+n < len(b) && n < 18 {
		d := b[i+n] - '0'
		if d > 9 {
			break
		}
		v = v*10 + int(d)
		n++
	}
	return v, n
}
