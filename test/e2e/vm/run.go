// Package vm boots a real Linux kernel under qemu (TCG, no KVM needed) with
// a busybox initramfs, runs a shell script in it as root and brings back
// its console, its exit status and the files it exports. oomwatch's
// end-to-end tests use it to cause real OOM kills inside kubelet-shaped
// cgroup v2 trees and read the kernel's own reports.
//
// EnsureAssets installs or downloads what is missing (qemu, a Debian cloud
// kernel, busybox-static) and caches it; Run builds the initramfs, boots,
// and waits for the guest to power off.
//
// Inside the guest, the script runs after a preamble that mounts proc,
// sysfs, devtmpfs, cgroup2 (at /sys/fs/cgroup) and a tmpfs at /tmp and
// brings up lo. It may call the shell function
//
//	export_file NAME PATH
//
// to send the regular file PATH to the host, read back with
// Result.File(NAME). Exports travel on the guest's second serial port
// (ttyS1), which the kernel never prints to, gzipped and base64-encoded
// between =====BEGIN NAME SIZE===== and =====END NAME===== lines; the size
// lets the host detect a truncated or corrupted transfer. The emulated UART
// moves about 250 KB/s, so exports are meant for logs, not disk images.
package vm

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultMemoryMB = 256
	DefaultCPUs     = 1
	DefaultTimeout  = 3 * time.Minute
)

// BaseCmdline is the kernel command line every guest gets; Config.Cmdline
// is appended to it. quiet keeps the slow emulated serial console to
// errors, and panic=-1 with qemu's -no-reboot turns a guest panic into a
// prompt qemu exit instead of a hang.
const BaseCmdline = "console=ttyS0 panic=-1 quiet"

// Sentinel errors of Run and Result.File.
var (
	// ErrNoExitStatus means the guest stopped without reporting the
	// script's exit status: it panicked, or PID 1 died.
	ErrNoExitStatus = errors.New("guest stopped without reporting an exit status")
	// ErrNoFile means the guest did not export a file by that name.
	ErrNoFile = errors.New("file not exported by the guest")
	// ErrCorrupt means an export arrived truncated or did not decode to the
	// size the guest announced.
	ErrCorrupt = errors.New("exported file arrived incomplete")
)

// Config describes one VM run.
type Config struct {
	// Assets are the qemu, kernel and busybox to use (see EnsureAssets).
	Assets Assets
	// Files are put in the guest, keyed by absolute guest path.
	Files map[string]File
	// Script is the shell script run by busybox sh after the preamble.
	// Its exit status becomes Result.ExitCode.
	Script string
	// Cmdline holds kernel arguments appended to BaseCmdline, e.g.
	// "log_buf_len=1M".
	Cmdline []string
	// MemoryMB is the guest's RAM; 0 means DefaultMemoryMB.
	MemoryMB int
	// CPUs is the guest's CPU count; 0 means DefaultCPUs.
	CPUs int
	// Timeout bounds the whole run, boot included; 0 means DefaultTimeout.
	Timeout time.Duration
	// PowerOffGrace is how long a guest that reported its exit status has
	// to power off before qemu is stopped; 0 means DefaultPowerOffGrace.
	PowerOffGrace time.Duration
	// DiskMB, when set, attaches an empty sparse raw disk of that many MiB
	// as an NVMe drive: /dev/nvme0n1 in the guest, whose kernel (Debian's
	// cloud kernel) has NVMe and ext4 built in, where every other block
	// driver is a module the initramfs does not carry. A guest filesystem
	// with a backing device is what makes page cache reclaimable: /tmp and
	// the initramfs are tmpfs and rootfs, whose pages are shmem.
	DiskMB int
	// Console, when set, receives a live copy of the serial console.
	Console io.Writer
	// Dir, when set, is where the initramfs and the raw export channel are
	// written and kept; by default a temporary directory is used and removed.
	Dir string
}

