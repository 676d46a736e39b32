package proc

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// fakeHost is a cgroup mount and a /proc in a temporary directory.
type fakeHost struct {
	t     *testing.T
	v1    bool
	mount string // what CgroupRoot names
	mem   string // the memory hierarchy's root directory
	proc  string
}

func newFakeHost(t *testing.T, v1 bool) *fakeHost {
	t.Helper()
	dir := t.TempDir()
	h := &fakeHost{t: t, v1: v1, mount: filepath.Join(dir, "cgroup"), proc: filepath.Join(dir, "proc")}
	if v1 {
		// A v1 layout: one directory per controller; cpu's tree is not
		// memory's.
		h.mem = filepath.Join(h.mount, "memory")
		h.write(filepath.Join(h.mem, "memory.limit_in_bytes"), "9223372036854771712\n")
		h.write(filepath.Join(h.mount, "cpu,cpuacct", "elsewhere", "cgroup.procs"), "")
	} else {
		h.mem = h.mount
		h.write(filepath.Join(h.mem, "cgroup.controllers"), "cpuset cpu io memory pids\n")
	}
	h.write(filepath.Join(h.mem, "cgroup.procs"), "1\n")
	// The test's PID namespace is the fake /proc's.
	if err := os.MkdirAll(h.proc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(strconv.Itoa(os.Getpid()), filepath.Join(h.proc, "self")); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *fakeHost) write(name, content string) {
	h.t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// group makes the cgroup cg (a path such as "/a/b") listing pids.
func (h *fakeHost) group(cg string, pids ...int) {
	h.t.Helper()
	var b strings.Builder
	for _, pid := range pids {
		fmt.Fprintf(&b, "%d\n", pid)
	}
	h.groupRaw(cg, b.String())
}

func (h *fakeHost) groupRaw(cg, procs string) {
	h.t.Helper()
	dir := filepath.Join(h.mem, filepath.FromSlash(cg))
	h.write(filepath.Join(dir, "cgroup.procs"), procs)
	if !h.v1 {
		h.write(filepath.Join(dir, "memory.current"), "0\n")
	}
}

// task makes /proc/<pid>/cgroup say the process runs in cg, as the kernel
// writes it on the host's layout.
func (h *fakeHost) task(pid int, cg string) {
	h.t.Helper()
	content := "0::" + cg + "\n"
	if h.v1 {
		content = "12:pids:/elsewhere\n11:memory:" + cg + "\n4:cpu,cpuacct:/elsewhere\n0::/\n"
	}
	h.write(filepath.Join(h.proc, strconv.Itoa(pid), "cgroup"), content)
	h.write(filepath.Join(h.proc, strconv.Itoa(pid), "stat"), strconv.Itoa(pid)+" (sleep) S 1 1 1 0 -1 0\n")
}

func (h *fakeHost) fs() FS { return FS{Root: h.proc, CgroupRoot: h.mount} }

// nested lays out pids 100.. across nested cgroups, every level holding
// processes, and returns where each runs. inProc says which of them
// /proc also knows.
func (h *fakeHost) nested(inProc func(pid int) bool) map[int]string {
	where := map[int]string{}
	pid := 100
	for _, cg := range []string{
		"/kubepods",
		"/kubepods/burstable",
		"/kubepods/burstable/poda",
		"/kubepods/burstable/poda/ctr1",
		"/kubepods/burstable/poda/ctr2",
		"/kubepods/besteffort/podb/ctr1",
		"/system.slice/sshd.service",
	} {
		var pids []int
		for range 30 {
			pids = append(pids, pid)
			where[pid] = cg
			if inProc(pid) {
				h.task(pid, cg)
			}
			pid++
		}
		h.group(cg, pids...)
	}
	return where
}

// keys returns the PIDs of m, sorted.
func keys(m map[int]string) []int { return slices.Sorted(maps.Keys(m)) }

// under returns the part of where in the subtree cg.
func under(where map[int]string, cg string) map[int]string {
	out := map[int]string{}
	for pid, w := range where {
		if cg == "/" || w == cg || strings.HasPrefix(w, cg+"/") {
			out[pid] = w
		}
	}
	return out
}

func TestCgroupsUnder(t *testing.T) {
	for _, v1 := range []bool{false, true} {
		layout := map[bool]string{false: "v2", true: "v1"}[v1]
		t.Run(layout, func(t *testing.T) {
			// /proc knows one PID in ten: the walk alone finds the others,
			// and /proc confirms its answers.
			for _, tt := range []struct{ name, under string }{
				{"limit of a pod", "/kubepods/burstable/poda"},
				{"limit of a container", "/kubepods/burstable/poda/ctr2"},
				{"limit above the pods", "/kubepods"},
				{"node-wide", ""},
				{"node-wide, root", "/"},
			} {
				t.Run(tt.name, func(t *testing.T) {
					h := newFakeHost(t, v1)
					where := h.nested(func(pid int) bool { return pid%10 == 0 })
					want := under(where, tt.under)
					if tt.under == "" {
						want = where
					}
					got := h.fs().CgroupsUnder(tt.under, keys(want))
					if !maps.Equal(got, want) {
						t.Fatalf("got %d PIDs, want %d: %v", len(got), len(want), diff(got, want))
					}
				})
			}
			t.Run("absent from the tree", func(t *testing.T) {
				h := newFakeHost(t, v1)
				where := h.nested(func(pid int) bool { return pid%10 == 0 })
				want := under(where, "/kubepods/burstable")
				// A thread, a process moved away since, a process
				// /proc knows and no cgroup lists: from /proc. One
				// that is nowhere: left out.
				h.task(5001, "/kubepods/burstable/poda/ctr1")
				h.task(5002, "/kubepods/burstable/poda/ctr2")
				want[5001], want[5002] = "/kubepods/burstable/poda/ctr1", "/kubepods/burstable/poda/ctr2"
				got := h.fs().CgroupsUnder("/kubepods/burstable", append(keys(want), 5003))
				if !maps.Equal(got, want) {
					t.Fatalf("%v", diff(got, want))
				}
			})
			t.Run("malformed cgroup.procs", func(t *testing.T) {
				h := newFakeHost(t, v1)
				h.task(300, "/lim/a")
				h.groupRaw("/lim/a", "300\nabc\n301\n12x\n\n-5\n 302\n303 \n99999999999999\n0\n304\n305")
				h.group("/lim/b", 306)
				got := h.fs().CgroupsUnder("/lim", []int{300, 301, 302, 303, 304, 305, 306, 12, 5})
				want := map[int]string{300: "/lim/a", 301: "/lim/a", 304: "/lim/a", 306: "/lim/b"}
				if !maps.Equal(got, want) {
					t.Fatalf("%v", diff(got, want))
				}
			})
			t.Run("root cgroup", func(t *testing.T) {
				// The root's processes come from /proc: a zombie reads as
				// "/" there and is left out, as Cgroups does.
				h := newFakeHost(t, v1)
				h.group("/lim", 400, 401)
				h.task(400, "/lim")
				h.groupRaw("/", "1\n402\n403\n")
				h.task(402, "/")
				h.task(403, "/")
				h.write(filepath.Join(h.proc, "403", "stat"), "403 (hog) Z 1 1 1 0 -1 0\n")
				pids := []int{400, 401, 402, 403}
				pids = append(pids, seq(1000, minNodeWalk)...)
				got := h.fs().CgroupsUnder("/", pids)
				want := map[int]string{400: "/lim", 401: "/lim", 402: "/"}
				if !maps.Equal(got, want) {
					t.Fatalf("%v", diff(got, want))
				}
			})
			t.Run("listed twice", func(t *testing.T) {
				h := newFakeHost(t, v1)
				h.group("/lim/a", 500, 501)
				h.group("/lim/b", 501, 502)
				h.task(500, "/lim/a")
				got := h.fs().CgroupsUnder("/lim", []int{500, 501, 502})
				want := map[int]string{500: "/lim/a", 502: "/lim/b"}
				if !maps.Equal(got, want) {
					t.Fatalf("%v", diff(got, want))
				}
			})
			t.Run("mount is not what /proc names", func(t *testing.T) {
				// The agent in a cgroup namespace: /proc's paths are
				// relative to its root; the walk's are discarded.
				h := newFakeHost(t, v1)
				h.group("/kubepods/pod/ctr", 600, 601, 602)
				h.task(600, "/ctr")
				h.task(601, "/ctr")
				got := h.fs().CgroupsUnder("/kubepods/pod", []int{600, 601, 602})
				want := map[int]string{600: "/ctr", 601: "/ctr"}
				if !maps.Equal(got, want) {
					t.Fatalf("%v", diff(got, want))
				}
			})
			t.Run("another PID namespace", func(t *testing.T) {
				// A pod without hostPID reading the host's /proc: its
				// cgroup.procs would not be in the same PIDs. Not walked.
				h := newFakeHost(t, v1)
				h.group("/lim", 900, 901)
				h.task(900, "/lim")
				self := filepath.Join(h.proc, "self")
				if err := os.Remove(self); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(strconv.Itoa(os.Getpid()+1), self); err != nil {
					t.Fatal(err)
				}
				want := map[int]string{900: "/lim"}
				if got := h.fs().CgroupsUnder("/lim", []int{900, 901}); !maps.Equal(got, want) {
					t.Fatalf("%v", diff(got, want))
				}
				if err := os.Remove(self); err != nil {
					t.Fatal(err)
				}
				if got := h.fs().CgroupsUnder("/lim", []int{900, 901}); !maps.Equal(got, want) {
					t.Fatalf("without self: %v", diff(got, want))
				}
			})
			t.Run("nothing to check against", func(t *testing.T) {
				h := newFakeHost(t, v1)
				h.group("/lim", 700, 701)
				if got := h.fs().CgroupsUnder("/lim", []int{700, 701}); len(got) != 0 {
					t.Fatalf("unverified walk used: %v", got)
				}
			})
			t.Run("no mount", func(t *testing.T) {
				h := newFakeHost(t, v1)
				where := h.nested(func(int) bool { return true })
				fs := h.fs()
				fs.CgroupRoot = filepath.Join(t.TempDir(), "none")
				if got := fs.CgroupsUnder("/", keys(where)); !maps.Equal(got, where) {
					t.Fatalf("%v", diff(got, where))
				}
			})
			t.Run("path leaving the mount", func(t *testing.T) {
				h := newFakeHost(t, v1)
				h.group("/lim", 800)
				h.task(800, "/lim")
				h.write(filepath.Join(filepath.Dir(h.mount), "cgroup.procs"), "801\n")
				fs := h.fs()
				for _, u := range []string{"/lim/../..", "/lim/..", "lim", "/lim/", "//lim"} {
					if got := fs.CgroupsUnder(u, []int{800, 801}); len(got) != 1 || got[800] != "/lim" {
						t.Errorf("under %q: %v", u, got)
					}
				}
			})
		})
	}
}

// seq returns n PIDs from first.
func seq(first, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = first + i
	}
	return out
}

func diff(got, want map[int]string) string {
	var b strings.Builder
	for _, pid := range slices.Sorted(maps.Keys(want)) {
		if got[pid] != want[pid] {
			fmt.Fprintf(&b, "%d: got %q, want %q; ", pid, got[pid], want[pid])
		}
	}
	for _, pid := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[pid]; !ok {
			fmt.Fprintf(&b, "%d: got %q, want none; ", pid, got[pid])
		}
	}
	return b.String()
}

