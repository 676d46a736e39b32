package vm

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// CacheEnv names the environment variable that overrides DefaultCacheDir.
const CacheEnv = "OOMWATCH_E2E_CACHE"

// DefaultCacheDir is where EnsureAssets keeps the extracted kernel and
// busybox when CacheEnv is not set.
const DefaultCacheDir = "/var/cache/oomwatch-e2e"

// Debian package names EnsureAssets installs or downloads.
const (
	// KernelMetaPackage is the metapackage whose dependency names the
	// versioned cloud kernel package that is downloaded.
	KernelMetaPackage = "linux-image-cloud-amd64"
	// BusyboxPackage ships the statically linked /bin/busybox that becomes
	// the guest's userland. It is downloaded and extracted, not installed,
	// so the host's own busybox is left alone.
	BusyboxPackage = "busybox-static"
	// QEMUPackage ships qemu-system-x86_64; it is installed on the host.
	QEMUPackage = "qemu-system-x86"
)

// ErrAssets is wrapped by every error EnsureAssets returns.
var ErrAssets = errors.New("vm assets")

// Assets are the host files a VM is made from.
type Assets struct {
	// QEMU is the path of qemu-system-x86_64.
	QEMU string `json:"-"`
	// QEMUVersion is the installed Debian version of QEMUPackage, or empty
	// when dpkg does not know it.
	QEMUVersion string `json:"-"`
	// Kernel is the path of the guest kernel image (vmlinuz).
	Kernel string `json:"kernel"`
	// KernelPackage is the Debian package the kernel came from, as
	// "name=version".
	KernelPackage string `json:"kernel_package"`
	// Busybox is the path of a statically linked busybox binary.
	Busybox string `json:"busybox"`
	// BusyboxPackage is the Debian package busybox came from, as
	// "name=version".
	BusyboxPackage string `json:"busybox_package"`
}

// KernelEnv names a Debian kernel metapackage to use instead of
// KernelMetaPackage ("linux-image-6.12-cloud-amd64"), or a kernel image
// package itself ("linux-image-6.12.113+deb12-cloud-amd64-unsigned"), to
// run the same tests on another kernel; its assets are cached apart, in a
// directory of its name under the cache dir.
const KernelEnv = "OOMWATCH_E2E_KERNEL"

// CacheDir returns the asset cache directory: $OOMWATCH_E2E_CACHE, or
// DefaultCacheDir, with $OOMWATCH_E2E_KERNEL's directory under it when
// that is set.
func CacheDir() string {
	d := DefaultCacheDir
	if e := os.Getenv(CacheEnv); e != "" {
		d = e
	}
	if k := kernelOverride(); k != "" {
		d = filepath.Join(d, k)
	}
	return d
}

// kernelOverride returns $OOMWATCH_E2E_KERNEL, "" when unset. EnsureAssets
// refuses a value that is not a Debian package name (validPackage) before
// CacheDir or apt sees it.
func kernelOverride() string {
	return os.Getenv(KernelEnv)
}

// validPackage tells whether s is a Debian package name (policy 5.6.1:
// lower-case letters, digits, '+', '-' and '.', starting alphanumeric).
func validPackage(s string) bool {
	if len(s) < 2 || len(s) > 128 || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// manifestName is the file in the cache dir that records finished assets.
// It is written last, by rename, so its presence means the files it names
// are complete.
const manifestName = "assets.json"

// EnsureAssets makes sure everything a VM needs is on this machine and
// returns where it is. It installs qemu-system-x86 with apt-get when
// qemu-system-x86_64 is missing, and on first use downloads the current
// Debian cloud kernel and busybox-static packages and extracts the two files
// it needs into CacheDir. apt-get update runs only when something has to be
// installed or downloaded. logf, which may be nil, receives progress lines.
//
// It is safe to call from several processes at once: callers serialise on a
// lock file in the cache dir, and extracted files appear by atomic rename.
func EnsureAssets(ctx context.Context, logf func(string, ...any)) (Assets, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if k := kernelOverride(); k != "" && !validPackage(k) {
		return Assets{}, fmt.Errorf("%w: %s=%q is not a Debian package name", ErrAssets, KernelEnv, k)
	}
	dir := CacheDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Assets{}, fmt.Errorf("%w: create cache dir: %w", ErrAssets, err)
	}
	unlock, err := lock(ctx, filepath.Join(dir, ".lock"))
	if err != nil {
		return Assets{}, fmt.Errorf("%w: %w", ErrAssets, err)
	}
	defer unlock()

	a := &apt{logf: logf}
	qemu, err := ensureQEMU(ctx, a)
	if err != nil {
		return Assets{}, fmt.Errorf("%w: %w", ErrAssets, err)
	}

	assets, err := readManifest(dir)
	if err != nil {
		logf("vm: no usable asset cache in %s (%v): downloading kernel and busybox", dir, err)
		if assets, err = fetchAssets(ctx, a, dir); err != nil {
			return Assets{}, fmt.Errorf("%w: %w", ErrAssets, err)
		}
	}
	assets.QEMU = qemu
	assets.QEMUVersion = installedVersion(ctx, QEMUPackage)
	return assets, nil
}

