package bench

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/euank/go-kmsg-parser/kmsgparser"
)

// ErrNoKmsgParser reports that the real kmsgparser could not be built over
// memory: kmsgparser.NewParser opens /dev/kmsg unconditionally, and the
// bench needs one instance to learn its type. Reading /dev/kmsg needs root
// (or CAP_SYSLOG where kernel.dmesg_restrict=1).
var ErrNoKmsgParser = errors.New("kmsgparser cannot be built over memory")

// memDevice stands in for /dev/kmsg over an Input: each Read returns exactly
// one record with its trailing newline, as the device does, and fails with
// EINVAL when the buffer is too small for it. At the end it returns io.EOF,
// or, when block is set, waits until Close as the device waits for new
// records.
type memDevice struct {
	in     *Input
	next   int
	block  bool
	closed chan struct{}
	once   sync.Once
	// drained is closed when a blocking device is first read past its
	// last record: its reader has delivered every record.
	drained chan struct{}
}

func newMemDevice(in *Input, block bool) *memDevice {
	return &memDevice{in: in, block: block, closed: make(chan struct{}), drained: make(chan struct{})}
}

// Read implements io.Reader.
func (d *memDevice) Read(p []byte) (int, error) {
	if d.next >= d.in.Records() {
		if d.block {
			if d.next == d.in.Records() {
				d.next++
				close(d.drained)
			}
			<-d.closed
		}
		return 0, io.EOF
	}
	rec := d.in.Record(d.next)
	if len(p) < len(rec) {
		return 0, syscall.EINVAL
	}
	d.next++
	return copy(p, rec), nil
}

// Seek implements io.Seeker; kmsgparser only seeks to the end, which the
// bench never asks for.
func (d *memDevice) Seek(int64, int) (int64, error) { return 0, nil }

// Close implements io.Closer and ends a blocked Read.
func (d *memDevice) Close() error {
	d.once.Do(func() { close(d.closed) })
	return nil
}

var (
	parserTypeOnce sync.Once
	parserType     reflect.Type
	parserTypeErr  error
)

// kmsgParserType returns the concrete type behind kmsgparser.NewParser.
func kmsgParserType() (reflect.Type, error) {
	parserTypeOnce.Do(func() {
		p, err := kmsgparser.NewParser()
		if err != nil {
			parserTypeErr = fmt.Errorf("%w: %w", ErrNoKmsgParser, err)
			return
		}
		parserType = reflect.TypeOf(p)
		_ = p.Close()
	})
	return parserType, parserTypeErr
}

// newKmsgParser returns the real kmsgparser (the code cAdvisor, NPD and
// oomwatch's devkmsg all read /dev/kmsg with) reading dev instead of
// /dev/kmsg, its clock set to boot. kmsgparser offers no way to pass a
// reader, so its unexported fields are set by reflection; the field names
// and types are checked, so a kmsgparser release that renames them fails
// here with an error instead of misbehaving.
func newKmsgParser(dev io.ReadSeekCloser, boot time.Time) (kmsgparser.Parser, error) {
	t, err := kmsgParserType()
	if err != nil {
		return nil, err
	}
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("%w: kmsgparser.NewParser returned %v", ErrNoKmsgParser, t)
	}
	v := reflect.New(t.Elem())
	if err := setField(v.Elem(), "kmsgReader", dev); err != nil {
		return nil, err
	}
	if err := setField(v.Elem(), "bootTime", boot); err != nil {
		return nil, err
	}
	p, ok := v.Interface().(kmsgparser.Parser)
	if !ok {
		return nil, fmt.Errorf("%w: %v is not a kmsgparser.Parser", ErrNoKmsgParser, t)
	}
	// NPD leaves kmsgparser's default logger, which is silent; cAdvisor's
	// logs at klog V(4), silent by default too.
	p.SetLogger(&kmsgparser.StandardLogger{})
	return p, nil
}