// Result is what a VM run brought back.
type Result struct {
	// Console is everything the guest printed on its serial console:
	// kernel messages at console loglevel and the script's stdout and stderr.
	Console []byte
	// ExitCode is the script's exit status (128+N when killed by signal N),
	// or -1 when the guest never reported one.
	ExitCode int
	// Boot is the wall time from starting qemu until the guest's PID 1 ran.
	Boot time.Duration
	// Duration is the wall time of the whole run.
	Duration time.Duration
	// PowerOffHung tells that the guest reported its exit status but did
	// not power off within Config.PowerOffGrace, and qemu was stopped: its run
	// is complete (seen once under TCG, the kernel printing "No irq
	// handler for vector" while powering off).
	PowerOffHung bool

	exports map[string]export
}

// export is one file received from the guest.
type export struct {
	data []byte
	err  error
}

// File returns the contents the guest exported under name. The error wraps
// ErrNoFile when there is no such export and ErrCorrupt when it arrived
// damaged.
func (r *Result) File(name string) ([]byte, error) {
	e, ok := r.exports[name]
	if !ok {
		return nil, fmt.Errorf("%q: %w", name, ErrNoFile)
	}
	if e.err != nil {
		return nil, fmt.Errorf("%q: %w", name, e.err)
	}
	return e.data, nil
}

