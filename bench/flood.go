package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/euank/go-kmsg-parser/kmsgparser"
	"github.com/google/cadvisor/utils/oomparser"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/oomwatch/oomwatch/pkg/devkmsg"
	"github.com/oomwatch/oomwatch/pkg/kernlog"
	"github.com/oomwatch/oomwatch/pkg/oom"
	"github.com/oomwatch/oomwatch/test/e2e/vm"
)

// Flood sizes: the kmsg-flood hook writes FloodRecords ordinary records to
// the guest's kernel log, whose buffer (FloodLogBuf) holds them all, and
// reads them back FloodRounds times with each reader.
const (
	FloodRecords = 100_000
	FloodRounds  = 3
	FloodLogBuf  = "16M"
)

// The readers of the flood, in the order they run in each round.
const (
	FloodRaw      = "raw read(2) loop"
	FloodOomwatch = "oomwatch live: devkmsg+Assembler"
	FloodCAdvisor = "cAdvisor oomparser " + CAdvisorVersion
	// FloodFrontEnd is kmsgparser alone, its channel drained (see
	// FrontEndFloor): what every consumer of it pays at least.
	FloodFrontEnd = "kmsgparser alone, drained"
)

// FloodRun is one reader's pass over the kernel log, from its oldest record
// to the last one written.
type FloodRun struct {
	Records int           `json:"records"`
	Wall    time.Duration `json:"wall_ns"`
	CPU     time.Duration `json:"cpu_ns"`
}

// FloodResult is what cmd/kmsgflood measured in the guest.
type FloodResult struct {
	// Written is how many records were written; Runs every reader's
	// passes, by reader.
	Written int                   `json:"written"`
	Runs    map[string][]FloodRun `json:"runs"`
}

// median returns the pass with the median records/s.
func medianRun(runs []FloodRun) FloodRun {
	s := slices.Clone(runs)
	slices.SortFunc(s, func(a, b FloodRun) int { return int(b.Wall*time.Duration(a.Records) - a.Wall*time.Duration(b.Records)) })
	return s[len(s)/2]
}

// RecordsPerSec is the pass's rate.
func (r FloodRun) RecordsPerSec() float64 { return float64(r.Records) / r.Wall.Seconds() }

// CPUPerRecord is the pass's process CPU time per record.
func (r FloodRun) CPUPerRecord() time.Duration { return r.CPU / time.Duration(max(r.Records, 1)) }

// Flood fills the kernel log through /dev/kmsg with n ordinary records (the
// bodies of NonOOM's, as userspace records: facility LOG_USER, which the
// Assembler tests as it does the kernel's) and times each reader reading the
// whole log from its oldest record to the last record written, rounds times,
// interleaved. It runs in the guest (cmd/kmsgflood), as root, with the
// kernel's rate limit of /dev/kmsg writes off (printk.devkmsg=on).
func Flood(ctx context.Context, n, rounds int) (*FloodResult, error) {
	last, err := fillKmsg(NonOOM(n))
	if err != nil {
		return nil, err
	}
	res := &FloodResult{Written: n, Runs: map[string][]FloodRun{}}
	readers := []struct {
		name string
		read func(ctx context.Context, last int64) (int, error)
	}{
		{FloodRaw, floodRaw},
		{FloodOomwatch, floodOomwatch},
		{FloodCAdvisor, floodCAdvisor},
		{FloodFrontEnd, floodFrontEnd},
	}
	for range rounds {
		for _, r := range readers {
			cpu0, t0 := cpuTime(), time.Now()
			got, err := r.read(ctx, last)
			run := FloodRun{Records: got, Wall: time.Since(t0), CPU: cpuTime() - cpu0}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", r.name, err)
			}
			res.Runs[r.name] = append(res.Runs[r.name], run)
		}
	}
	return res, nil
}

// fillKmsg writes in's records' bodies to /dev/kmsg and returns the
// sequence number of the last.
func fillKmsg(in *Input) (int64, error) {
	f, err := os.OpenFile(devkmsg.DevKmsg, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 0, 1024)
	for i := range in.Records() {
		rec := in.Record(i)
		body := bytes.TrimSuffix(rec[bytes.IndexByte(rec, ';')+1:], []byte("\n"))
		buf = append(append(buf[:0], "<6>"...), body...)
		if _, err := f.Write(buf); err != nil {
			return 0, fmt.Errorf("write %s: %w", devkmsg.DevKmsg, err)
		}
	}
	// The newest record is the last one written (nothing else logs here).
	return newestSeq()
}