// TestCgroupsUnderSameAsProc compares the walk's answers with
// /proc/<pid>/cgroup's for a tree both know, PIDs of other subtrees,
// threads and exited processes included.
func TestCgroupsUnderSameAsProc(t *testing.T) {
	for _, v1 := range []bool{false, true} {
		h := newFakeHost(t, v1)
		where := h.nested(func(int) bool { return true })
		h.task(9000, "/kubepods/burstable/poda/ctr1") // a thread
		h.task(9001, "/")                             // a zombie
		h.write(filepath.Join(h.proc, "9001", "stat"), "9001 (x) Z 1 1 1 0 -1 0\n")
		pids := append(keys(where), 9000, 9001, 9002)
		fs := h.fs()
		for _, u := range []string{"", "/kubepods", "/kubepods/burstable/poda", "/system.slice"} {
			// Asked for every PID, the walk's subtree holds some: the
			// others come from /proc.
			want := FS{Root: h.proc}.Cgroups(pids)
			got := fs.CgroupsUnder(u, pids)
			if !maps.Equal(got, want) {
				t.Errorf("v1 %v, under %q: %v", v1, u, diff(got, want))
			}
		}
	}
}

func TestCgroupsUnderBounds(t *testing.T) {
	h := newFakeHost(t, false)
	// Walked in name order: /a/1 ... /a/9, then /deep/... 40 levels.
	for i := 1; i <= 9; i++ {
		h.group(fmt.Sprintf("/a/%d", i), 100+i)
	}
	deep := "/deep"
	for i := range 40 {
		deep += "/" + strconv.Itoa(i)
	}
	h.group(deep, 200)
	h.group("/deep/0/1", 201)
	h.task(101, "/a/1")
	pids := append(seq(101, 9), 200, 201)
	t.Run("directories", func(t *testing.T) {
		fs := h.fs()
		// Five directories: /a, /a/1 .. /a/4.
		fs.MaxCgroupDirs = 5
		got := fs.CgroupsUnder("/a", pids)
		want := map[int]string{101: "/a/1", 102: "/a/2", 103: "/a/3", 104: "/a/4"}
		if !maps.Equal(got, want) {
			t.Fatalf("%v", diff(got, want))
		}
	})
	t.Run("bytes", func(t *testing.T) {
		fs := h.fs()
		// Each file is "10N\n": the third is cut short.
		fs.MaxCgroupBytes = 10
		got := fs.CgroupsUnder("/a", pids)
		want := map[int]string{101: "/a/1", 102: "/a/2"}
		if !maps.Equal(got, want) {
			t.Fatalf("%v", diff(got, want))
		}
	})
	t.Run("depth", func(t *testing.T) {
		got := h.fs().CgroupsUnder("/", append(pids, seq(1000, minNodeWalk)...))
		want := map[int]string{201: "/deep/0/1"}
		for i := 1; i <= 9; i++ {
			want[100+i] = fmt.Sprintf("/a/%d", i)
		}
		if !maps.Equal(got, want) {
			t.Fatalf("%v", diff(got, want))
		}
	})
	t.Run("few PIDs node-wide", func(t *testing.T) {
		// Too few to walk a node's tree for: /proc alone.
		got := h.fs().CgroupsUnder("/", pids)
		if want := map[int]string{101: "/a/1"}; !maps.Equal(got, want) {
			t.Fatalf("%v", diff(got, want))
		}
	})
}