// FileNames returns the names of all exports, damaged ones included, sorted.
func (r *Result) FileNames() []string {
	names := make([]string, 0, len(r.exports))
	for n := range r.exports {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// initMarker is printed on the console by PID 1 when it starts; the host
// times the boot by it.
const initMarker = "oomwatch-vm: init started"

// initScript is PID 1. busybox sh cannot be killed by the OOM killer as
// init, so it survives to report the script's status even when the script
// itself is killed.
const initScript = `#!/bin/busybox sh
# PID 1 of an oomwatch e2e guest (test/e2e/vm): mount, run the script,
# report its exit status on ttyS1, power off.
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs tmpfs /tmp
ip link set lo up
# The export channel carries base64 text; raw mode stops the tty from
# adding CRs or echoing anything back.
stty -F /dev/ttyS1 raw -echo
echo "` + initMarker + ` at $(cut -d' ' -f1 /proc/uptime)s uptime"
cd /
sh /harness/run.sh
rc=$?
# Leftovers (a hog holding memory forever) would keep ttyS1 open, and only
# the last close of a tty waits for its output to drain.
kill -9 -1 2>/dev/null
echo "=====EXIT $rc=====" > /dev/ttyS1
# stty sets attributes with TCSADRAIN, which waits until the UART has sent
# everything queued, so poweroff cannot cut the export channel short.
stty -F /dev/ttyS1 raw -echo
poweroff -f
`

// guestLib is prepended to the script: the helpers it may call.
const guestLib = `# Helpers from test/e2e/vm.
# export_file NAME PATH: send the regular file PATH to the host, which reads
# it with Result.File(NAME). Not safe to call from two processes at once.
export_file() {
	case "$1" in
	''|*[!A-Za-z0-9._-]*) echo "export_file: bad name '$1'" >&2; return 2 ;;
	esac
	if [ ! -f "$2" ]; then
		echo "export_file: $2: not a regular file" >&2
		return 2
	fi
	{
		echo "=====BEGIN $1 $(wc -c < "$2")====="
		gzip -c "$2" | base64
		echo "=====END $1====="
	} > /dev/ttyS1
}
# --- script ---
`

// Run boots a VM as cfg describes and waits until it powers off, cfg.Timeout
// passes or ctx ends. The Result is returned whenever qemu ran, also with an
// error, so that its Console can explain the failure. A non-zero script exit
// status is not an error: it is in Result.ExitCode.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Assets.QEMU == "" || cfg.Assets.Kernel == "" || cfg.Assets.Busybox == "" {
		return nil, errors.New("vm: Config.Assets is incomplete (use EnsureAssets)")
	}
	mem, cpus, timeout := cfg.MemoryMB, cfg.CPUs, cfg.Timeout
	if mem == 0 {
		mem = DefaultMemoryMB
	}
	if cpus == 0 {
		cpus = DefaultCPUs
	}
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "oomwatch-vm-")
		if err != nil {
			return nil, fmt.Errorf("vm: %w", err)
		}
		defer os.RemoveAll(d)
		dir = d
	}

	files := make(map[string]File, len(cfg.Files)+4)
	for p, f := range cfg.Files {
		files[p] = f
	}
	for p, f := range map[string]File{
		"/bin/busybox":    {HostPath: cfg.Assets.Busybox, Mode: 0o755},
		"/bin/sh":         {Link: "busybox"},
		"/init":           {Data: []byte(initScript), Mode: 0o755},
		"/harness/run.sh": {Data: []byte(guestLib + cfg.Script + "\n"), Mode: 0o755},
	} {
		if _, ok := files[p]; ok {
			return nil, fmt.Errorf("vm: %s is reserved by the harness: %w", p, ErrBadPath)
		}
		files[p] = f
	}
	initrd, err := BuildInitramfs(dir, files)
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	exportPath := filepath.Join(dir, "export.txt")
	if err := os.Remove(exportPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("vm: %w", err)
	}

	cmdline := strings.Join(append([]string{BaseCmdline}, cfg.Cmdline...), " ")
	args := []string{
		"-accel", "tcg",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-m", strconv.Itoa(mem), "-smp", strconv.Itoa(cpus),
		"-kernel", cfg.Assets.Kernel, "-initrd", initrd, "-append", cmdline,
		// ttyS0: the console, streamed from qemu's stdout.
		"-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console",
		// ttyS1: the export channel, a file read after the run.
		"-chardev", "file,id=export,path=" + exportPath, "-serial", "chardev:export",
	}
	if cfg.DiskMB > 0 {
		disk := filepath.Join(dir, "disk.img")
		if err := os.WriteFile(disk, nil, 0o600); err != nil {
			return nil, fmt.Errorf("vm: disk: %w", err)
		}
		if err := os.Truncate(disk, int64(cfg.DiskMB)<<20); err != nil {
			return nil, fmt.Errorf("vm: disk: %w", err)
		}
		args = append(args, "-drive", "file="+disk+",if=none,id=disk0,format=raw",
			"-device", "nvme,drive=disk0,serial=oomwatch-e2e")
	}
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(runCtx, cfg.Assets.QEMU, args...)
	cmd.WaitDelay = 5 * time.Second
	con := &consoleWriter{live: cfg.Console}
	var stderr bytes.Buffer
	cmd.Stdout = con
	cmd.Stderr = &stderr

	con.start = time.Now()
	watched := make(chan struct{})
	done := make(chan struct{})
	var hung atomic.Bool
	go func() {
		defer close(watched)
		grace := cfg.PowerOffGrace
		if grace <= 0 {
			grace = DefaultPowerOffGrace
		}
		watchPowerOff(exportPath, grace, done, func() {
			hung.Store(true)
			cancel()
		})
	}()
	runErr := cmd.Run()
	close(done)
	<-watched
	res := &Result{
		Console:      con.buf.Bytes(),
		ExitCode:     -1,
		Boot:         con.boot,
		Duration:     time.Since(con.start),
		PowerOffHung: hung.Load(),
	}
	raw, err := os.ReadFile(exportPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("vm: read export channel: %w", err)
	}
	var exited bool
	res.exports, res.ExitCode, exited = parseExports(raw)

	switch {
	case res.PowerOffHung && exited:
		return res, nil
	case runCtx.Err() != nil:
		return res, fmt.Errorf("vm: guest still running after %s: %w\nconsole tail:\n%s",
			res.Duration.Round(time.Millisecond), runCtx.Err(), tail(res.Console, 3000))
	case runErr != nil:
		return res, fmt.Errorf("vm: qemu: %w: %s", runErr, tail(stderr.Bytes(), 2000))
	case !exited:
		return res, fmt.Errorf("vm: %w\nconsole tail:\n%s", ErrNoExitStatus, tail(res.Console, 3000))
	}
	return res, nil
}

