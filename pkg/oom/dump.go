package oom

import (
	"bytes"
	"encoding/binary"
	"math/bits"
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
// layout it is read under. A column's value is computed when asked for
// (num): a task keeps five of a row's ten.
type dumpRow struct {
	pid   int
	count int // numeric columns after the pid
	msg   []byte
	// at[c] and width[c] are where column c's digits start (after its
	// '-') and how many there are; bit c of neg is its sign.
	at    [maxDumpColumns]int32
	width [maxDumpColumns]uint8
	neg   uint16
	// starts[c] is where column c starts, after the spaces before it:
	// the name of a row read as c numeric columns.
	starts [maxDumpColumns + 1]int
}

// num returns the value of numeric column c < row.count.
func (row *dumpRow) num(c int) int64 {
	v := int64(digits(row.msg, int(row.at[c]), int(row.width[c])))
	if row.neg>>c&1 != 0 {
		v = -v
	}
	return v
}

// scan reads msg into row and tells whether it has the shape of a dump row:
// a pid, at least six numbers (uid tgid total_vm rss ... oom_score_adj) and
// a name. Every row of a large report goes through here once, so where
// rowMasks has vector instructions a row of up to 128 bytes (any kernel's,
// with a name of up to 15) is read through its masks (scanMasked), else
// byte by byte (scanLoop); both read the same.
func (row *dumpRow) scan(msg []byte) bool {
	if maskedScan && len(msg) >= 16 && len(msg) <= maxMaskedRow {
		return row.scanMasked(msg)
	}
	return row.scanLoop(msg)
}

// maxMaskedRow is the longest row scanMasked reads: rowMasks's masks hold
// 128 bytes.
const maxMaskedRow = 128

// scanMasked is scanLoop with every run of spaces and of digits measured
// from the row's masks by a bit count, and each number's value computed
// from its bytes eight at a time: a byte loop's end, mispredicted whenever
// a number's width changes from the row before, costs more than the bytes.
// len(msg) must be at most maxMaskedRow.
func (row *dumpRow) scanMasked(msg []byte) bool {
	var sp, dg [2]uint64
	rowMasks(msg, &sp, &dg)
	row.count, row.msg, row.neg = 0, msg, 0
	i := 1 + run(&sp, 1)
	n := run(&dg, i)
	// atoi reads 18 digits at most: a longer run is no number.
	if n == 0 || n > 18 {
		return false
	}
	pid := digits(msg, i, n)
	i += n
	if i >= len(msg) || msg[i] != ']' {
		return false
	}
	i++
	row.pid = pid
	count := 0
	for {
		j := i + run(&sp, i)
		row.starts[count] = j
		if count == maxDumpColumns || j == i || j >= len(msg) {
			break
		}
		k := j
		if msg[k] == '-' {
			k++
		}
		m := run(&dg, k)
		if m == 0 || m > 18 || (k+m < len(msg) && msg[k+m] != ' ') {
			break
		}
		row.column(count, j, k, m)
		count++
		i = k + m
	}
	row.count = count
	_, ok := row.columns(msg, 0)
	return ok
}

// column records numeric column c, starting at j, its digits at k (after
// a '-' when k > j) and m of them.
func (row *dumpRow) column(c, j, k, m int) {
	row.at[c] = int32(k)
	row.width[c] = uint8(m)
	if k != j {
		row.neg |= 1 << c
	}
}

// run returns how many bits of the 128-bit mask m are set in a row from
// bit p on (0 when p >= 128).
func run(m *[2]uint64, p int) int {
	if p < 64 {
		n := bits.TrailingZeros64(^(m[0] >> p))
		if n < 64-p {
			return n
		}
		return n + bits.TrailingZeros64(^m[1])
	}
	if p >= 128 {
		return 0
	}
	return bits.TrailingZeros64(^(m[1] >> (p - 64)))
}

// digits returns the value of the n ASCII digits at b[i:], 1 <= n <= 18:
// eight at a time where eight bytes can be read and n <= 16 (a dump's
// numbers have at most 10), else one at a time.
func digits(b []byte, i, n int) int {
	if i+8 > len(b) || n > 16 {
		v, _ := atoi(b[:i+n], i)
		return v
	}
	if n <= 8 {
		return int(digits8(binary.LittleEndian.Uint64(b[i:]), n))
	}
	hi := digits8(binary.LittleEndian.Uint64(b[i:]), n-8)
	lo := digits8(binary.LittleEndian.Uint64(b[i+n-8:]), 8)
	return int(hi*100000000 + lo)
}

// digits8 returns the value of the first n (1-8) bytes of w, read
// little-endian, which must be ASCII digits: they are moved to the top
// bytes (the bytes after them fall out, zeros come in as leading digits),
// then summed in pairs, fours and eights, one multiplication each.
func digits8(w uint64, n int) uint64 {
	w -= 0x3030303030303030
	w <<= (64 - 8*uint(n)) & 63
	w = (w*10 + w>>8) & 0x00ff00ff00ff00ff
	w = (w*100 + w>>16) & 0x0000ffff0000ffff
	return (w*10000 + w>>32) & 0xffffffff
}

// scanLoop is scan byte by byte: for rows too long for the masks, and
// where rowMasks has no vector form.
func (row *dumpRow) scanLoop(msg []byte) bool {
	row.count, row.msg, row.neg = 0, msg, 0
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
		m := 0
		for k+m < len(msg) && m < 18 && msg[k+m]-'0' <= 9 {
			m++
		}
		if m == 0 || (k+m < len(msg) && msg[k+m] != ' ') {
			break
		}
		row.column(count, j, k, m)
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
