package oom

// maskedScan tells whether rowMasks runs as vector instructions, so that
// dumpRow.scan reads rows through it.
const maskedScan = true

// rowMasks sets bit i of *sp when b[i] is ' ' and of *dg when b[i] is an
// ASCII digit, for 16 <= len(b) <= 128; both masks must be zero on entry.
// It is written in assembly (rowmask_amd64.s).
//
//go:noescape
func rowMasks(b []byte, sp, dg *[2]uint64)
