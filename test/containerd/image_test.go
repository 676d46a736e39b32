package containerd

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// readArchive returns the regular files of a tar archive by name.
func readArchive(t *testing.T, r io.Reader) (map[string][]byte, map[string]*tar.Header) {
	t.Helper()
	files, hdrs := map[string][]byte{}, map[string]*tar.Header{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, hdrs
		}
		if err != nil {
			t.Fatal(err)
		}
		hdrs[h.Name] = h
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = b
		}
	}
}

func blob(t *testing.T, files map[string][]byte, digest string) []byte {
	t.Helper()
	hexd, ok := strings.CutPrefix(digest, "sha256:")
	if !ok {
		t.Fatalf("digest %q", digest)
	}
	b, ok := files["blobs/sha256/"+hexd]
	if !ok {
		t.Fatalf("blob %s missing", digest)
	}
	if s := sha256.Sum256(b); hex.EncodeToString(s[:]) != hexd {
		t.Fatalf("blob %s has the wrong content", digest)
	}
	return b
}

func TestWriteImageLayout(t *testing.T) {
	img := Image{
		Ref: "oomwatch.test/unit:7",
		Files: []File{
			{Path: "/bin/tool", Data: []byte("#!/bin/sh\n"), Mode: 0o755},
			{Path: "bin/sh", Link: "tool"},
			{Path: "tmp", Dir: true, Mode: 0o1777},
		},
		Entrypoint: []string{"/bin/tool"},
	}
	var a, b bytes.Buffer
	if err := WriteImage(&a, img); err != nil {
		t.Fatal(err)
	}
	if err := WriteImage(&b, img); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("the same image written twice differs: digests would not be stable")
	}
	files, _ := readArchive(t, &a)
	if got := string(files["oci-layout"]); got != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %s", got)
	}
	var index struct {
		Manifests []struct {
			Digest      string
			Platform    map[string]string
			Annotations map[string]string
		}
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 1 {
		t.Fatalf("index has %d manifests", len(index.Manifests))
	}
	m0 := index.Manifests[0]
	if m0.Annotations["io.containerd.image.name"] != img.Ref || m0.Annotations["org.opencontainers.image.ref.name"] != "7" || m0.Platform["os"] != "linux" {
		t.Errorf("index entry: %+v", m0)
	}
	var manifest struct {
		Config struct{ Digest string }
		Layers []struct{ Digest, MediaType string }
	}
	if err := json.Unmarshal(blob(t, files, m0.Digest), &manifest); err != nil {
		t.Fatal(err)
	}
	var config struct {
		Config struct{ Entrypoint []string }
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		}
	}
	if err := json.Unmarshal(blob(t, files, manifest.Config.Digest), &config); err != nil {
		t.Fatal(err)
	}
	if len(manifest.Layers) != 1 || len(config.RootFS.DiffIDs) != 1 || config.Config.Entrypoint[0] != "/bin/tool" {
		t.Fatalf("manifest %+v config %+v", manifest, config)
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob(t, files, manifest.Layers[0].Digest)))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if s := sha256.Sum256(raw); "sha256:"+hex.EncodeToString(s[:]) != config.RootFS.DiffIDs[0] {
		t.Error("diff_id is not the digest of the uncompressed layer")
	}
	layer, hdrs := readArchive(t, bytes.NewReader(raw))
	if string(layer["bin/tool"]) != "#!/bin/sh\n" || hdrs["bin/tool"].Mode != 0o755 {
		t.Errorf("bin/tool: %q %o", layer["bin/tool"], hdrs["bin/tool"].Mode)
	}
	if h := hdrs["bin/sh"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "tool" {
		t.Errorf("bin/sh: %+v", h)
	}
	if h := hdrs["bin/"]; h == nil || h.Typeflag != tar.TypeDir {
		t.Error("parent directory bin/ not added")
	}
	if h := hdrs["tmp/"]; h == nil || h.Mode != 0o1777 {
		t.Errorf("tmp/: %+v", h)
	}
}

func TestWriteImageRejects(t *testing.T) {
	for _, img := range []Image{
		{Files: []File{{Path: "x"}}},
		{Ref: "oomwatch.test/x:1", Files: []File{{Path: "../escape"}}},
		{Ref: "oomwatch.test/x:1", Files: []File{{Path: "/"}}},
	} {
		if err := WriteImage(io.Discard, img); err == nil {
			t.Errorf("WriteImage(%+v) accepted", img)
		}
	}
}

func TestBusyboxFilesNeedsStatic(t *testing.T) {
	// A dynamically linked binary: a C program built here when gcc is
	// present, else Debian's /bin/sh (dash, dynamically linked).
	dyn := "/bin/sh"
	if gcc, err := exec.LookPath("gcc"); err == nil {
		src := filepath.Join(t.TempDir(), "m.c")
		if err := os.WriteFile(src, []byte("int main(void){return 0;}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		dyn = filepath.Join(t.TempDir(), "m")
		if out, err := exec.Command(gcc, "-o", dyn, src).CombinedOutput(); err != nil {
			t.Fatalf("gcc: %v\n%s", err, out)
		}
	}
	if _, err := BusyboxFiles(dyn, "sh"); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Fatalf("BusyboxFiles(%s) error = %v, want a refusal", dyn, err)
	}
	if _, err := BusyboxFiles(filepath.Join(t.TempDir(), "none"), "sh"); err == nil {
		t.Fatal("BusyboxFiles accepted a missing binary")
	}
}
