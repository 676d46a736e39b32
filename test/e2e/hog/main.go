// Command hog is the memory hog that oomwatch's end-to-end tests run inside
// a qemu guest (test/e2e/vm) to cause real OOM kills. It is built static
// (CGO_ENABLED=0) so it runs on the guest's bare busybox initramfs.
//
// It allocates anonymous memory a step at a time and writes one byte per
// page so that every page is really backed and counted in RSS and in its
// cgroup's memory.current. It can first set its own oom_score_adj and move
// itself into a cgroup, so a scenario places it with flags alone. Its modes:
//
//   - grow: -mb 0 grows until killed, as fast as it can or, with -rate, at
//     a steady number of MiB per second of wall time (a leak);
//   - steady level: -mb N holds N MiB (for -hold, or forever);
//   - page cache: -cache-file F -cache-mb N first writes N MiB to F and
//     reads it back, so the cgroup is charged N MiB of page cache, then
//     allocates -mb and holds as above.
//
// With -dump-kmsg FILE it instead copies every record in the kernel log
// buffer from /dev/kmsg to FILE, raw, and exits: the way the tests read the
// kernel's OOM reports back.
//
// Never run it on a host without a memory limit.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// options are hog's command-line flags.
type options struct {
	mb          int
	step        int
	interval    time.Duration
	hold        time.Duration
	oomScoreAdj int
	setScore    bool // -oom-score-adj was given
	cgroup      string
	ready       string
	dumpKmsg    string
	rate        float64 // MiB per second of wall time; 0: no pacing
	cacheFile   string
	cacheMB     int
	waitFile    string
}

// addFlags registers the flags on fs.
func (o *options) addFlags(fs *flag.FlagSet) {
	fs.IntVar(&o.mb, "mb", 0, "MiB to allocate in total; 0 keeps growing until killed")
	fs.IntVar(&o.step, "step", 4, "MiB to allocate per step")
	fs.DurationVar(&o.interval, "interval", 0, "pause between steps")
	fs.DurationVar(&o.hold, "hold", -1, "how long to hold the memory once -mb is reached; negative holds forever")
	fs.IntVar(&o.oomScoreAdj, "oom-score-adj", 0, "value written to /proc/self/oom_score_adj before allocating (default: leave it)")
	fs.StringVar(&o.cgroup, "cgroup", "", "cgroup v2 directory to move into (via its cgroup.procs) before allocating")
	fs.StringVar(&o.ready, "ready", "", "file to create once -mb is reached")
	fs.StringVar(&o.dumpKmsg, "dump-kmsg", "", "copy the kernel log from /dev/kmsg to this file, raw, and exit")
	fs.Float64Var(&o.rate, "rate", 0, "grow at this many MiB per second of wall time (steps of -step); 0: as fast as -interval allows")
	fs.StringVar(&o.cacheFile, "cache-file", "", "before allocating, write -cache-mb MiB to this file and read it back (page cache charged to the cgroup)")
	fs.IntVar(&o.cacheMB, "cache-mb", 0, "MiB of page cache to make with -cache-file")
	fs.StringVar(&o.waitFile, "wait-file", "", "before allocating, wait until this file exists (many hogs then start growing at once)")
}

// validate checks the flag values.
func (o *options) validate() error {
	switch {
	case o.mb < 0:
		return errors.New("-mb must be >= 0")
	case o.step <= 0:
		return errors.New("-step must be > 0")
	case o.interval < 0:
		return errors.New("-interval must be >= 0")
	case o.setScore && (o.oomScoreAdj < -1000 || o.oomScoreAdj > 1000):
		return errors.New("-oom-score-adj must be in [-1000, 1000]")
	case o.rate < 0:
		return errors.New("-rate must be >= 0")
	case o.rate > 0 && o.interval > 0:
		return errors.New("-rate and -interval are exclusive: -rate paces the steps itself")
	case o.cacheMB < 0:
		return errors.New("-cache-mb must be >= 0")
	case (o.cacheFile == "") != (o.cacheMB == 0):
		return errors.New("-cache-file and -cache-mb go together")
	}
	return nil
}

// parse reads hog's command line (without the program name) and validates it.
func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("hog", flag.ContinueOnError)
	o.addFlags(fs)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "oom-score-adj" {
			o.setScore = true
		}
	})
	return o, o.validate()
}

func main() {
	o, err := parse(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hog:", err)
		os.Exit(2)
	}
	run := hog
	if o.dumpKmsg != "" {
		run = func(o options) error { return dumpKmsg("/dev/kmsg", o.dumpKmsg) }
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "hog:", err)
		os.Exit(1)
	}
}

