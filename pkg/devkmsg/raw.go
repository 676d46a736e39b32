package devkmsg

import (
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"

	"github.com/oomwatch/oomwatch/pkg/kernlog"
)

// DevKmsg is the kernel log device's usual path, the default of
// Options.Device. kmsgparser.NewParser opens this path unconditionally; a
// Source given another path (the host's device mounted elsewhere in a
// container) reads it with a parser of its own (see openDevice).
const DevKmsg = "/dev/kmsg"

// maxRecord is the read buffer size. Each read of /dev/kmsg returns exactly
// one record and fails with EINVAL if the buffer is smaller than the record;
// 8192 is the kernel's CONSOLE_EXT_LOG_MAX (and kmsgparser's buffer).
const maxRecord = 8192

// maxScan bounds how many records readNewest reads, so a kernel that logs
// faster than we read cannot keep it busy forever.
const maxScan = 1 << 20

// ErrNoRecord is returned when the kernel log buffer holds no record to read.
var ErrNoRecord = errors.New("kernel log buffer is empty")

// errMalformed is returned for a /dev/kmsg record whose "PRIO,SEQ,USEC,..."
// prefix cannot be parsed.
var errMalformed = errors.New("malformed kmsg record")

// parseHeader parses the prefix of one raw /dev/kmsg record with
// kernlog.ParseHeader, the one parser of it.
func parseHeader(b []byte) (kernlog.Header, error) {
	h, ok := kernlog.ParseHeader(b)
	if !ok {
		return h, fmt.Errorf("%w: %q", errMalformed, b[:min(len(b), 64)])
	}
	return h, nil
}

// openRaw opens the kernel log device at path non-blocking with a plain descriptor (not an
// os.File, whose poller would turn EAGAIN into a wait). A fresh descriptor
// starts at the oldest record still in the buffer.
func openRaw(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

// readRecord reads the next record from a non-blocking /dev/kmsg descriptor.
// EPIPE means the record the descriptor pointed at was overwritten; the kernel
// has moved the descriptor to the oldest record left, so we simply read
// again. It returns ErrNoRecord when no further record exists yet.
func readRecord(fd int, buf []byte, path string) (int, error) {
	for {
		n, err := unix.Read(fd, buf)
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EPIPE):
			continue
		case errors.Is(err, unix.EAGAIN):
			return 0, ErrNoRecord
		default:
			return 0, &fs.PathError{Op: "read", Path: path, Err: err}
		}
	}
}

// readOldest reads the oldest record still in the kernel log buffer and
// returns its exact sequence number and timestamp (microseconds). It is the
// default Options.Oldest.
func readOldest(path string) (seq, usec int64, err error) {
	fd, err := openRaw(path)
	if err != nil {
		return 0, 0, err
	}
	defer unix.Close(fd)
	buf := make([]byte, maxRecord)
	n, err := readRecord(fd, buf, path)
	if err != nil {
		return 0, 0, err
	}
	h, err := parseHeader(buf[:n])
	if err != nil {
		return 0, 0, err
	}
	return h.Seq, h.Usec, nil
}

// readNewest reads through the whole kernel log buffer and returns the
// sequence number of the newest record, or -1 if the buffer is empty. There is
// no cheaper way: lseek(SEEK_END) on /dev/kmsg returns 0, not a position. It
// is the default Options.Newest and runs once per Run, only with a
// checkpoint.
func readNewest(path string) (int64, error) {
	fd, err := openRaw(path)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	buf := make([]byte, maxRecord)
	newest := int64(-1)
	for i := 0; i < maxScan; i++ {
		n, err := readRecord(fd, buf, path)
		if errors.Is(err, ErrNoRecord) {
			break
		}
		if err != nil {
			return 0, err
		}
		h, err := parseHeader(buf[:n])
		if err != nil {
			return 0, err
		}
		newest = max(newest, h.Seq)
	}
	return newest, nil
}