// lock takes an exclusive flock on path, polling so that ctx can cancel the
// wait. The returned func releases it.
func lock(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ensureQEMU returns the path of qemu-system-x86_64, installing it first
// when it is not on PATH.
func ensureQEMU(ctx context.Context, a *apt) (string, error) {
	const bin = "qemu-system-x86_64"
	if p, err := exec.LookPath(bin); err == nil {
		return p, nil
	}
	a.logf("vm: %s not found: installing %s", bin, QEMUPackage)
	// Recommends (GUI, OVMF, block drivers) are not needed for -kernel boots
	// with -display none, and would triple the download.
	if err := a.run(ctx, "", "apt-get", "install", "-y", "-q", "--no-install-recommends", QEMUPackage); err != nil {
		return "", err
	}
	p, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("%s installed but %s not found: %w", QEMUPackage, bin, err)
	}
	return p, nil
}

// readManifest loads the cache manifest and checks that its files exist.
func readManifest(dir string) (Assets, error) {
	b, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		return Assets{}, err
	}
	var m Assets
	if err := json.Unmarshal(b, &m); err != nil {
		return Assets{}, fmt.Errorf("parse %s: %w", manifestName, err)
	}
	if m.Kernel == "" || m.Busybox == "" {
		return Assets{}, fmt.Errorf("%s is incomplete", manifestName)
	}
	// Paths are stored relative so that the cache dir can be moved.
	m.Kernel = filepath.Join(dir, m.Kernel)
	m.Busybox = filepath.Join(dir, m.Busybox)
	for _, p := range []string{m.Kernel, m.Busybox} {
		if _, err := os.Stat(p); err != nil {
			return Assets{}, err
		}
	}
	return m, nil
}

// fetchAssets downloads and extracts the kernel and busybox packages into
// dir and writes the manifest.
func fetchAssets(ctx context.Context, a *apt, dir string) (Assets, error) {
	if err := a.update(ctx); err != nil {
		return Assets{}, err
	}
	meta := KernelMetaPackage
	if k := kernelOverride(); k != "" {
		meta = k
	}
	// A metapackage names the kernel as its first dependency; a kernel
	// image package depends on tools (kmod) and is the kernel itself.
	kpkg, err := a.firstDepends(ctx, meta)
	if err != nil {
		return Assets{}, err
	}
	if !strings.HasPrefix(kpkg, "linux-image-") {
		kpkg = meta
	}
	kdir, kname, err := fetchPackage(ctx, a, dir, kpkg, "./boot/")
	if err != nil {
		return Assets{}, err
	}
	kernels, err := filepath.Glob(filepath.Join(dir, kdir, "boot", "vmlinuz-*"))
	if err != nil || len(kernels) != 1 {
		return Assets{}, fmt.Errorf("%s: want one boot/vmlinuz-*, found %d", kname, len(kernels))
	}
	bdir, bname, err := fetchPackage(ctx, a, dir, BusyboxPackage, "./bin/busybox")
	if err != nil {
		return Assets{}, err
	}
	m := Assets{
		Kernel:         mustRel(dir, kernels[0]),
		KernelPackage:  kname,
		Busybox:        filepath.Join(bdir, "bin", "busybox"),
		BusyboxPackage: bname,
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Assets{}, fmt.Errorf("encode manifest: %w", err)
	}
	tmp := filepath.Join(dir, manifestName+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return Assets{}, fmt.Errorf("write manifest: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, manifestName)); err != nil {
		return Assets{}, fmt.Errorf("write manifest: %w", err)
	}
	a.logf("vm: cached %s and %s in %s", kname, bname, dir)
	return readManifest(dir)
}

// mustRel returns target relative to base; both come from the same Join so
// it cannot fail, and target is returned unchanged if it somehow does.
func mustRel(base, target string) string {
	r, err := filepath.Rel(base, target)
	if err != nil {
		return target
	}
	return r
}

// fetchPackage downloads the candidate version of pkg with apt-get download
// and extracts the members whose paths start with one of prefixes into
// dir/<name>_<version>, which appears by atomic rename. It returns that
// directory's name (relative to dir) and "name=version".
func fetchPackage(ctx context.Context, a *apt, dir, pkg string, prefixes ...string) (string, string, error) {
	tmp, err := os.MkdirTemp(dir, ".download-")
	if err != nil {
		return "", "", fmt.Errorf("download %s: %w", pkg, err)
	}
	defer os.RemoveAll(tmp)
	// Downloading as root into a root-owned dir: without this apt warns that
	// its _apt sandbox user cannot write there, then does it anyway.
	if err := a.run(ctx, tmp, "apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", pkg); err != nil {
		return "", "", err
	}
	debs, err := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if err != nil || len(debs) != 1 {
		return "", "", fmt.Errorf("download %s: want one .deb, found %d", pkg, len(debs))
	}
	fields, err := exec.CommandContext(ctx, "dpkg-deb", "--show", "--showformat=${Package}=${Version}", debs[0]).Output()
	if err != nil {
		return "", "", fmt.Errorf("read %s: %w", debs[0], err)
	}
	name := strings.TrimSpace(string(fields))
	dest := strings.NewReplacer("=", "_", ":", "_").Replace(name)
	if _, err := os.Stat(filepath.Join(dir, dest)); err == nil {
		return dest, name, nil // extracted before; only the manifest was missing
	}
	out := filepath.Join(tmp, "root")
	if err := extractDeb(ctx, debs[0], out, prefixes); err != nil {
		return "", "", fmt.Errorf("extract %s: %w", name, err)
	}
	if err := os.Rename(out, filepath.Join(dir, dest)); err != nil {
		return "", "", fmt.Errorf("extract %s: %w", name, err)
	}
	return dest, name, nil
}

// extractDeb writes the regular files of a .deb whose tar paths start with
// one of prefixes under dest. dpkg-deb does the decompression; the tar
// stream is read here so that only the few files needed hit the disk (the
// kernel package's modules are ten times the size of its vmlinuz).
func extractDeb(ctx context.Context, deb, dest string, prefixes []string) error {
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("dpkg-deb: %w", err)
	}
	n, terr := extractTar(stdout, dest, prefixes)
	// Drain so dpkg-deb does not die of SIGPIPE before we read its status.
	_, _ = io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("dpkg-deb: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	if terr != nil {
		return terr
	}
	if n == 0 {
		return fmt.Errorf("no file matches %q", prefixes)
	}
	return nil
}