// newFrontEnd returns the real kmsgparser over dev when it can be built,
// and otherwise (no readable /dev/kmsg) a stand-in that decodes records the
// same way; emulated tells which. The table marks rows read through the
// stand-in, whose costs are not kmsgparser's.
func newFrontEnd(dev io.ReadSeekCloser, boot time.Time) (p kmsgparser.Parser, emulated bool) {
	if !forceStandIn {
		if p, err := newKmsgParser(dev, boot); err == nil {
			return p, false
		}
	}
	return &standInParser{dev: dev, boot: boot}, true
}

// forceStandIn makes newFrontEnd use the stand-in; tests set it.
var forceStandIn bool

// standInParser decodes "PRIO,SEQ,USEC,FLAGS;message" records from a
// device, one per read, into kmsgparser.Messages, for machines where the
// real kmsgparser cannot be built.
type standInParser struct {
	dev  io.ReadSeekCloser
	boot time.Time
}

func (p *standInParser) SeekEnd() error {
	_, err := p.dev.Seek(0, io.SeekEnd)
	return err
}

func (p *standInParser) SetLogger(kmsgparser.Logger) {}

func (p *standInParser) Close() error { return p.dev.Close() }

func (p *standInParser) Parse() <-chan kmsgparser.Message {
	out := make(chan kmsgparser.Message, 1)
	go func() {
		defer close(out)
		buf := make([]byte, 8192)
		for {
			n, err := p.dev.Read(buf)
			if err != nil {
				return
			}
			head, msg, ok := strings.Cut(string(buf[:n]), ";")
			if !ok {
				continue
			}
			f := strings.SplitN(head, ",", 4)
			if len(f) < 3 {
				continue
			}
			prio, err1 := strconv.Atoi(f[0])
			seq, err2 := strconv.Atoi(f[1])
			usec, err3 := strconv.ParseInt(f[2], 10, 64)
			if err1 != nil || err2 != nil || err3 != nil {
				continue
			}
			out <- kmsgparser.Message{Priority: prio, SequenceNumber: seq,
				Timestamp: p.boot.Add(time.Duration(usec) * time.Microsecond), Message: msg}
		}
	}()
	return out
}

// setField sets the (possibly unexported) field name of the addressable
// struct value s to x.
func setField(s reflect.Value, name string, x any) error {
	f := s.FieldByName(name)
	if !f.IsValid() {
		return fmt.Errorf("%w: %v has no field %s", ErrNoKmsgParser, s.Type(), name)
	}
	xv := reflect.ValueOf(x)
	if !xv.Type().AssignableTo(f.Type()) {
		return fmt.Errorf("%w: %v.%s is %v, not %v", ErrNoKmsgParser, s.Type(), name, f.Type(), xv.Type())
	}
	reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Set(xv)
	return nil
}

// firstRecord returns the sequence number and microseconds of in's first
// record, for devkmsg's clock calibration.
func firstRecord(in *Input) (seq, usec int64, err error) {
	if in.Records() == 0 {
		return 0, 0, io.EOF
	}
	var prio int
	rec := strings.TrimSpace(string(in.Record(0)))
	if _, err := fmt.Sscanf(rec, "%d,%d,%d,", &prio, &seq, &usec); err != nil {
		return 0, 0, fmt.Errorf("first record %q: %w", rec, err)
	}
	return seq, usec, nil
}

// lastSeq returns the sequence number of in's last record.
func lastSeq(in *Input) (int64, error) {
	if in.Records() == 0 {
		return -1, nil
	}
	var prio int
	var seq int64
	rec := string(in.Record(in.Records() - 1))
	if _, err := fmt.Sscanf(rec, "%d,%d,", &prio, &seq); err != nil {
		return 0, fmt.Errorf("last record %q: %w", rec, err)
	}
	return seq, nil
}

// reflectElem returns the struct ptr points to, addressable.
func reflectElem(ptr any) reflect.Value { return reflect.ValueOf(ptr).Elem() }

// FrontEnd says how the peers' (and devkmsg's) kmsgparser front end reads
// the inputs: the real kmsgparser over memory, or the stand-in.
func FrontEnd() string {
	if _, err := kmsgParserType(); err != nil {
		return "stand-in decoder (real kmsgparser unavailable: " + err.Error() + ")"
	}
	return "real kmsgparser v2.0.0, one record per read() from memory"
}
