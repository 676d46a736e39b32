//go:build !amd64

package oom

// maskedScan is false where rowMasks has no vector form: a row's bytes
// are then read one at a time by dumpRow.scanLoop, which is faster than
// this rowMasks.
const maskedScan = false

// rowMasks sets bit i of *sp when b[i] is ' ' and of *dg when b[i] is an
// ASCII digit, for len(b) <= 128; both masks must be zero on entry. It
// lets the tests read rows through scanMasked on every architecture.
func rowMasks(b []byte, sp, dg *[2]uint64) {
	for i, c := range b {
		if c == ' ' {
			sp[i>>6] |= 1 << (i & 63)
		}
		if c-'0' <= 9 {
			dg[i>>6] |= 1 << (i & 63)
		}
	}
}