// extractTar writes the matching regular files of the tar stream r under
// dest and returns how many it wrote.
func extractTar(r io.Reader, dest string, prefixes []string) (int, error) {
	tr := tar.NewReader(r)
	n := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("read tar: %w", err)
		}
		if h.Typeflag != tar.TypeReg || !hasAnyPrefix(h.Name, prefixes) {
			continue
		}
		p := filepath.Join(dest, filepath.Clean("/"+h.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return n, err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, h.FileInfo().Mode().Perm())
		if err != nil {
			return n, err
		}
		if _, err := io.Copy(f, tr); err != nil {
			f.Close()
			return n, fmt.Errorf("write %s: %w", p, err)
		}
		if err := f.Close(); err != nil {
			return n, err
		}
		n++
	}
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// installedVersion returns the installed Debian version of pkg, or "".
func installedVersion(ctx context.Context, pkg string) string {
	out, err := exec.CommandContext(ctx, "dpkg-query", "--show", "--showformat=${Version}", pkg).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// apt runs apt-get and apt-cache non-interactively, refreshing the package
// lists at most once.
type apt struct {
	logf    func(string, ...any)
	updated bool
}

// update runs apt-get update unless it already ran.
func (a *apt) update(ctx context.Context) error {
	if a.updated {
		return nil
	}
	if err := a.run(ctx, "", "apt-get", "update", "-q"); err != nil {
		return err
	}
	a.updated = true
	return nil
}

// run runs an apt command, after apt-get update for installs, and returns
// its output in the error when it fails.
func (a *apt) run(ctx context.Context, dir, name string, args ...string) error {
	if name == "apt-get" && len(args) > 0 && args[0] != "update" {
		if err := a.update(ctx); err != nil {
			return err
		}
	}
	a.logf("vm: %s %s", name, strings.Join(args, " "))
	start := time.Now()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, tail(out, 2000))
	}
	a.logf("vm: %s %s took %s", name, args[0], time.Since(start).Round(time.Millisecond))
	return nil
}

// firstDepends returns the first package named in the Depends field of
// pkg's candidate version.
func (a *apt) firstDepends(ctx context.Context, pkg string) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "show", "--no-all-versions", pkg).Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache show %s: %w", pkg, err)
	}
	dep, err := parseFirstDepends(out)
	if err != nil {
		return "", fmt.Errorf("apt-cache show %s: %w", pkg, err)
	}
	return dep, nil
}

// parseFirstDepends returns the first package name in the Depends field of
// an apt-cache show record, e.g. "linux-image-6.1.0-48-cloud-amd64" from
// "Depends: linux-image-6.1.0-48-cloud-amd64 (= 6.1.172-1)".
func parseFirstDepends(record []byte) (string, error) {
	for _, line := range strings.Split(string(record), "\n") {
		v, ok := strings.CutPrefix(line, "Depends:")
		if !ok {
			continue
		}
		first, _, _ := strings.Cut(v, ",")
		first, _, _ = strings.Cut(first, "|")
		fields := strings.Fields(first)
		if len(fields) == 0 {
			break
		}
		return fields[0], nil
	}
	return "", errors.New("no Depends field")
}

// tail returns the last n bytes of b as a string.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}
