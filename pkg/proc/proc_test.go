package proc

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"
)

func TestParseMemInfo(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		total   int64
		avail   int64
		wantErr bool
	}{
		{"normal", "MemTotal:       16303412 kB\nMemFree:  1 kB\nMemAvailable:    9000000 kB\n", 16303412 * 1024, 9000000 * 1024, false},
		{"no available (old kernel)", "MemTotal: 1000 kB\n", 1000 * 1024, 0, false},
		{"garbage", "MemTotal: lots\n", 0, 0, true},
		{"empty", "", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMemInfo(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v", err)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("err %v is not ErrMalformed", err)
			}
			if m.TotalBytes != tt.total || m.AvailableBytes != tt.avail {
				t.Fatalf("got %+v", m)
			}
		})
	}
}

func TestFixtureTree(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sys/kernel/random"), 0o755)
	os.MkdirAll(filepath.Join(dir, "42"), 0o755)
	os.WriteFile(filepath.Join(dir, "sys/kernel/random/boot_id"), []byte("6c1a2b3c-0000-4000-8000-000000000001\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "uptime"), []byte("123.45 200.00\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "42/cgroup"), []byte("12:memory:/kubepods/burstable/podx/abc\n0::/\n"), 0o644)
	fs := New(dir)
	if id, err := fs.BootID(); err != nil || id != "6c1a2b3c-0000-4000-8000-000000000001" {
		t.Fatalf("boot id %q %v", id, err)
	}
	if up, err := fs.Uptime(); err != nil || up.Seconds() != 123.45 {
		t.Fatalf("uptime %v %v", up, err)
	}
	got := fs.Cgroups([]int{42, 43})
	if len(got) != 1 || got[42] != "/kubepods/burstable/podx/abc" {
		t.Fatalf("cgroups %v", got)
	}
	// A file larger than the read buffer (a v1 host with very long
	// paths) still parses, and tasks of one cgroup share its string.
	long := "/kubepods/" + strings.Repeat("x", 5000)
	os.MkdirAll(filepath.Join(dir, "44"), 0o755)
	os.MkdirAll(filepath.Join(dir, "45"), 0o755)
	os.WriteFile(filepath.Join(dir, "44/cgroup"), []byte("13:cpu:/a\n12:memory:"+long+"\n0::/\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "45/cgroup"), []byte("12:memory:"+long+"\n"), 0o644)
	got = fs.Cgroups([]int{44, 45})
	if got[44] != long || got[45] != long || unsafe.StringData(got[44]) != unsafe.StringData(got[45]) {
		t.Fatalf("long cgroups: %d %d bytes, shared %v", len(got[44]), len(got[45]), unsafe.StringData(got[44]) == unsafe.StringData(got[45]))
	}
	if cg, err := fs.Cgroup(44); err != nil || cg != long {
		t.Fatalf("Cgroup(44) %d bytes, %v", len(cg), err)
	}
	// A process in the root cgroup is there; a zombie only reads as if.
	os.MkdirAll(filepath.Join(dir, "46"), 0o755)
	os.MkdirAll(filepath.Join(dir, "47"), 0o755)
	os.WriteFile(filepath.Join(dir, "46/cgroup"), []byte("12:memory:/\n0::/\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "46/stat"), []byte("46 (sshd: a) b) S 1 46 46 0 -1 4194560\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "47/cgroup"), []byte("12:memory:/\n0::/\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "47/stat"), []byte("47 (hog) Z 1 47 47 0 -1 4228108\n"), 0o644)
	if cg, err := fs.Cgroup(46); err != nil || cg != "/" {
		t.Errorf("Cgroup(46) %q, %v: want the root cgroup", cg, err)
	}
	if cg, err := fs.Cgroup(47); !errors.Is(err, ErrExited) {
		t.Errorf("Cgroup(47) of a zombie %q, %v: want ErrExited", cg, err)
	}
	if got := fs.Cgroups([]int{46, 47}); len(got) != 1 || got[46] != "/" {
		t.Errorf("Cgroups %v: want 46 only", got)
	}
	os.WriteFile(filepath.Join(dir, "sys/kernel/random/boot_id"), []byte("bad id with spaces\n"), 0o644)
	if _, err := fs.BootID(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("malformed boot id accepted: %v", err)
	}
}

func TestRealProc(t *testing.T) {
	fs := New("")
	if _, err := fs.BootID(); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.MemInfo(); err != nil {
		t.Fatal(err)
	}
	cg, err := fs.Cgroup(os.Getpid())
	if err != nil || cg == "" {
		t.Fatalf("own cgroup %q %v", cg, err)
	}
	// This host's cgroup mount says the same, whether the walk or /proc
	// answers.
	fs.CgroupRoot = "/sys/fs/cgroup"
	for _, under := range []string{cg, "/"} {
		if got := fs.CgroupsUnder(under, []int{os.Getpid()}); got[os.Getpid()] != cg {
			t.Errorf("CgroupsUnder(%q) %v, want %q", under, got, cg)
		}
	}
}
