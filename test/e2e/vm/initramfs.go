package vm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// File is one file to put in the guest's root filesystem.
type File struct {
	// HostPath, when set, is the host file whose contents are copied.
	HostPath string
	// Data is the file's contents when HostPath is empty.
	Data []byte
	// Link, when set, makes the entry a symlink to Link instead.
	Link string
	// Mode holds the permission bits. Zero means 0755 for HostPath files
	// (they are usually static binaries) and 0644 for Data.
	Mode fs.FileMode
}

// ErrBadPath is returned for a guest path that is not absolute and clean.
var ErrBadPath = errors.New("guest path must be absolute and clean")

// skeleton lists the directories every guest gets; /dev/console and
// /dev/null are added as device nodes because the kernel opens
// /dev/console for PID 1 before devtmpfs can be mounted.
var skeleton = []string{
	"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/dev", "/proc", "/sys",
	"/tmp", "/root", "/etc", "/run", "/var",
}

// BuildInitramfs writes an uncompressed cpio (newc) archive holding the
// skeleton directories, the /dev/console and /dev/null nodes and files
// (keyed by absolute guest path; missing parent directories are added) to
// dir/initramfs.cpio and returns its path. It needs no root: device nodes
// exist only inside the archive.
func BuildInitramfs(dir string, files map[string]File) (string, error) {
	p := filepath.Join(dir, "initramfs.cpio")
	f, err := os.Create(p)
	if err != nil {
		return "", fmt.Errorf("initramfs: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if err := WriteInitramfs(w, files); err != nil {
		f.Close()
		return "", err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return "", fmt.Errorf("initramfs: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("initramfs: %w", err)
	}
	return p, nil
}

// WriteInitramfs writes the archive BuildInitramfs describes to w.
func WriteInitramfs(w io.Writer, files map[string]File) error {
	dirs := map[string]bool{}
	for _, d := range skeleton {
		for ; d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for p := range files {
		if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
			return fmt.Errorf("initramfs: %q: %w", p, ErrBadPath)
		}
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	type entry struct {
		name string
		file *File
	}
	var entries []entry
	for d := range dirs {
		if _, ok := files[d]; ok {
			return fmt.Errorf("initramfs: %q is both a file and a directory: %w", d, ErrBadPath)
		}
		entries = append(entries, entry{name: d})
	}
	for p, f := range files {
		entries = append(entries, entry{name: p, file: &f})
	}
	// A parent's path is a prefix of its children's, so sorting puts every
	// directory before its contents, as the kernel's unpacker needs.
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })

	cw := &cpioWriter{w: w}
	for _, e := range entries {
		name := strings.TrimPrefix(e.name, "/")
		var err error
		switch {
		case e.file == nil:
			err = cw.header(name, modeDir|0o755, 0, 0)
		case e.file.Link != "":
			err = cw.header(name, modeSymlink|0o777, int64(len(e.file.Link)), 0)
			if err == nil {
				err = cw.data(strings.NewReader(e.file.Link), int64(len(e.file.Link)))
			}
		default:
			err = cw.regular(name, e.file)
		}
		if err != nil {
			return fmt.Errorf("initramfs: %s: %w", e.name, err)
		}
	}
	for _, n := range []struct {
		name         string
		major, minor uint32
	}{{"dev/console", 5, 1}, {"dev/null", 1, 3}} {
		if err := cw.header(n.name, modeChar|0o600, 0, n.major<<8|n.minor); err != nil {
			return fmt.Errorf("initramfs: %w", err)
		}
	}
	if err := cw.header("TRAILER!!!", 0, 0, 0); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	return nil
}

// File type bits of a cpio mode field (the same as st_mode's).
const (
	modeDir     = 0o040000
	modeRegular = 0o100000
	modeSymlink = 0o120000
	modeChar    = 0o020000
)

// cpioWriter writes cpio "newc" (SVR4, magic 070701) entries: a 110-byte
// ASCII header of thirteen 8-digit hex fields, the NUL-terminated name, and
// the data, each padded to 4 bytes. See the kernel's
// Documentation/driver-api/early-userspace/buffer-format.rst.
type cpioWriter struct {
	w   io.Writer
	ino uint32
	off int64
}

// header writes one entry header and name. rdev packs major<<8|minor.
func (c *cpioWriter) header(name string, mode uint32, size int64, rdev uint32) error {
	if size > 0xffffffff {
		return fmt.Errorf("%s is too large for cpio", name)
	}
	c.ino++
	nlink := 1
	if mode&0o170000 == modeDir {
		nlink = 2
	}
	h := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev>>8, rdev&0xff, len(name)+1, 0)
	if err := c.write([]byte(h + name + "\x00")); err != nil {
		return err
	}
	return c.pad()
}

// regular writes a regular file entry with f's contents.
func (c *cpioWriter) regular(name string, f *File) error {
	if f.HostPath == "" {
		mode := f.Mode.Perm()
		if mode == 0 {
			mode = 0o644
		}
		if err := c.header(name, modeRegular|uint32(mode), int64(len(f.Data)), 0); err != nil {
			return err
		}
		return c.data(strings.NewReader(string(f.Data)), int64(len(f.Data)))
	}
	src, err := os.Open(f.HostPath)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", f.HostPath)
	}
	mode := f.Mode.Perm()
	if mode == 0 {
		mode = 0o755
	}
	if err := c.header(name, modeRegular|uint32(mode), st.Size(), 0); err != nil {
		return err
	}
	return c.data(src, st.Size())
}

// data copies exactly size bytes from r and pads.
func (c *cpioWriter) data(r io.Reader, size int64) error {
	n, err := io.Copy(c.w, io.LimitReader(r, size))
	c.off += n
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("short copy: %d of %d bytes (file changed?)", n, size)
	}
	return c.pad()
}

func (c *cpioWriter) write(b []byte) error {
	n, err := c.w.Write(b)
	c.off += int64(n)
	return err
}

// pad writes NULs up to the next multiple of 4.
func (c *cpioWriter) pad() error {
	if r := c.off % 4; r != 0 {
		return c.write(make([]byte, 4-r))
	}
	return nil
}
