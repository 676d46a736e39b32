package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		o    options
		ok   bool
	}{
		{"defaults", options{step: 4, hold: -1}, true},
		{"grow forever", options{mb: 0, step: 1, interval: time.Millisecond}, true},
		{"negative mb", options{mb: -1, step: 4}, false},
		{"zero step", options{mb: 8}, false},
		{"negative interval", options{step: 4, interval: -1}, false},
		{"score in range", options{step: 4, setScore: true, oomScoreAdj: -1000}, true},
		{"score out of range", options{step: 4, setScore: true, oomScoreAdj: 1001}, false},
		{"unset score ignored", options{step: 4, oomScoreAdj: 5000}, true},
		{"rate", options{step: 1, rate: 1}, true},
		{"negative rate", options{step: 1, rate: -1}, false},
		{"rate and interval", options{step: 1, rate: 1, interval: time.Second}, false},
		{"page cache", options{step: 4, cacheFile: "/mnt/f", cacheMB: 40}, true},
		{"cache file without size", options{step: 4, cacheFile: "/mnt/f"}, false},
		{"cache size without file", options{step: 4, cacheMB: 40}, false},
		{"negative cache size", options{step: 4, cacheFile: "/mnt/f", cacheMB: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.o.validate(); (err == nil) != tt.ok {
				t.Errorf("validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want options // compared when ok
		ok   bool
	}{
		{"defaults", nil, options{step: 4, hold: -1}, true},
		{"leak at 1 MiB/s", []string{"-mb", "0", "-step", "1", "-rate", "1", "-cgroup", "/sys/fs/cgroup/a"},
			options{step: 1, hold: -1, rate: 1, cgroup: "/sys/fs/cgroup/a"}, true},
		{"fractional rate", []string{"-rate", "0.5"}, options{step: 4, hold: -1, rate: 0.5}, true},
		{"steady level", []string{"-mb", "51", "-ready", "/tmp/r"}, options{mb: 51, step: 4, hold: -1, ready: "/tmp/r"}, true},
		{"page cache", []string{"-cache-file", "/mnt/cache", "-cache-mb", "48", "-mb", "2"},
			options{mb: 2, step: 4, hold: -1, cacheFile: "/mnt/cache", cacheMB: 48}, true},
		{"score set", []string{"-oom-score-adj", "0"}, options{step: 4, hold: -1, setScore: true}, true},
		{"rate not a number", []string{"-rate", "fast"}, options{}, false},
		{"negative rate", []string{"-rate", "-2"}, options{}, false},
		{"rate with interval", []string{"-rate", "1", "-interval", "1s"}, options{}, false},
		{"cache file alone", []string{"-cache-file", "/mnt/cache"}, options{}, false},
		{"unknown flag", []string{"-speed", "1"}, options{}, false},
		{"stray argument", []string{"-mb", "4", "extra"}, options{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parse(tt.args)
			if (err == nil) != tt.ok {
				t.Fatalf("parse(%q) error = %v, want ok=%v", tt.args, err, tt.ok)
			}
			if tt.ok && got != tt.want {
				t.Errorf("parse(%q) = %+v, want %+v", tt.args, got, tt.want)
			}
		})
	}
}

func TestDueAfter(t *testing.T) {
	tests := []struct {
		mb   int
		rate float64
		want time.Duration
	}{
		{0, 1, 0},
		{1, 1, time.Second},
		{64, 1, 64 * time.Second},
		{3, 0.5, 6 * time.Second},
		{16, 8, 2 * time.Second},
	}
	for _, tt := range tests {
		if got := dueAfter(tt.mb, tt.rate); got != tt.want {
			t.Errorf("dueAfter(%d, %v) = %v, want %v", tt.mb, tt.rate, got, tt.want)
		}
	}
}

// TestPageCache writes and reads back a cache file of the asked size.
func TestPageCache(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cache")
	if err := pageCache(p, 3); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Size() != 3<<20 {
		t.Errorf("cache file: %v, %v; want %d bytes", fi, err, 3<<20)
	}
	if err := pageCache(filepath.Join(t.TempDir(), "missing", "cache"), 1); err == nil {
		t.Error("a cache file in a missing directory succeeded")
	}
}

// TestDumpKmsgCopies checks the copy loop on a regular file standing in for
// /dev/kmsg (which returns one record per read; a file returns it all at
// once, then 0 bytes). The real device is exercised in the VM tests.
func TestDumpKmsgCopies(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "kmsg"), filepath.Join(dir, "dump")
	want := "6,1,0,-;Linux version\n3,2,5,-;oom-kill:constraint=CONSTRAINT_MEMCG\n SUBSYSTEM=x\n"
	if err := os.WriteFile(in, []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := dumpKmsg(in, out); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil || string(got) != want {
		t.Errorf("dump = %q, %v; want %q", got, err, want)
	}
	if err := dumpKmsg(filepath.Join(dir, "missing"), out); err == nil {
		t.Error("dumping a missing device succeeded")
	}
}