// DefaultPowerOffGrace is how long a guest that reported its exit status
// has to power off (it takes ~1 s under TCG) before qemu is stopped.
const DefaultPowerOffGrace = 30 * time.Second

// watchPowerOff reads the export channel every second until done is
// closed, and calls stop once an exit status has been in it for grace:
// the guest's script is over, and only its power-off keeps qemu running.
func watchPowerOff(exportPath string, grace time.Duration, done <-chan struct{}, stop func()) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var exitedAt time.Time
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			if exitedAt.IsZero() {
				if raw, err := os.ReadFile(exportPath); err == nil {
					if _, _, exited := parseExports(raw); exited {
						exitedAt = now
					}
				}
				continue
			}
			if now.Sub(exitedAt) >= grace {
				stop()
				return
			}
		}
	}
}

// consoleWriter collects the console, copies it to live and notes when
// initMarker first appears.
type consoleWriter struct {
	mu    sync.Mutex
	live  io.Writer
	buf   bytes.Buffer
	start time.Time
	boot  time.Duration
}

// Write implements io.Writer.
func (c *consoleWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	from := max(c.buf.Len()-len(initMarker), 0)
	c.buf.Write(p)
	if c.boot == 0 && bytes.Contains(c.buf.Bytes()[from:], []byte(initMarker)) {
		c.boot = time.Since(c.start)
	}
	if c.live != nil {
		// A failing live copy must not stop qemu's output from being read.
		_, _ = c.live.Write(p)
	}
	return len(p), nil
}

// parseExports decodes the export channel: the files, the exit status (-1
// when absent) and whether an exit status was seen.
func parseExports(raw []byte) (map[string]export, int, bool) {
	files := map[string]export{}
	code, exited := -1, false
	var (
		name string // export being read; "" outside one
		size int
		body strings.Builder
	)
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimRight(line, "\r")
		if inner, ok := marker(line); ok {
			fields := strings.Fields(inner)
			switch {
			case len(fields) == 3 && fields[0] == "BEGIN":
				if name != "" {
					files[name] = export{err: fmt.Errorf("%w: no END before next BEGIN", ErrCorrupt)}
				}
				n, err := strconv.Atoi(fields[2])
				if err != nil {
					name = ""
					files[fields[1]] = export{err: fmt.Errorf("%w: bad size %q", ErrCorrupt, fields[2])}
					continue
				}
				name, size = fields[1], n
				body.Reset()
				continue
			case len(fields) == 2 && fields[0] == "END" && name != "" && fields[1] == name:
				files[name] = decodeExport(body.String(), size)
				name = ""
				continue
			case len(fields) == 2 && fields[0] == "EXIT" && name == "":
				if n, err := strconv.Atoi(fields[1]); err == nil {
					code, exited = n, true
				}
				continue
			}
		}
		if name != "" {
			body.WriteString(line)
		}
	}
	if name != "" {
		files[name] = export{err: fmt.Errorf("%w: channel ended before END", ErrCorrupt)}
	}
	return files, code, exited
}

// marker returns the text between the ===== fences of a control line.
func marker(line string) (string, bool) {
	const fence = "====="
	if len(line) < 2*len(fence) || !strings.HasPrefix(line, fence) || !strings.HasSuffix(line, fence) {
		return "", false
	}
	return line[len(fence) : len(line)-len(fence)], true
}

// decodeExport decodes an export body and checks its announced size.
func decodeExport(body string, size int) export {
	gz, err := base64.StdEncoding.DecodeString(body)
	if err != nil {
		return export{err: fmt.Errorf("%w: %w", ErrCorrupt, err)}
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return export{err: fmt.Errorf("%w: %w", ErrCorrupt, err)}
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return export{err: fmt.Errorf("%w: %w", ErrCorrupt, err)}
	}
	if len(data) != size {
		return export{err: fmt.Errorf("%w: got %d bytes, announced %d", ErrCorrupt, len(data), size)}
	}
	return export{data: data}
}
