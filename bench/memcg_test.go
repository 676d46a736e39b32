package bench

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseMemoryStat(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     map[string]int64
		wantErr  bool
	}{
		{name: "v1", in: "cache 17768448\nrss 6848512\ninactive_file 17756160\ntotal_rss 6848512\n",
			want: map[string]int64{"cache": 17768448, "rss": 6848512, "inactive_file": 17756160, "total_rss": 6848512}},
		{name: "v2", in: "anon 6000000\nfile 14000000\ninactive_file 13000000\n",
			want: map[string]int64{"anon": 6000000, "file": 14000000, "inactive_file": 13000000}},
		{name: "no value", in: "anon\n", wantErr: true},
		{name: "not a number", in: "anon x\n", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMemoryStat(bytes.NewReader([]byte(tc.in)))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want an error: %v", err, tc.wantErr)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %d, want %d", k, got[k], v)
				}
			}
		})
	}
}

func TestMemcgRead(t *testing.T) {
	for _, tc := range []struct {
		name  string
		v2    bool
		files map[string]string
		want  memcgUsage
	}{
		{name: "v1", files: map[string]string{
			"memory.usage_in_bytes": "25886720\n", "memory.max_usage_in_bytes": "25894912\n",
			"memory.stat": "cache 17768448\nrss 6848512\ninactive_file 17756160\n"},
			want: memcgUsage{Usage: 25886720, Peak: 25894912, File: 17768448, Anon: 6848512, InactiveFile: 17756160}},
		{name: "v2 without memory.peak", v2: true, files: map[string]string{
			"memory.current": "7000000\n", "memory.stat": "anon 6000000\nfile 800000\ninactive_file 500000\n"},
			want: memcgUsage{Usage: 7000000, File: 800000, Anon: 6000000, InactiveFile: 500000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &memcg{dir: t.TempDir(), v2: tc.v2}
			for name, body := range tc.files {
				if err := os.WriteFile(filepath.Join(c.dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := c.read()
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("read = %+v, want %+v", got, tc.want)
			}
			if ws := got.WorkingSet(); ws != tc.want.Usage-tc.want.InactiveFile {
				t.Errorf("working set = %d", ws)
			}
		})
	}
}

// TestMemcgWrap runs a command through wrap: the PID it writes to the
// cgroup's cgroup.procs (a plain file here) is the command's own.
func TestMemcgWrap(t *testing.T) {
	c := &memcg{dir: t.TempDir()}
	sh, args := c.wrap("/bin/sh", "-c", "echo $$")
	out, err := exec.Command(sh, args...).Output()
	if err != nil {
		t.Fatal(err)
	}
	procs, err := os.ReadFile(filepath.Join(c.dir, "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(procs)), strings.TrimSpace(string(out)); got != want || got == "" {
		t.Errorf("cgroup.procs = %q, the command's PID %q", got, want)
	}
}

func TestParseStatusMemory(t *testing.T) {
	in := "Name:\tagent\nVmHWM:\t   21848 kB\nVmRSS:\t   21848 kB\nRssAnon:\t    6848 kB\nRssFile:\t   15000 kB\nRssShmem:\t       0 kB\nThreads:\t8\n"
	got := parseStatusMemory([]byte(in))
	want := map[string]int64{"VmHWM": 21848, "VmRSS": 21848, "RssAnon": 6848, "RssFile": 15000, "RssShmem": 0}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d", k, got[k], v)
		}
	}
}

func TestParseSamples(t *testing.T) {
	got, err := parseSamples([]byte("idle-start 30.5 10 5 18000 18500 7000 7200\nburst-end 99.0 400 100 26000 27000 12000 15000\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := footprintSample{uptime: 99, ticks: 500, rssKB: 26000, hwmKB: 27000, cgKB: 12000, cgPeakKB: 15000}
	if got["burst-end"] != want {
		t.Errorf("burst-end = %+v, want %+v", got["burst-end"], want)
	}
	if _, err := parseSamples([]byte("idle-start 30.5 10 5 18000 18500\n")); err == nil {
		t.Error("a sample without the cgroup's figures parsed")
	}
}

func TestCgroupBreakdown(t *testing.T) {
	st, err := parseMemoryStat(bytes.NewReader([]byte("anon 12582912\nfile 1048576\nkernel_stack 262144\npagetables 131072\nsock 0\nslab 18874368\nslab_reclaimable 17825792\n")))
	if err != nil {
		t.Fatal(err)
	}
	want := "anon 12.0 MiB, file 1.0 MiB, slab 18.0 MiB (reclaimable 17.0 MiB), kernel stacks 0.25 MiB, page tables 0.12 MiB, sockets 0.00 MiB"
	if got := cgroupBreakdown(st); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
