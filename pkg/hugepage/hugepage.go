// Package hugepage turns transparent huge pages off for the whole process
// as it starts, when imported (for that effect alone) by a main package.
//
// On a node whose kernel backs anonymous memory with huge pages whenever it
// can (/sys/kernel/mm/transparent_hugepage/enabled set to "always", the
// default of several distributions), a fault in a 2 MiB-aligned range of
// the Go heap takes a whole 2 MiB page: the agent's idle RSS, a few MiB of
// heap, then moves by up to 2 MiB a page from run to run (15.1 to 19.8 MiB
// in the same guest). The agent has no use for huge pages, and its memory
// limit is small.
//
// It runs at package initialisation, which Go orders by import path among
// the packages ready, so before the larger initialisers (protobuf's and
// gRPC's registries, under google.golang.org) though after a few small
// ones. It depends on syscall alone, so that nothing holds it back.
package hugepage

import "syscall"

// PR_SET_THP_DISABLE and PR_GET_THP_DISABLE (Linux 3.15), from
// include/uapi/linux/prctl.h.
const (
	prSetTHPDisable = 41
	prGetTHPDisable = 42
)

// Err is why transparent huge pages could not be turned off (a kernel
// before 3.15, or not Linux), nil when they were.
var Err error

func init() {
	Err = Disable()
}

// Disable turns transparent huge pages off for this process and the ones
// it starts: faults from now on take 4 KiB pages.
func Disable() error {
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRCTL, prSetTHPDisable, 1, 0, 0, 0, 0); errno != 0 {
		return errno
	}
	return nil
}

// Disabled reports whether transparent huge pages are off for this process.
func Disabled() (bool, error) {
	// PR_GET_THP_DISABLE returns the flag as the call's result.
	r, _, errno := syscall.RawSyscall6(syscall.SYS_PRCTL, prGetTHPDisable, 0, 0, 0, 0, 0)
	if errno != 0 {
		return false, errno
	}
	return r == 1, nil
}
