package cgroupstat

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const (
	fixtureUID = "0f1e2d3c-4b5a-4968-a7b6-c5d4e3f2a1b0"
	fixtureID  = "4a5f0c2b9d8e7f6a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f607182"
)

// fixtureTrees are the cgroup trees under testdata/ with the path of the
// group each one is read at; the expected Stats are in <tree>.golden.json.
var fixtureTrees = []struct {
	tree, path string
	mode       Mode
}{
	{
		tree: "v2-6.1-systemd-container-oom",
		path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f1e2d3c_4b5a_4968_a7b6_c5d4e3f2a1b0.slice/cri-containerd-" + fixtureID + ".scope",
		mode: ModeV2,
	},
	{
		tree: "v2-5.15-cgroupfs-oomgroup-no-peak",
		path: "/kubepods/burstable/pod" + fixtureUID,
		mode: ModeV2,
	},
	{
		tree: "v1-5.10-cgroupfs-container-oom",
		path: "/kubepods/burstable/pod" + fixtureUID + "/" + fixtureID,
		mode: ModeV1,
	},
	{
		tree: "v1-4.9-minimal-pre-oomkill",
		path: "/docker/" + fixtureID,
		mode: ModeV1,
	},
}

func TestReadFixtures(t *testing.T) {
	for _, tc := range fixtureTrees {
		t.Run(tc.tree, func(t *testing.T) {
			root := filepath.Join("testdata", tc.tree)
			mode, _, err := DetectMode(root)
			if err != nil || mode != tc.mode {
				t.Fatalf("DetectMode = %v, %v; want %v", mode, err, tc.mode)
			}
			got, err := Read(root, tc.path)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if got.V1 != (tc.mode == ModeV1) {
				t.Errorf("V1 = %v for a %v tree", got.V1, tc.mode)
			}
			b, err := json.MarshalIndent(got, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			b = append(b, '\n')
			golden := filepath.Join("testdata", tc.tree+".golden.json")
			if *update {
				if err := os.WriteFile(golden, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(b, want) {
				t.Errorf("Stats differ from %s:\ngot:\n%s\nwant:\n%s", golden, b, want)
			}
		})
	}
}

// TestReadFixtureFigures pins the figures the golden files hold, so that a
// careless -update cannot bless a regression in the few that matter.
func TestReadFixtureFigures(t *testing.T) {
	tests := []struct {
		tree  string
		check func(Stats) bool
	}{
		{"v2-6.1-systemd-container-oom", func(s Stats) bool {
			return s.MaxBytes == 32<<20 && s.PeakBytes == 32<<20 && s.CurrentBytes == 33370112 &&
				s.LowBytes == 4<<20 && s.HighBytes == 0 && s.Events.OOMKill == 1 && s.Events.Max == 214 && !s.OOMGroup
		}},
		{"v2-5.15-cgroupfs-oomgroup-no-peak", func(s Stats) bool {
			return s.MaxBytes == 0 && s.PeakBytes == -1 && s.MinBytes == 8<<20 && s.HighBytes == 192<<20 &&
				s.OOMGroup && s.Events.OOMGroupKill == 2 && s.Events.OOMKill == 3
		}},
		{"v1-5.10-cgroupfs-container-oom", func(s Stats) bool {
			return s.V1 && s.MaxBytes == 32<<20 && s.PeakBytes == 32<<20 && s.Events.OOMKill == 1 && !s.UnderOOM
		}},
		{"v1-4.9-minimal-pre-oomkill", func(s Stats) bool {
			// No max_usage_in_bytes, no failcnt, no memory.stat: the library
			// refuses the group and the fallback reads the files it has.
			return s.V1 && s.MaxBytes == 0 && s.PeakBytes == -1 && s.CurrentBytes == 1<<20 && s.UnderOOM && s.Events.OOMKill == 0
		}},
	}
	for _, tc := range tests {
		t.Run(tc.tree, func(t *testing.T) {
			var p string
			for _, f := range fixtureTrees {
				if f.tree == tc.tree {
					p = f.path
				}
			}
			s, err := Read(filepath.Join("testdata", tc.tree), p)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(s) {
				t.Errorf("unexpected figures: %+v", s)
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	empty := t.TempDir()
	tests := []struct {
		name, root, path string
		want             error
	}{
		{"no memory controller", empty, "/x", ErrNoMemoryController},
		{"relative path", "testdata/v2-6.1-systemd-container-oom", "kubepods.slice", ErrInvalidPath},
		{"empty path", "testdata/v2-6.1-systemd-container-oom", " ", ErrInvalidPath},
		{"removed v2 group", "testdata/v2-6.1-systemd-container-oom", "/kubepods.slice/gone", ErrNotFound},
		{"removed v1 group", "testdata/v1-5.10-cgroupfs-container-oom", "/kubepods/gone", ErrNotFound},
		{"dotdot stays inside", "testdata/v1-5.10-cgroupfs-container-oom", "/../../../../etc", ErrNotFound},
		{"malformed memory.max", "testdata/v2-malformed-max", "/broken", ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(tc.root, tc.path)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Read(%q, %q) error = %v, want %v", tc.root, tc.path, err, tc.want)
			}
		})
	}
}

func TestDetectModeLayouts(t *testing.T) {
	write := func(t *testing.T, p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		files   map[string]string
		want    Mode
		wantDir string
	}{
		{"v1 hybrid", map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n", "unified/cgroup.controllers": "\n"}, ModeV1, "memory"},
		{"v1 memory mount itself", map[string]string{"memory.limit_in_bytes": "9223372036854771712\n"}, ModeV1, "."},
		{"v2 unified", map[string]string{"cgroup.controllers": "cpu io memory pids\n"}, ModeV2, "."},
		{"v2 hybrid memory on unified", map[string]string{"unified/cgroup.controllers": "memory\n"}, ModeV2, "unified"},
		{"v2 without memory", map[string]string{"cgroup.controllers": "cpu io pids\n"}, ModeUnknown, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for p, s := range tc.files {
				write(t, filepath.Join(root, p), s)
			}
			got, dir, err := DetectMode(root)
			if got != tc.want {
				t.Fatalf("DetectMode = %v (%v), want %v", got, err, tc.want)
			}
			if tc.want == ModeUnknown {
				if !errors.Is(err, ErrNoMemoryController) {
					t.Fatalf("error = %v, want ErrNoMemoryController", err)
				}
				return
			}
			if want := filepath.Join(root, tc.wantDir); dir != want {
				t.Errorf("dir = %q, want %q", dir, want)
			}
		})
	}
}

func TestParseValue(t *testing.T) {
	tests := []struct {
		in     string
		want   int64
		isMax  bool
		errIs  error
		errAny bool
	}{
		{in: "33554432\n", want: 33554432},
		{in: "max\n", isMax: true},
		{in: "0", want: 0},
		{in: "-1\n", want: -1},
		{in: "9223372036854771712\n", want: 9223372036854771712},
		{in: "", errIs: ErrMalformed},
		{in: "\n", errIs: ErrMalformed},
		{in: "12 34\n", errIs: ErrMalformed},
		{in: "18446744073709551615\n", errIs: ErrMalformed},
		{in: "MAX\n", errIs: ErrMalformed},
		{in: strings.Repeat("1", 100), errIs: ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(strings.TrimSpace(tc.in), func(t *testing.T) {
			v, isMax, err := ParseValue(strings.NewReader(tc.in))
			if tc.errIs != nil {
				if !errors.Is(err, tc.errIs) {
					t.Fatalf("error = %v, want %v", err, tc.errIs)
				}
				return
			}
			if err != nil || v != tc.want || isMax != tc.isMax {
				t.Fatalf("ParseValue(%q) = %d, %v, %v; want %d, %v", tc.in, v, isMax, err, tc.want, tc.isMax)
			}
		})
	}
}

func TestParseKeyed(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		want  map[string]uint64
		errIs error
	}{
		{"events", "low 0\nhigh 3\nmax 7\noom 1\noom_kill 1\noom_group_kill 0\n", map[string]uint64{"low": 0, "high": 3, "max": 7, "oom": 1, "oom_kill": 1, "oom_group_kill": 0}, nil},
		{"blank lines", "\na 1\n\n", map[string]uint64{"a": 1}, nil},
		{"empty", "", map[string]uint64{}, nil},
		{"three fields", "a 1 2\n", nil, ErrMalformed},
		{"negative", "a -1\n", nil, ErrMalformed},
		{"duplicate", "a 1\na 2\n", nil, ErrMalformed},
		{"too large", strings.Repeat("k 1\n", MaxFileSize/4+1), nil, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseKeyed(strings.NewReader(tc.in))
			if tc.errIs != nil {
				if !errors.Is(err, tc.errIs) {
					t.Fatalf("error = %v, want %v", err, tc.errIs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestParseOOMControl(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		want  OOMControl
		errIs error
	}{
		{"4.13+", "oom_kill_disable 0\nunder_oom 0\noom_kill 5\n", OOMControl{OOMKill: 5}, nil},
		{"pre 4.13 stalled", "oom_kill_disable 1\nunder_oom 1\n", OOMControl{KillDisable: true, UnderOOM: true}, nil},
		{"not oom_control", "low 0\n", OOMControl{}, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseOOMControl(strings.NewReader(tc.in))
			if tc.errIs != nil {
				if !errors.Is(err, tc.errIs) {
					t.Fatalf("error = %v, want %v", err, tc.errIs)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// seeds returns the content of every fixture file with one of names.
func seeds(f *testing.F, names ...string) [][]byte {
	f.Helper()
	var out [][]byte
	err := filepath.WalkDir("testdata", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		for _, n := range names {
			if d.Name() == n {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				out = append(out, b)
			}
		}
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	return out
}

func FuzzParseValue(f *testing.F) {
	for _, b := range seeds(f, "memory.max", "memory.current", "memory.limit_in_bytes", "memory.oom.group", "memory.high") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, isMax, err := ParseValue(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if isMax && v != 0 {
			t.Fatalf("max with value %d", v)
		}
	})
}

func FuzzParseKeyed(f *testing.F) {
	for _, b := range seeds(f, "memory.events", "memory.stat", "memory.oom_control") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		kv, err := ParseKeyed(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		for k := range kv {
			if k == "" || strings.ContainsAny(k, " \t\n") {
				t.Fatalf("bad key %q", k)
			}
		}
		// Events and OOMControl are views of the same map.
		if _, err := ParseEvents(bytes.NewReader(b)); err != nil {
			t.Fatalf("ParseEvents failed where ParseKeyed did not: %v", err)
		}
	})
}

// TestV1LibraryPath makes sure the cgroup1 library reads complete v1 groups
// itself, so the file-by-file fallback stays a fallback.
func TestV1LibraryPath(t *testing.T) {
	tests := []struct {
		tree, path string
		libOK      bool
	}{
		{"v1-5.10-cgroupfs-container-oom", "/kubepods/burstable/pod" + fixtureUID + "/" + fixtureID, true},
		{"v1-4.9-minimal-pre-oomkill", "/docker/" + fixtureID, false},
	}
	for _, tc := range tests {
		t.Run(tc.tree, func(t *testing.T) {
			root := filepath.Join("testdata", tc.tree)
			_, err := statV1(newV1Memory(root), tc.path)
			if (err == nil) != tc.libOK {
				t.Fatalf("statV1 error = %v, want library success %v", err, tc.libOK)
			}
		})
	}
}