// hog places itself, then allocates and holds memory as o says.
func hog(o options) error {
	if o.setScore {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(o.oomScoreAdj)), 0); err != nil {
			return fmt.Errorf("set oom_score_adj: %w", err)
		}
	}
	if o.cgroup != "" {
		// Writing the PID moves the whole process, every Go runtime thread
		// included, since cgroup v2 places processes, not threads.
		procs := filepath.Join(o.cgroup, "cgroup.procs")
		if err := os.WriteFile(procs, []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			return fmt.Errorf("join cgroup: %w", err)
		}
	}
	if o.cacheFile != "" {
		if err := pageCache(o.cacheFile, o.cacheMB); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "hog: pid %d wrote and read back %d MiB of %s\n", os.Getpid(), o.cacheMB, o.cacheFile)
	}
	if o.waitFile != "" {
		for {
			if _, err := os.Stat(o.waitFile); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	pageSize := os.Getpagesize()
	total := 0
	start := time.Now()
	for o.mb == 0 || total < o.mb {
		if o.rate > 0 {
			// Wall-clock pacing: the next step is due when the rate
			// allows total+step MiB, however long the steps took so far
			// (a slow TCG guest then grows late, never in bursts).
			n := o.step
			if o.mb > 0 {
				n = min(n, o.mb-total)
			}
			time.Sleep(time.Until(start.Add(dueAfter(total+n, o.rate))))
		}
		n := o.step
		if o.mb > 0 {
			n = min(n, o.mb-total)
		}
		// mmap rather than make([]byte): the Go heap would round sizes, keep
		// its own reserve and could return memory to the kernel; a plain
		// anonymous mapping is exactly what the kernel charges. It is never
		// unmapped, so the memory stays until the process ends.
		mem, err := syscall.Mmap(-1, 0, n<<20, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
		if err != nil {
			return fmt.Errorf("mmap %d MiB after %d MiB: %w", n, total, err)
		}
		// One write per page faults it in: that is what makes RSS grow.
		for i := 0; i < len(mem); i += pageSize {
			mem[i] = 1
		}
		total += n
		if o.interval > 0 {
			time.Sleep(o.interval)
		}
	}
	fmt.Fprintf(os.Stderr, "hog: pid %d holds %d MiB\n", os.Getpid(), total)
	if o.ready != "" {
		if err := os.WriteFile(o.ready, nil, 0o644); err != nil {
			return fmt.Errorf("create ready file: %w", err)
		}
	}
	if o.hold < 0 {
		// Hold forever; the OOM killer or the test ends us. (An empty
		// select would be a deadlock the Go runtime aborts on.)
		for {
			time.Sleep(time.Hour)
		}
	}
	time.Sleep(o.hold)
	return nil
}

// dueAfter is when, from the start, a growth at rate MiB/s reaches mb MiB.
func dueAfter(mb int, rate float64) time.Duration {
	return time.Duration(float64(mb) / rate * float64(time.Second))
}

// pageCache writes mb MiB to the file at path, syncs it, and reads it back,
// so that the calling process's cgroup is charged mb MiB of clean page
// cache (on a filesystem with a backing device; tmpfs would charge shmem,
// which is not reclaimable without swap).
func pageCache(path string, mb int) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("page cache: %w", err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	for range mb {
		if _, err := f.Write(buf); err != nil {
			return fmt.Errorf("page cache: write %s: %w", path, err)
		}
	}
	// Clean pages: written back, so the kernel can drop them at once.
	if err := f.Sync(); err != nil {
		return fmt.Errorf("page cache: sync %s: %w", path, err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		return fmt.Errorf("page cache: %w", err)
	}
	for {
		_, err := f.Read(buf)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("page cache: read %s: %w", path, err)
		}
	}
}

// dumpKmsg copies every record currently in the kernel log buffer from the
// kmsg device to the file out, as the kernel renders them (one
// "prio,seq,usec,flags;message" line per record, continuation lines that
// begin with a space included). It stops at the end of the buffer instead
// of waiting for new records.
func dumpKmsg(kmsg, out string) error {
	// syscall, not os.Open: os would register a non-blocking fd with Go's
	// poller, which turns EAGAIN at the end of the log into waiting forever.
	fd, err := syscall.Open(kmsg, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", kmsg, err)
	}
	defer syscall.Close(fd)
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	// Each read returns exactly one record; the kernel refuses (EINVAL) a
	// buffer too small for it, and records are at most about 8 KiB.
	buf := make([]byte, 16<<10)
	lost := 0
	for {
		n, err := syscall.Read(fd, buf)
		switch {
		case err == nil && n > 0:
			if _, werr := f.Write(buf[:n]); werr != nil {
				f.Close()
				return fmt.Errorf("write %s: %w", out, werr)
			}
			continue
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EPIPE):
			// The reader fell behind and records were overwritten; the next
			// read resumes at the oldest record still in the buffer.
			lost++
			continue
		}
		if err != nil && !errors.Is(err, syscall.EAGAIN) {
			f.Close()
			return fmt.Errorf("read %s: %w", kmsg, err)
		}
		break // EAGAIN (or a 0-byte read): the end of the buffer
	}
	if lost > 0 {
		fmt.Fprintf(os.Stderr, "hog: %d gaps in %s: the log buffer wrapped while reading\n", lost, kmsg)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	return nil
}
