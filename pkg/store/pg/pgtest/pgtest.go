// Package pgtest runs a real PostgreSQL server for tests: Debian's, found
// under /usr/lib/postgresql (installed with apt-get when missing and the
// test runs as root), initialised into a temporary directory, started on a
// Unix socket of its own with fsync on, one database per test.
//
// A test package calls Main from its TestMain, so that the server is
// stopped when its tests end, and DB from each test that needs a database.
// Without a server and without root to install one, DB skips the test and
// says why; as root it never skips: a server that cannot be installed or
// started fails the test.
//
// Programs that are not tests (the benchmarks of bench/) start a server
// of their own with Start and create its databases with NewDB.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Debian's server binaries: /usr/lib/postgresql/<major>/bin.
const binGlob = "/usr/lib/postgresql/*/bin/initdb"

// startTimeout bounds the server's start.
const startTimeout = 60 * time.Second

// server is the test binary's PostgreSQL, started by the first DB.
type server struct {
	dir string // data directory and socket
	bin string // the server's bin directory
	// settings are the server's "name=value" settings besides the tests'.
	settings []string
	cred     *syscall.Credential
	// mu guards cmd and done across Restart.
	mu   sync.Mutex
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan struct{}
	// skip is why DB skips (no server, not root); err why it fails.
	skip string
	err  error
}

var (
	once sync.Once
	srv  *server
	dbs  atomic.Int64
)

// Main runs the tests of m and stops the server if one was started. Call
// it from TestMain: os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if srv != nil {
		srv.stop()
	}
	return code
}

// DB returns the URL of a new, empty database on the test binary's
// server (starting it first), dropped when the test ends. It skips the
// test when no server is installed and it cannot install one (not root).
func DB(t testing.TB) string {
	t.Helper()
	once.Do(func() { srv = start() })
	if srv.skip != "" {
		t.Skip(srv.skip)
	}
	if srv.err != nil {
		t.Fatalf("PostgreSQL: %v", srv.err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbs.Add(1))
	url, err := srv.createDB(ctx, name)
	if err != nil {
		t.Fatalf("PostgreSQL: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, srv.url("postgres"))
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return url
}

// createDB creates the database name and returns its URL.
func (s *server) createDB(ctx context.Context, name string) (string, error) {
	admin, err := pgx.Connect(ctx, s.url("postgres"))
	if err != nil {
		return "", err
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	return s.url(name), nil
}

// Server is a PostgreSQL server started outside a test, for benchmarks
// that run as programs (bench/): the same server DB uses, with settings of
// the caller's on top.
type Server struct {
	s *server
}

// Start installs (as root, when missing), initialises and starts a
// server in a new temporary directory. settings are "name=value"
// parameters, applied after pgtest's own (shared_buffers=32MB, ...), so
// that they override them. Stop it with Stop.
func Start(settings ...string) (*Server, error) {
	s := &server{log: &bytes.Buffer{}, done: make(chan struct{})}
	bin, skip, err := binDir()
	switch {
	case err != nil:
		return nil, fmt.Errorf("PostgreSQL: %w", err)
	case skip != "":
		return nil, errors.New(skip)
	}
	if err := s.run(bin, settings...); err != nil {
		s.stop()
		return nil, fmt.Errorf("PostgreSQL: %w", err)
	}
	return &Server{s: s}, nil
}

// NewDB creates the database name (a lower-case identifier) and returns its URL.
func (s *Server) NewDB(ctx context.Context, name string) (string, error) {
	return s.s.createDB(ctx, name)
}

// Pid is the postmaster's process ID: the server's other processes are
// its children.
func (s *Server) Pid() int {
	return s.s.cmd.Process.Pid
}

// Stop shuts the server down and removes its directory.
func (s *Server) Stop() {
	s.s.stop()
}

// url is the URL of database name over the server's socket.
func (s *server) url(name string) string {
	q := url.Values{}
	q.Set("host", s.dir)
	q.Set("sslmode", "disable")
	return "postgres://postgres@/" + name + "?" + q.Encode()
}

// binDir returns the newest installed server's bin directory, installing
// Debian's package first when none is and the test runs as root.
func binDir() (dir, skip string, err error) {
	find := func() string {
		m, _ := filepath.Glob(binGlob)
		sort.Slice(m, func(i, j int) bool { return major(m[i]) > major(m[j]) })
		if len(m) == 0 {
			return ""
		}
		return filepath.Dir(m[0])
	}
	if d := find(); d != "" {
		return d, "", nil
	}
	if os.Geteuid() != 0 {
		return "", "PostgreSQL is not installed (" + binGlob + ") and installing it needs root: apt-get install postgresql", nil
	}
	// Test binaries of several packages start at once: one installs, the
	// others wait for it and find the server.
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "oomwatch-pgtest-install.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", "", fmt.Errorf("install lock: %w", err)
	}
	if d := find(); d != "" {
		return d, "", nil
	}
	if err := aptInstall(); err != nil {
		return "", "", err
	}
	if d := find(); d != "" {
		return d, "", nil
	}
	return "", "", fmt.Errorf("apt-get installed postgresql but %s is missing", binGlob)
}

// major is the version directory of a server binary's path.
func major(path string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return n
}

// aptInstall installs Debian's server, updating the package lists when
// the first attempt fails (a fresh machine has none).
func aptInstall() error {
	install := func() ([]byte, error) {
		cmd := exec.Command("apt-get", "install", "-y", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=300", "postgresql")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	if _, err := install(); err == nil {
		return nil
	}
	if out, err := exec.Command("apt-get", "update", "-o", "DPkg::Lock::Timeout=300").CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get update: %w: %s", err, tail(out))
	}
	if out, err := install(); err != nil {
		return fmt.Errorf("apt-get install postgresql: %w: %s", err, tail(out))
	}
	return nil
}

func tail(b []byte) string {
	const n = 2000
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// start initialises and starts the server; its skip or err say why not.
func start() *server {
	s := &server{log: &bytes.Buffer{}, done: make(chan struct{})}
	bin, skip, err := binDir()
	if skip != "" || err != nil {
		s.skip, s.err = skip, err
		return s
	}
	if s.err = s.run(bin); s.err != nil {
		s.stop()
	}
	return s
}

// dirPrefix names the servers' directories in the temporary directory.
const dirPrefix = "oomwatch-pg-"

// sweep removes the directories of servers whose test binary was killed
// (the server died with it, see Pdeathsig): no postmaster.pid of a live
// process, and untouched for a while, so that a server being set up by
// another test binary is left alone.
func sweep() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if err != nil || !fi.IsDir() || time.Since(fi.ModTime()) < 10*time.Minute {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(d, "data", "postmaster.pid")); err == nil {
			line, _, _ := strings.Cut(string(b), "\n")
			if pid, err := strconv.Atoi(strings.TrimSpace(line)); err == nil {
				// EPERM: alive, another user's.
				if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
					continue
				}
			}
		}
		_ = os.RemoveAll(d)
	}
}

func (s *server) run(bin string, settings ...string) error {
	sweep()
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return err
	}
	s.dir = dir
	// initdb and postgres refuse to run as root: as root, they run as
	// Debian's postgres user, who owns the directory.
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root needs the postgres user of Debian's package: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return err
		}
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	s.bin, s.cred, s.settings = bin, cred, settings
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w: %s", err, tail(out))
	}
	return s.launch()
}

