package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// fakeAggregatorEnv makes this test binary act as the aggregator. Its
// value is "<fails> <file>": each start adds a line to the file; the
// first <fails> starts exit as an aggregator does whose port was taken
// (or, with fails "db", as one whose database is broken), later ones
// listen until SIGTERM.
const fakeAggregatorEnv = "BENCH_FAKE_AGGREGATOR"

func TestMain(m *testing.M) {
	if v := os.Getenv(fakeAggregatorEnv); v != "" {
		os.Exit(fakeAggregator(v, os.Args[1:]))
	}
	os.Exit(m.Run())
}

func fakeAggregator(v string, args []string) int {
	fails, file, _ := strings.Cut(v, " ")
	addr := ""
	for i, a := range args {
		if a == "--listen" && i+1 < len(args) {
			addr = args[i+1]
		}
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_, _ = f.WriteString("start\n")
	f.Close()
	b, _ := os.ReadFile(file)
	starts := bytes.Count(b, []byte("\n"))
	if fails == "db" {
		fmt.Fprintln(os.Stderr, `level=fatal msg="open store: file is not a database"`)
		return 1
	}
	if n, _ := strconv.Atoi(fails); starts <= n {
		fmt.Fprintf(os.Stderr, "level=fatal msg=\"--listen: listen tcp %s: bind: address already in use\"\n", addr)
		return 1
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	return 0
}

// An aggregator whose port was taken between the choice and its bind is
// started again on new ports, at most 3 times; any other exit at start is
// an error at once.
func TestStartAggregatorAgainOnATakenPort(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	start := func(fails string) (*aggregatorProc, int, error) {
		t.Helper()
		starts := filepath.Join(dir, fails+".starts")
		t.Setenv(fakeAggregatorEnv, fails+" "+starts)
		p, err := startAggregator(context.Background(), self, filepath.Join(dir, "db", fails+".db"), filepath.Join(dir, fails+".log"))
		b, _ := os.ReadFile(starts)
		return p, bytes.Count(b, []byte("\n")), err
	}

	p, n, err := start("1")
	if err != nil {
		t.Fatalf("one taken port: %v", err)
	}
	defer p.stop()
	if n != 2 {
		t.Errorf("one taken port: %d starts, want 2", n)
	}
	if c, err := net.Dial("tcp", p.addr); err != nil {
		t.Errorf("the second start does not listen on %s: %v", p.addr, err)
	} else {
		c.Close()
	}

	if _, n, err := start("5"); err == nil || !strings.Contains(err.Error(), "address already in use") || n != 3 {
		t.Errorf("ports always taken: %d starts, error %v; want 3 starts and the bind error", n, err)
	}
	if _, n, err := start("db"); err == nil || !strings.Contains(err.Error(), "not a database") || n != 1 {
		t.Errorf("a broken database: %d starts, error %v; want 1 start and its error", n, err)
	}
}