// newestSeq reads the whole log and returns the newest sequence number.
func newestSeq() (int64, error) {
	last := int64(-1)
	_, err := rawRead(func(h kernlog.Header) bool { last = h.Seq; return false })
	return last, err
}

// floodRaw is the floor: read(2) one record at a time into one buffer, with
// only the header parsed, until the last record.
func floodRaw(_ context.Context, last int64) (int, error) {
	return rawRead(func(h kernlog.Header) bool { return h.Seq >= last })
}

// rawRead reads /dev/kmsg from its oldest record until done says so or no
// record is left, and returns how many it read.
func rawRead(done func(kernlog.Header) bool) (int, error) {
	fd, err := unix.Open(devkmsg.DevKmsg, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	buf := make([]byte, 8192)
	n := 0
	for {
		m, err := unix.Read(fd, buf)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return n, nil
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EPIPE):
			continue
		case err != nil:
			return n, err
		}
		n++
		h, ok := kernlog.ParseHeader(buf[:m])
		if !ok {
			return n, fmt.Errorf("malformed record %q", buf[:m])
		}
		if done(h) {
			return n, nil
		}
	}
}

// floodOomwatch is the agent's path: a devkmsg.Reader over the real
// kmsgparser feeding the Assembler, as agent.Pipeline.RunReader does.
func floodOomwatch(ctx context.Context, last int64) (int, error) {
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	r, err := devkmsg.New(logrus.NewEntry(logger), devkmsg.Options{After: -1}).Open(ctx)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	a := oom.NewAssembler(oom.Options{}, func(*oom.Report) {})
	n := 0
	for {
		m, ok := <-r.C()
		gap, rec, err := r.Take(ctx, m, ok)
		if err != nil {
			return n, err
		}
		if gap != nil {
			return n, fmt.Errorf("%d records lost", gap.Lost)
		}
		if rec != nil {
			n++
			a.Feed(rec)
			if rec.Seq >= last {
				a.Flush()
				return n, nil
			}
		}
	}
}

// floodParser returns the real kmsgparser over /dev/kmsg opened as
// kmsgparser.NewParser opens it; the device ends (EOF) after the record
// last, which closes the parser's channel.
func floodParser(last int64) (kmsgparser.Parser, *endingDevice, error) {
	f, err := os.Open(devkmsg.DevKmsg)
	if err != nil {
		return nil, nil, err
	}
	dev := &endingDevice{f: f, last: last}
	boot, err := devkmsg.BootTime()
	if err != nil {
		dev.Close()
		return nil, nil, err
	}
	p, err := newKmsgParser(dev, boot)
	if err != nil {
		dev.Close()
		return nil, nil, err
	}
	return p, dev, nil
}

// floodFrontEnd drains the real kmsgparser's channel, doing nothing with
// the messages.
func floodFrontEnd(_ context.Context, last int64) (int, error) {
	p, dev, err := floodParser(last)
	if err != nil {
		return 0, err
	}
	defer dev.Close()
	n := 0
	for range p.Parse() {
		n++
	}
	if n != dev.n {
		return 0, fmt.Errorf("kmsgparser delivered %d of the %d records read", n, dev.n)
	}
	return n, nil
}

// floodCAdvisor is cAdvisor's StreamOoms on the real kmsgparser (see
// floodParser); the end of the device ends StreamOoms.
func floodCAdvisor(_ context.Context, last int64) (int, error) {
	quietKlog.Do(silenceKlog)
	p, dev, err := floodParser(last)
	if err != nil {
		return 0, err
	}
	op := &oomparser.OomParser{}
	if err := setField(reflectElem(op), "parser", p); err != nil {
		return 0, err
	}
	ch := make(chan *oomparser.OomInstance, 10)
	go func() {
		op.StreamOoms(ch)
		close(ch)
	}()
	for range ch {
	}
	return dev.n, nil
}

// endingDevice is /dev/kmsg that reports io.EOF after the record last.
type endingDevice struct {
	f    *os.File
	last int64
	n    int
	done bool
	once sync.Once
}

func (d *endingDevice) Read(p []byte) (int, error) {
	if d.done {
		return 0, io.EOF
	}
	m, err := d.f.Read(p)
	if err != nil {
		return m, err
	}
	d.n++
	if h, ok := kernlog.ParseHeader(p[:m]); ok && h.Seq >= d.last {
		d.done = true
	}
	return m, nil
}

func (d *endingDevice) Seek(off int64, whence int) (int64, error) { return d.f.Seek(off, whence) }

func (d *endingDevice) Close() error {
	var err error
	d.once.Do(func() { err = d.f.Close() })
	return err
}

