package cgroupstat

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTree makes a fixture cgroup tree: files maps paths under root to
// contents.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, body := range files {
		f := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func v2Events(oomKill string) string {
	return "low 0\nhigh 0\nmax 3\noom 2\noom_kill " + oomKill + "\noom_group_kill 0\n"
}

func v1Control(oomKill string) string {
	return "oom_kill_disable 0\nunder_oom 0\noom_kill " + oomKill + "\n"
}

func TestOOMKillCounters(t *testing.T) {
	const (
		pod = "kubepods/burstable/pod0f1e2d3c-4b5a-4968-a7b6-c5d4e3f2a1b0"
		ctr = pod + "/4a5f0c2b9d8e7f6a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f607182"
	)
	tests := []struct {
		name    string
		files   map[string]string
		keep    func(string) bool
		descend func(string) bool
		max     int
		want    map[string]uint64
		wantErr error
	}{
		{
			name: "v2 every group",
			files: map[string]string{
				"cgroup.controllers":               "cpu memory pids\n",
				"kubepods/memory.events":           v2Events("3"),
				pod + "/memory.events":             v2Events("3"),
				ctr + "/memory.events":             v2Events("2"),
				"system.slice/memory.events":       v2Events("0"),
				"kubepods/besteffort/cgroup.procs": "",
			},
			want: map[string]uint64{"/kubepods": 3, "/" + pod: 3, "/" + ctr: 2, "/system.slice": 0},
		},
		{
			name: "v1 containers only, kubepods only",
			files: map[string]string{
				"memory/memory.limit_in_bytes":           "9223372036854771712\n",
				"memory/kubepods/memory.oom_control":     v1Control("5"),
				"memory/" + pod + "/memory.oom_control":  v1Control("5"),
				"memory/" + ctr + "/memory.oom_control":  v1Control("4"),
				"memory/user.slice/x/memory.oom_control": v1Control("9"),
			},
			keep:    func(p string) bool { return strings.Count(p, "/") == 4 },
			descend: func(p string) bool { return strings.HasPrefix(p, "/kubepods") },
			want:    map[string]uint64{"/" + ctr: 4},
		},
		{
			name: "malformed file left out",
			files: map[string]string{
				"cgroup.controllers": "memory\n",
				"a/memory.events":    "oom_kill x\n",
				"b/memory.events":    v2Events("1"),
				"c/memory.events":    strings.Repeat("oom_kill 1\n", 2),
			},
			want: map[string]uint64{"/b": 1},
		},
		{
			name: "bounded",
			files: map[string]string{
				"cgroup.controllers": "memory\n",
				"a/memory.events":    v2Events("1"),
				"b/memory.events":    v2Events("1"),
				"c/memory.events":    v2Events("1"),
			},
			max:     3,
			want:    map[string]uint64{"/a": 1, "/b": 1},
			wantErr: ErrTooManyGroups,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := writeTree(t, tc.files)
			got, err := Counters{Root: root, Keep: tc.keep, Descend: tc.descend, MaxGroups: tc.max}.OOMKills()
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %d, want %d (all: %v)", k, got[k], v, got)
				}
			}
		})
	}
}

func TestOOMKillCountersNoController(t *testing.T) {
	if _, err := (Counters{Root: t.TempDir()}).OOMKills(); !errors.Is(err, ErrNoMemoryController) {
		t.Fatalf("err = %v, want ErrNoMemoryController", err)
	}
}

func TestTasks(t *testing.T) {
	root := writeTree(t, map[string]string{
		"memory/memory.limit_in_bytes":          "9223372036854771712\n",
		"memory/kubepods/pod1/c1/cgroup.procs":  "101\n102\n",
		"memory/kubepods/pod1/c2/cgroup.procs":  "201\nnot-a-pid\n-3\n",
		"memory/kubepods/pod1/cgroup.procs":     "",
		"memory/system.slice/x/cgroup.procs":    "301\n",
		"memory/kubepods/pod1/c2/memory.events": "",
	})
	got, err := Counters{Root: root, Keep: func(p string) bool { return strings.Count(p, "/") == 3 }}.Tasks()
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{101: "/kubepods/pod1/c1", 102: "/kubepods/pod1/c1", 201: "/kubepods/pod1/c2"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for pid, cg := range want {
		if got[pid] != cg {
			t.Errorf("pid %d in %q, want %q", pid, got[pid], cg)
		}
	}
}
