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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.o.validate(); (err == nil) != tt.ok {
				t.Errorf("validate() = %v, want ok=%v", err, tt.ok)
			}
		})
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
