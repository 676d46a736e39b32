package devkmsg

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// BootTime returns the wall-clock time at which CLOCK_MONOTONIC was zero:
// CLOCK_REALTIME now minus CLOCK_MONOTONIC now. Adding a record's Mono to it
// gives the record's wall-clock time.
//
// printk stamps records with local_clock() (kernel/printk/printk.c), a
// sched_clock-based nanosecond clock that, like CLOCK_MONOTONIC and unlike
// CLOCK_BOOTTIME, does not advance while the machine is suspended; that is
// why CLOCK_MONOTONIC, not the boot time that uptime or sysinfo give, is the
// right reference. The match is not perfect: local_clock is not NTP-slewed
// and can sit a fraction of a millisecond from CLOCK_MONOTONIC (about +0.4 ms
// measured on 6.18 under Firecracker), and the two drift apart by the
// oscillator's frequency error over long uptimes. A wall-clock step moves the
// result, so call it again rather than caching it for days.
//
// Each of a few samples reads CLOCK_REALTIME between two CLOCK_MONOTONIC
// readings; the narrowest bracket wins and its midpoint is used, so the error
// is at most half the narrowest bracket (well under a microsecond).
func BootTime() (time.Time, error) {
	const samples = 5
	var (
		best = time.Duration(-1)
		boot int64
	)
	for range samples {
		var m1, r, m2 unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &m1); err != nil {
			return time.Time{}, fmt.Errorf("clock_gettime(CLOCK_MONOTONIC): %w", err)
		}
		if err := unix.ClockGettime(unix.CLOCK_REALTIME, &r); err != nil {
			return time.Time{}, fmt.Errorf("clock_gettime(CLOCK_REALTIME): %w", err)
		}
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &m2); err != nil {
			return time.Time{}, fmt.Errorf("clock_gettime(CLOCK_MONOTONIC): %w", err)
		}
		width := time.Duration(m2.Nano() - m1.Nano())
		if best < 0 || width < best {
			best = width
			boot = r.Nano() - (m1.Nano() + int64(width)/2)
		}
	}
	return time.Unix(0, boot), nil
}

// uptime returns sysinfo(2)'s uptime in whole seconds, the value kmsgparser
// subtracts from time.Now() to make its boot time. (The kernel rounds
// CLOCK_BOOTTIME up to the next second there.)
func uptime() (int64, error) {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0, fmt.Errorf("sysinfo: %w", err)
	}
	return int64(si.Uptime), nil
}

// maxPins bounds the direct reads of /dev/kmsg one parser instance may make to
// pin its clock (the read before the parser opens counts).
const maxPins = 4

// clock recovers the kernel's exact microsecond timestamp from the Timestamp
// kmsgparser gives each message.
//
// kmsgparser sets Timestamp = base + usec, where base = time.Now() - sysinfo
// uptime in whole seconds, computed once in NewParser. base is unknown (and
// off from the real boot time by up to a second, more after a suspend, since
// sysinfo counts CLOCK_BOOTTIME), but it is the same for every message of one
// parser, so usec = Timestamp - base is exact once base is known exactly.
//
// Pinning: before the parser opens, we read the oldest record (seq0, usec0)
// from our own descriptor. A new descriptor starts at the oldest record, so
// the parser's first message is normally seq0 too, and then
// base = Timestamp - usec0 exactly. If records were overwritten between the
// two opens, the parser starts later; we read the oldest record again, which
// cannot be older than the message just received (the buffer's tail only
// moves forward) and will arrive from the parser in order, unless the parser
// itself overflows, and pin on that.
//
// Until pinned, base is estimated: NewParser reads sysinfo and then
// time.Now() between our readings u1, tA (before) and tB, u2 (after), so
// base lies in [tA - u2, tB - u1]. We take the midpoint; the error is at most
// (tB-tA)/2 + (u2-u1)/2 s, typically a few microseconds since u1 == u2
// except when a second boundary falls inside the bracket. Timestamps and
// the estimate carry Go's monotonic reading, so the arithmetic is immune to
// wall-clock steps.
type clock struct {
	base  time.Time
	exact bool
	// bound is the largest error of base while it is estimated.
	bound time.Duration
	// pendSeq, pendUsec: a record read directly whose Timestamp will pin
	// base; pendSeq < 0 when there is none.
	pendSeq, pendUsec int64
	pins              int
}

// estimate sets the bracketed estimate of base described on clock.
func (c *clock) estimate(u1 int64, tA, tB time.Time, u2 int64) {
	half := tB.Sub(tA) / 2
	c.base = tA.Add(half).Add(-time.Duration(u1+u2) * time.Second / 2)
	c.bound = half + time.Duration(u2-u1)*time.Second/2
	c.exact = false
}

// pin offers the clock one message (seq, ts) from its parser, in order.
// oldest reads the oldest record directly, as Options.Oldest does. It
// reports whether this message made the clock exact and, if so, the
// correction applied to the estimate.
func (c *clock) pin(seq int64, ts time.Time, oldest func() (int64, int64, error)) (pinned bool, moved time.Duration) {
	if c.exact {
		return false, 0
	}
	if c.pendSeq < 0 || seq > c.pendSeq {
		// Nothing to wait for, or the parser skipped past it.
		if c.pins >= maxPins {
			c.pendSeq = -1
			return false, 0
		}
		c.pins++
		s, u, err := oldest()
		if err != nil {
			c.pendSeq = -1
			return false, 0
		}
		c.pendSeq, c.pendUsec = s, u
	}
	if seq != c.pendSeq {
		return false, 0
	}
	base := ts.Add(-time.Duration(c.pendUsec) * time.Microsecond)
	moved = base.Sub(c.base)
	c.base, c.exact, c.bound, c.pendSeq = base, true, 0, -1
	return true, moved
}

// mono returns the kernel timestamp of a message with Timestamp ts.
func (c *clock) mono(ts time.Time) time.Duration {
	d := ts.Sub(c.base)
	if !c.exact {
		// Once exact, base and ts differ by whole microseconds.
		d = d.Round(time.Microsecond)
	}
	return max(d, 0)
}
