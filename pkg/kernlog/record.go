// Package kernlog reads kernel log records in the renderings an SRE meets: raw
// /dev/kmsg records, util-linux dmesg output, syslog and journal lines, and
// bare message bodies. Every rendering is reduced to a Record that keeps the
// kernel sequence number and monotonic timestamp wherever the format has them.
// It is the kernel log as text; devkmsg is the live device that feeds the
// agent, and its records are Records of this package.
package kernlog

import "time"

// NoSeq marks a record whose rendering carries no kernel sequence number.
const NoSeq int64 = -1

// Record is one kernel log record.
//
// Message aliases the reader's buffer when the record comes from a Reader:
// it is valid only until the next call to Next. Callers that keep it must
// copy it (string(rec.Message)).
type Record struct {
	// Seq is the kernel's sequence number, or NoSeq.
	Seq int64
	// Mono is the kernel's monotonic timestamp (time since boot); valid
	// when HasMono is true.
	Mono time.Duration
	// HasMono reports whether the rendering carried a monotonic timestamp.
	HasMono bool
	// Wall is the wall-clock time the rendering gave, or the zero time.
	Wall time.Time
	// Priority is the syslog priority (facility<<3|level), or -1.
	Priority int
	// Message is the message body without prefixes or trailing newline.
	Message []byte
}
