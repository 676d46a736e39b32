package vm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// cpioEntry is one entry read back from a newc archive.
type cpioEntry struct {
	mode  uint32
	rdev  uint32 // major<<8 | minor
	data  string
	order int
}

// readNewc parses a cpio newc archive as the kernel would, checking magic,
// alignment and the trailer.
func readNewc(t *testing.T, b []byte) map[string]cpioEntry {
	t.Helper()
	out := map[string]cpioEntry{}
	off := 0
	field := func(i int) uint32 {
		v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
		if err != nil {
			t.Fatalf("offset %d: field %d: %v", off, i, err)
		}
		return uint32(v)
	}
	align := func(n int) int { return (n + 3) &^ 3 }
	for n := 0; ; n++ {
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("offset %d: no newc header", off)
		}
		mode, size, rmaj, rmin, namesize := field(1), int(field(6)), field(9), field(10), int(field(11))
		name := string(b[off+110 : off+110+namesize-1])
		if b[off+110+namesize-1] != 0 {
			t.Fatalf("%s: name not NUL-terminated", name)
		}
		dataOff := align(off + 110 + namesize)
		if name == "TRAILER!!!" {
			return out
		}
		if _, dup := out[name]; dup {
			t.Fatalf("%s appears twice", name)
		}
		out[name] = cpioEntry{mode: mode, rdev: rmaj<<8 | rmin, data: string(b[dataOff : dataOff+size]), order: n}
		off = align(dataOff + size)
	}
}

func TestWriteInitramfs(t *testing.T) {
	host := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(host, []byte("\x7fELF static"), 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err := WriteInitramfs(&buf, map[string]File{
		"/bin/hog":             {HostPath: host},
		"/etc/deep/dir/conf":   {Data: []byte("abc")},
		"/bin/sh":              {Link: "busybox"},
		"/opt/run.sh":          {Data: []byte("#!/bin/sh\n"), Mode: 0o755},
		"/usr/share/empty.txt": {},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := readNewc(t, buf.Bytes())

	tests := []struct {
		name string
		mode uint32
		rdev uint32
		data string
	}{
		{"bin/hog", modeRegular | 0o755, 0, "\x7fELF static"},
		{"etc/deep/dir/conf", modeRegular | 0o644, 0, "abc"},
		{"etc/deep/dir", modeDir | 0o755, 0, ""},
		{"etc/deep", modeDir | 0o755, 0, ""},
		{"bin/sh", modeSymlink | 0o777, 0, "busybox"},
		{"opt/run.sh", modeRegular | 0o755, 0, "#!/bin/sh\n"},
		{"usr/share/empty.txt", modeRegular | 0o644, 0, ""},
		{"usr", modeDir | 0o755, 0, ""},
		{"usr/sbin", modeDir | 0o755, 0, ""},
		{"tmp", modeDir | 0o755, 0, ""},
		{"dev/console", modeChar | 0o600, 5<<8 | 1, ""},
		{"dev/null", modeChar | 0o600, 1<<8 | 3, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := got[tt.name]
			if !ok {
				t.Fatalf("missing")
			}
			if e.mode != tt.mode || e.rdev != tt.rdev || e.data != tt.data {
				t.Errorf("got mode %o rdev %#x data %q, want mode %o rdev %#x data %q",
					e.mode, e.rdev, e.data, tt.mode, tt.rdev, tt.data)
			}
		})
	}
	// The kernel's unpacker creates nothing missing: parents come first.
	for name, e := range got {
		if dir := filepath.Dir(name); dir != "." {
			p, ok := got[dir]
			if !ok || p.order > e.order {
				t.Errorf("%s comes before its directory %s (present: %v)", name, dir, ok)
			}
		}
	}
}

func TestWriteInitramfsErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]File
		want  error
	}{
		{"relative", map[string]File{"bin/x": {}}, ErrBadPath},
		{"unclean", map[string]File{"/bin/../x": {}}, ErrBadPath},
		{"root", map[string]File{"/": {}}, ErrBadPath},
		{"file over dir", map[string]File{"/a": {}, "/a/b": {}}, ErrBadPath},
		{"skeleton dir as file", map[string]File{"/tmp": {}}, ErrBadPath},
		{"missing host file", map[string]File{"/x": {HostPath: "/nonexistent/oomwatch"}}, os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := WriteInitramfs(&bytes.Buffer{}, tt.files)
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseFirstDepends(t *testing.T) {
	tests := []struct {
		record, want string
		err          bool
	}{
		{"Package: linux-image-cloud-amd64\nVersion: 6.1.172-1\nDepends: linux-image-6.1.0-48-cloud-amd64 (= 6.1.172-1)\n", "linux-image-6.1.0-48-cloud-amd64", false},
		{"Depends: a | b, c\n", "a", false},
		{"Pre-Depends: x\nDepends: y\n", "y", false},
		{"Package: x\n", "", true},
		{"Depends:\n", "", true},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			got, err := parseFirstDepends([]byte(tt.record))
			if got != tt.want || (err != nil) != tt.err {
				t.Errorf("got %q, %v; want %q, error %v", got, err, tt.want, tt.err)
			}
		})
	}
}

// TestKernelOverride: OOMWATCH_E2E_KERNEL names a package, cached apart;
// anything that is not a package name (an option, a path) is refused
// before apt sees it.
func TestKernelOverride(t *testing.T) {
	t.Setenv(CacheEnv, "/c")
	t.Setenv(KernelEnv, "")
	if d := CacheDir(); d != "/c" {
		t.Errorf("cache dir %q", d)
	}
	t.Setenv(KernelEnv, "linux-image-6.12.113+deb12-cloud-amd64-unsigned")
	if d := CacheDir(); d != "/c/linux-image-6.12.113+deb12-cloud-amd64-unsigned" {
		t.Errorf("cache dir %q", d)
	}
	for _, bad := range []string{"-o", "../x", "Linux", "a b", "x/y", "l"} {
		t.Setenv(KernelEnv, bad)
		if _, err := EnsureAssets(t.Context(), nil); !errors.Is(err, ErrAssets) || !strings.Contains(err.Error(), "not a Debian package name") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
