package devkmsg

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/euank/go-kmsg-parser/kmsgparser"

	"github.com/oomwatch/oomwatch/pkg/kernlog"
)

// device is a kmsgparser.Parser for a kernel log device at any path:
// kmsgparser.NewParser opens /dev/kmsg and nothing else. It keeps
// kmsgparser's contract, on which the clock and Take rely: one record per
// read(2), a Timestamp of base plus the record's microseconds where base is
// the wall-clock time less sysinfo's uptime in whole seconds, taken once at
// open, and the Message as the text after the header's ';' with the
// dictionary lines. It differs where kmsgparser is wrong: an overwritten
// record (EPIPE, wrapped by os.File) is skipped, not the end of the stream.
type device struct {
	f    *os.File
	path string
	base time.Time
	log  kmsgparser.Logger
}

// openDevice opens the kernel log device at path, checking that it is a
// character device: a regular file or a pipe would not keep the one record
// per read that the format needs.
func openDevice(path string) (*device, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	if st.Mode()&os.ModeCharDevice == 0 {
		_ = f.Close()
		return nil, fmt.Errorf("%s: not a character device (the kernel log device is /dev/kmsg, major 1 minor 11)", path)
	}
	up, err := uptime()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return &device{f: f, path: path, base: time.Now().Add(-time.Duration(up) * time.Second), log: discard{}}, nil
}

func (d *device) SetLogger(log kmsgparser.Logger) { d.log = log }

func (d *device) Close() error { return d.f.Close() }

func (d *device) SeekEnd() error {
	_, err := d.f.Seek(0, io.SeekEnd)
	return err
}

// Parse reads records on a goroutine of its own until the device is closed
// or fails, then closes the channel (as kmsgparser does).
func (d *device) Parse() <-chan kmsgparser.Message {
	out := make(chan kmsgparser.Message, 1)
	go func() {
		defer close(out)
		buf := make([]byte, maxRecord)
		for {
			n, err := d.f.Read(buf)
			switch {
			case errors.Is(err, syscall.EPIPE):
				continue // overwritten; Take reports the hole by sequence
			case errors.Is(err, io.EOF), errors.Is(err, os.ErrClosed):
				return
			case err != nil:
				d.log.Errorf("error reading %s: %v", d.path, err)
				return
			}
			h, ok := kernlog.ParseHeader(buf[:n])
			if !ok {
				d.log.Warningf("unable to parse kmsg message %q", buf[:min(n, 64)])
				continue
			}
			out <- kmsgparser.Message{
				Priority:       h.Priority,
				SequenceNumber: int(h.Seq),
				Timestamp:      d.base.Add(time.Duration(h.Usec) * time.Microsecond),
				Message:        string(buf[h.Len:n]),
			}
		}
	}()
	return out
}

// discard is the logger until SetLogger.
type discard struct{}

func (discard) Warningf(string, ...any) {}
func (discard) Infof(string, ...any)    {}
func (discard) Errorf(string, ...any)   {}
