package containerd

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"
)

// File is one entry of an image's single layer.
type File struct {
	// Path inside the image, relative ("bin/busybox"); parent directories
	// are added as needed.
	Path string
	// Mode is the permission bits (0o755 when 0 for files and directories).
	Mode int64
	// Data is the content of a regular file.
	Data []byte
	// Src, when set, is a host file whose content is used instead of Data.
	Src string
	// Link, when set, makes the entry a symlink to Link.
	Link string
	// Dir makes the entry a directory.
	Dir bool
}

// Image is a one-layer OCI image built without a registry or a builder.
type Image struct {
	// Ref is the full image name containerd and CRI know it by, with a
	// registry host so that CRI does not rewrite it ("oomwatch.test/x:1").
	Ref string
	// Files are the layer's entries.
	Files []File
	// Entrypoint and Cmd are the image config's defaults.
	Entrypoint, Cmd []string
	// Env is the image config's environment ("PATH=/bin" when empty).
	Env []string
	// User is the image config's user ("uid:gid"; root when empty).
	User string
}

// OCI media types used in the archive.
const (
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayerGz  = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// epoch is the fixed time of every entry, so the same inputs give the same
// digests.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// WriteImage writes img to w as an OCI image-layout tar archive (oci-layout,
// index.json, blobs/sha256/...) as `ctr images import` reads it. The index
// names the manifest with the io.containerd.image.name annotation, so ctr
// imports it under img.Ref exactly.
func WriteImage(w io.Writer, img Image) error {
	if img.Ref == "" {
		return errors.New("image has no ref")
	}
	layer, diffID, err := buildLayer(img.Files)
	if err != nil {
		return fmt.Errorf("layer of %s: %w", img.Ref, err)
	}
	env := img.Env
	if len(env) == 0 {
		env = []string{"PATH=/bin"}
	}
	cfg := map[string]any{"Entrypoint": img.Entrypoint, "Cmd": img.Cmd, "Env": env, "WorkingDir": "/"}
	if img.User != "" {
		cfg["User"] = img.User
	}
	platform := map[string]string{"architecture": runtime.GOARCH, "os": "linux"}
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"created":      epoch,
		"config":       cfg,
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{diffID}},
		"history":      []map[string]any{{"created": epoch, "created_by": "oomwatch test/containerd"}},
	})
	if err != nil {
		return err
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaManifest,
		"config":        descriptor(mediaConfig, config, nil, nil),
		"layers":        []any{descriptor(mediaLayerGz, layer, nil, nil)},
	})
	if err != nil {
		return err
	}
	tag := img.Ref[strings.LastIndex(img.Ref, ":")+1:]
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaIndex,
		"manifests": []any{descriptor(mediaManifest, manifest, platform, map[string]string{
			"io.containerd.image.name":          img.Ref,
			"org.opencontainers.image.ref.name": tag,
		})},
	})
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	add := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Mode: 0o755, ModTime: epoch, Typeflag: tar.TypeDir}); err != nil {
			return err
		}
	}
	for _, b := range [][]byte{layer, config, manifest} {
		if err := add("blobs/sha256/"+hexDigest(b), b); err != nil {
			return err
		}
	}
	if err := add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := add("index.json", index); err != nil {
		return err
	}
	return tw.Close()
}

func hexDigest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func descriptor(media string, b []byte, platform, annotations map[string]string) map[string]any {
	d := map[string]any{"mediaType": media, "digest": "sha256:" + hexDigest(b), "size": len(b)}
	if platform != nil {
		d["platform"] = platform
	}
	if annotations != nil {
		d["annotations"] = annotations
	}
	return d
}

// buildLayer returns the gzip-compressed layer tar and the digest of the
// uncompressed tar (the config's diff_id).
func buildLayer(files []File) ([]byte, string, error) {
	entries := map[string]File{}
	for _, f := range files {
		p := path.Clean(strings.TrimPrefix(f.Path, "/"))
		if p == "." || strings.HasPrefix(p, "../") {
			return nil, "", fmt.Errorf("bad layer path %q", f.Path)
		}
		f.Path = p
		entries[p] = f
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if _, ok := entries[d]; !ok {
				entries[d] = File{Path: d, Dir: true}
			}
		}
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names) // parents sort before their children
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, n := range names {
		f := entries[n]
		h := &tar.Header{Name: n, Mode: f.Mode, ModTime: epoch, Format: tar.FormatPAX}
		if h.Mode == 0 {
			h.Mode = 0o755
		}
		var data []byte
		switch {
		case f.Dir:
			h.Typeflag, h.Name = tar.TypeDir, n+"/"
		case f.Link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.Link, 0o777
		default:
			h.Typeflag = tar.TypeReg
			data = f.Data
			if f.Src != "" {
				b, err := os.ReadFile(f.Src)
				if err != nil {
					return nil, "", err
				}
				data = b
			}
			h.Size = int64(len(data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, "", err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, "", err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	diffID := "sha256:" + hexDigest(raw.Bytes())
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		return nil, "", err
	}
	zw.ModTime = epoch
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return gz.Bytes(), diffID, nil
}

// BusyboxFiles returns the layer entries of a minimal root file system:
// the static busybox at src as /bin/busybox, symlinks for applets, the
// mount points runc expects and an /etc/passwd with root.
func BusyboxFiles(src string, applets ...string) ([]File, error) {
	if err := checkStatic(src); err != nil {
		return nil, err
	}
	files := []File{
		{Path: "bin/busybox", Src: src, Mode: 0o755},
		{Path: "etc/passwd", Data: []byte("root:x:0:0:root:/:/bin/sh\n"), Mode: 0o644},
		{Path: "etc/group", Data: []byte("root:x:0:\n"), Mode: 0o644},
		{Path: "tmp", Dir: true, Mode: 0o1777},
	}
	for _, d := range []string{"dev", "proc", "sys", "run"} {
		files = append(files, File{Path: d, Dir: true})
	}
	for _, a := range applets {
		files = append(files, File{Path: "bin/" + a, Link: "busybox"})
	}
	return files, nil
}

// checkStatic refuses a dynamically linked binary: the images have no libc.
func checkStatic(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked; the test images need a static binary (Debian's busybox-static)", p)
		}
	}
	return nil
}