// KmsgFlood boots the qemu guest (test/e2e/vm), floods its kernel log with
// FloodRecords records and times, in the same guest run, a raw read(2) loop
// (the floor), oomwatch's live path and cAdvisor's reading it all.
func KmsgFlood(ctx context.Context, cfg HookConfig) ([]Measurement, error) {
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", args...)
		}
	}
	n, rounds := FloodRecords, FloodRounds
	if cfg.Short {
		n, rounds = 5_000, 1
	}
	assets, err := vm.EnsureAssets(ctx, logf)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "oomwatch-bench-flood-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	logf("kmsg-flood: building kmsgflood")
	bin, err := buildStatic(ctx, cfg.RepoRoot+"/bench", dir, "./cmd/kmsgflood")
	if err != nil {
		return nil, err
	}
	logf("kmsg-flood: booting %s, %d records, %d rounds", assets.KernelPackage, n, rounds)
	res, err := vm.Run(ctx, vm.Config{
		Assets: assets,
		Files:  map[string]vm.File{"/bin/kmsgflood": {HostPath: bin}},
		Script: fmt.Sprintf("kmsgflood -records %d -rounds %d -out /tmp/flood.json >/tmp/flood.log 2>&1\n"+
			"echo kmsgflood exit $?\nexport_file flood.json /tmp/flood.json\nexport_file flood.log /tmp/flood.log\n", n, rounds),
		// A buffer that holds every record written, and no rate limit on
		// userspace writes to /dev/kmsg.
		Cmdline:  []string{"log_buf_len=" + FloodLogBuf, "printk.devkmsg=on"},
		MemoryMB: 512,
		CPUs:     2,
		Timeout:  15 * time.Minute,
	})
	if res != nil {
		saveArtifacts(cfg.ArtifactDir, "kmsg-flood", res, logf)
	}
	if err != nil {
		return nil, err
	}
	raw, err := res.File("flood.json")
	if err != nil {
		return nil, err
	}
	var fr FloodResult
	if err := json.Unmarshal(raw, &fr); err != nil {
		return nil, fmt.Errorf("flood.json: %w", err)
	}
	return FloodMeasurements(&fr, assets.KernelPackage)
}

// FloodMeasurements turns a flood's passes into the table's lines: the
// median pass of each reader, against the raw floor and against cAdvisor.
func FloodMeasurements(fr *FloodResult, kernel string) ([]Measurement, error) {
	med := map[string]FloodRun{}
	for _, name := range []string{FloodRaw, FloodOomwatch, FloodCAdvisor} {
		runs := fr.Runs[name]
		if len(runs) == 0 {
			return nil, fmt.Errorf("no %s pass in the guest's result", name)
		}
		med[name] = medianRun(runs)
	}
	raw, ow, ca := med[FloodRaw], med[FloodOomwatch], med[FloodCAdvisor]
	where := fmt.Sprintf("%s in qemu TCG, the whole log (%d records, %d written) read %d times by each reader, interleaved; median pass",
		kernel, ow.Records, fr.Written, len(fr.Runs[FloodOomwatch]))
	rate := func(r FloodRun) string {
		return fmt.Sprintf("%s records/s, %d CPU ns/record", human(r.RecordsPerSec()), r.CPUPerRecord().Nanoseconds())
	}
	cpuRatio := float64(ow.CPUPerRecord()) / float64(ca.CPUPerRecord())
	floor := ""
	if runs := fr.Runs[FloodFrontEnd]; len(runs) > 0 {
		f := medianRun(runs)
		floor = floorNote(float64(ow.CPUPerRecord()), float64(ca.CPUPerRecord()), float64(f.CPUPerRecord())) +
			fmt.Sprintf(" (%s: %s)", FloodFrontEnd, rate(f))
	}
	return []Measurement{
		{
			Name: "guest /dev/kmsg flood, live path vs the raw read(2) floor (" + where + ")",
			Value: fmt.Sprintf("%s: %s (%.2f of the floor's records/s); %s: %s; %s: %s",
				FloodOomwatch, rate(ow), ow.RecordsPerSec()/raw.RecordsPerSec(), FloodRaw, rate(raw), FloodCAdvisor, rate(ca)),
			Target:  "report records/s against the floor",
			Verdict: VerdictMeasured,
		},
		{
			Name:    "guest /dev/kmsg flood, live path CPU per record vs cAdvisor's on the same kmsgparser",
			Value:   fmt.Sprintf("%.2fx (%d vs %d CPU ns/record)", cpuRatio, ow.CPUPerRecord().Nanoseconds(), ca.CPUPerRecord().Nanoseconds()) + floor,
			Target:  "<= 0.80x",
			Verdict: verdict(cpuRatio <= 0.8),
		},
	}, nil
}
