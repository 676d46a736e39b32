// Package deploy tests what ships oomwatch to a cluster: the manifests
// under deploy/ (strictly decoded into the Kubernetes API types and
// cross-checked against each other and against the binaries' own flags)
// and the Dockerfile (parsed, and its build stage run here, as no image can
// be built in CI).
package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	k8sjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"
)

// repoRoot returns the module root, two levels above this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	return root
}

// strictDecoder decodes YAML into the typed objects of client-go's scheme
// the way the API server's strict field validation does: an unknown or
// duplicate field is an error, and so is a kind the scheme does not know.
var strictDecoder = k8sjson.NewSerializerWithOptions(k8sjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
	k8sjson.SerializerOptions{Yaml: true, Strict: true})

// object is one decoded manifest document.
type object struct {
	File string // relative to deploy/
	Doc  int    // index of the document in its file
	Obj  runtime.Object
}

// Kind, Namespace and Name identify the object.
func (o object) Kind() string { return o.Obj.GetObjectKind().GroupVersionKind().Kind }

func (o object) meta() interface {
	GetName() string
	GetNamespace() string
} {
	return o.Obj.(interface {
		GetName() string
		GetNamespace() string
	})
}

func (o object) String() string {
	return fmt.Sprintf("%s/%s (%s#%d)", o.Kind(), o.meta().GetName(), o.File, o.Doc)
}

// splitDocuments splits a multi-document YAML stream on "---" lines.
func splitDocuments(b []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if t := strings.TrimRight(line, " \t"); t == "---" || strings.HasPrefix(t, "--- ") || strings.HasPrefix(t, "---#") {
			docs = append(docs, bytes.Clone(cur.Bytes()))
			cur.Reset()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	return append(docs, cur.Bytes())
}

// isBlank reports whether a YAML document has nothing but comments.
func isBlank(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

// decodeStream strictly decodes every document of a YAML stream.
func decodeStream(name string, b []byte) ([]object, error) {
	var objs []object
	for i, doc := range splitDocuments(b) {
		if isBlank(doc) {
			continue
		}
		obj, _, err := strictDecoder.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s, document %d: %w", name, i, err)
		}
		objs = append(objs, object{File: name, Doc: i, Obj: obj})
	}
	return objs, nil
}

// manifestFiles lists the YAML files under deploy/ (relative paths), the
// kustomization itself excepted.
func manifestFiles(t testing.TB, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		ext := filepath.Ext(p)
		if d.IsDir() || (ext != ".yaml" && ext != ".yml") {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if filepath.Base(rel) != "kustomization.yaml" {
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	return files
}

// loadManifests decodes every manifest under deploy/.
func loadManifests(t testing.TB, dir string) []object {
	t.Helper()
	var all []object
	for _, f := range manifestFiles(t, dir) {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeStream(f, b)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, objs...)
	}
	if len(all) == 0 {
		t.Fatal("no manifests under deploy/")
	}
	return all
}

func TestStrictDecoding(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		want    []string // kinds
		wantErr string
	}{
		{name: "two documents and a comment-only one", doc: "# c\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n", want: []string{"ServiceAccount", "Namespace"}},
		{name: "unknown field", doc: "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\nautomountToken: false\n", wantErr: "unknown field"},
		{name: "misspelled nested field", doc: "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: a}\nspec:\n  template:\n    spec:\n      containers: [{name: c, image: i, readonlyRootFilesystem: true}]\n", wantErr: "unknown field"},
		{name: "case matters", doc: "apiVersion: v1\nkind: ServiceAccount\nMetadata: {name: a}\n", wantErr: "unknown field"},
		{name: "duplicate field", doc: "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\nmetadata: {name: b}\n", wantErr: "already set"},
		{name: "unknown kind", doc: "apiVersion: v1\nkind: Gadget\nmetadata: {name: a}\n", wantErr: "no kind"},
		{name: "unknown group", doc: "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: a}\n", wantErr: "no kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := decodeStream("t.yaml", []byte(tt.doc))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, o := range objs {
				kinds = append(kinds, o.Kind())
			}
			if !slices.Equal(kinds, tt.want) {
				t.Fatalf("kinds %v, want %v", kinds, tt.want)
			}
		})
	}
}