func TestScanPIDs(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []int
	}{
		{"pids", "1\n22\n333\n", []int{1, 22, 333}},
		{"empty", "", nil},
		{"last line cut short", "1\n22", []int{1}},
		{"garbage", "x\n1\n1x\nx1\n 2\n3 \n-4\n+5\n0\n00\n6\n", []int{1, 6}},
		{"too long", "12345678901\n1234567890\n", []int{1234567890}},
		{"blank lines", "\n\n7\n\n", []int{7}},
		{"crlf", "8\r\n9\n", []int{9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{1, 3, 4096} {
				var got []int
				n, err := scanPIDs(iotest.OneByteReader(strings.NewReader(tt.in)), make([]byte, size), func(pid int) { got = append(got, pid) })
				if err != nil || n != int64(len(tt.in)) {
					t.Fatalf("buffer %d: %d bytes, %v", size, n, err)
				}
				if !slices.Equal(got, tt.want) {
					t.Fatalf("buffer %d: got %v, want %v", size, got, tt.want)
				}
			}
		})
	}
	if _, err := scanPIDs(iotest.ErrReader(os.ErrClosed), nil, func(int) {}); err != os.ErrClosed {
		t.Fatalf("read error: %v", err)
	}
}

// scanPIDsSlow is scanPIDs by the book.
func scanPIDsSlow(b []byte) []int {
	lines := bytes.Split(b, []byte("\n"))
	var out []int
	for _, l := range lines[:len(lines)-1] {
		if len(l) == 0 || len(l) > maxPIDDigits || bytes.IndexFunc(l, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
			continue
		}
		if n, err := strconv.Atoi(string(l)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}

func FuzzScanPIDs(f *testing.F) {
	f.Add([]byte("1\n22\n333\n"), 7)
	f.Add([]byte("x\n1\n1x\n 2\n3 \n-4\n0\n12345678901\n6"), 1)
	f.Fuzz(func(t *testing.T, b []byte, size int) {
		size = 1 + (size&0xffff)%64
		var got []int
		n, err := scanPIDs(bytes.NewReader(b), make([]byte, size), func(pid int) { got = append(got, pid) })
		if err != nil || n != int64(len(b)) {
			t.Fatalf("%d bytes, %v", n, err)
		}
		if want := scanPIDsSlow(b); !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
}