// launch starts the server on the initialised data directory and waits
// until it accepts connections.
func (s *server) launch() error {
	// Only the socket in dir: no TCP port to collide with another test
	// binary's server. fsync and synchronous commits stay on, as in
	// production: an acknowledged commit is on disk.
	args := []string{"-D", filepath.Join(s.dir, "data"), "-k", s.dir, "-c", "listen_addresses=",
		"-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "shared_buffers=32MB", "-c", "max_connections=200"}
	for _, set := range s.settings {
		args = append(args, "-c", set)
	}
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), args...)
	// The server dies with the test binary, even when it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL}
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); close(done) }()
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := pgx.Connect(ctx, s.url("postgres"))
		cancel()
		if err == nil {
			c.Close(context.Background())
			return nil
		}
		select {
		case werr := <-exited:
			return fmt.Errorf("postgres exited: %v: %s", werr, tail(s.log.Bytes()))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not accept connections within %v: %v: %s", startTimeout, err, tail(s.log.Bytes()))
		}
	}
}

// stop shuts the server down (fast shutdown) and removes its directory.
func (s *server) stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	if s.dir != "" {
		if err := os.RemoveAll(s.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		}
	}
}

// Restart stops the test binary's server as a crash would (an immediate
// shutdown: no checkpoint, crash recovery at the next start), leaves it
// down for down, then starts it again on the same data and socket: every
// URL DB returned works again. Every test's databases go down with it.
func Restart(t testing.TB, down time.Duration) {
	t.Helper()
	if srv == nil || srv.err != nil || srv.skip != "" {
		t.Fatal("pgtest.Restart: no server running (call DB first)")
	}
	srv.mu.Lock()
	cmd, done := srv.cmd, srv.done
	srv.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	time.Sleep(down)
	if err := srv.launch(); err != nil {
		t.Fatalf("PostgreSQL restart: %v", err)
	}
}

// Terminate ends (pg_terminate_backend) every connection to url's
// database whose application_name is app, and returns how many: a test's
// way of cutting a client's connection from the server's side.
func Terminate(t testing.TB, url, app string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND datname = current_database()`, app).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
