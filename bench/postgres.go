package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/oomwatch/oomwatch/pkg/store/pg/pgtest"
)

// PostgresSettings are the settings of the bench's PostgreSQL server on top
// of pgtest's (fsync and synchronous commits on): the shared buffers of
// Debian's default postgresql.conf, not pgtest's smaller test value.
var PostgresSettings = []string{"shared_buffers=128MB"}

// startPostgres starts a PostgreSQL server (package pgtest: Debian's,
// installed with apt-get when missing and running as root, in a temporary
// directory, on a Unix socket).
func startPostgres(cfg HookConfig) (*pgtest.Server, error) {
	if cfg.Log != nil {
		fmt.Fprintln(cfg.Log, "starting PostgreSQL")
	}
	return pgtest.Start(PostgresSettings...)
}

// newPostgresDB creates a database on srv named name and returns its URL.
func newPostgresDB(ctx context.Context, srv *pgtest.Server, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return srv.NewDB(ctx, name)
}

// treeCPU returns the CPU time (user and system) of process pid and of its
// children, those alive and those it has waited for: the PostgreSQL
// server's whole cost when pid is its postmaster, whose backends are its
// children.
func treeCPU(pid int) (time.Duration, error) {
	total, _, err := statCPU(pid)
	if err != nil {
		return 0, err
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		c, ppid, err := statCPU(child)
		// A process that ended since the listing is counted in its
		// parent's waited-for children.
		if err != nil || ppid != pid {
			continue
		}
		total += c
	}
	return total, nil
}

// statCPU returns a process's CPU time, its own and its waited-for
// children's (utime, stime, cutime, cstime of /proc/PID/stat), and its
// parent.
func statCPU(pid int) (time.Duration, int, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, err
	}
	s := string(b)
	// Fields after the ")" closing the command: state, ppid, ..., utime
	// the 12th, stime, cutime, cstime.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: ppid: %w", pid, err)
	}
	var ticks int64
	for _, v := range f[11:15] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/stat: CPU times: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, ppid, nil
}
