package vocab

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden file")

const (
	uid = "4d5e6f70-8192-4d4e-9f50-6b7c8d9e0f1a"
	cid = "c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2"
)

// TestGolden prints every form of every kind of workload; the golden file
// is the vocabulary, reviewed in its diff.
func TestGolden(t *testing.T) {
	cases := []struct {
		name string
		n    Names
	}{
		{"named pod and container", Names{Kind: "container", PodUID: uid, ContainerID: cid, QoS: "burstable", Namespace: "batch", PodName: "etl-2", ContainerName: "etl"}},
		{"named pod, container not resolved", Names{Kind: "container", PodUID: uid, ContainerID: cid, QoS: "burstable", Namespace: "batch", PodName: "etl-2"}},
		{"pod name without namespace", Names{Kind: "pod", PodUID: uid, PodName: "etl-2"}},
		{"pod and container by ID only", Names{Kind: "container", PodUID: uid, ContainerID: cid, QoS: "besteffort", Runtime: "containerd"}},
		{"pod cgroup by UID", Names{Kind: "pod", PodUID: uid, QoS: "guaranteed"}},
		{"a pod's sandbox", Names{Kind: "container", PodUID: uid, ContainerID: cid, Namespace: "batch", PodName: "etl-2", ContainerName: "POD"}},
		{"container outside Kubernetes", Names{Kind: "container", ContainerID: cid, Runtime: "docker"}},
		{"system service", Names{Kind: "system-service", Unit: "fluent-bit.service", Cgroup: "/system.slice/fluent-bit.service"}},
		{"user session", Names{Kind: "user-session", Unit: "session-27.scope", Cgroup: "/user.slice/user-0.slice/session-27.scope"}},
		{"root cgroup", Names{Kind: "root", Cgroup: "/"}},
		{"other cgroup", Names{Kind: "other", Cgroup: "/machine.slice/vm1.scope"}},
		{"nothing known", Names{}},
	}
	var b strings.Builder
	for _, c := range cases {
		fmt.Fprintf(&b, "%s\n  Workload:  %q\n  Label:     %q\n  Pod:       %q\n  PodRef:    %q\n  Container: %q\n  Host:      %q\n  Cell:      %q\n  Cell wide: %q\n",
			c.name, Workload(c.n), Label(c.n), Pod(c.n), PodRef(c.n), Container(c.n), Host(c.n), Cell(c.n, false), Cell(c.n, true))
	}
	path := filepath.Join("testdata", "vocab.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("the vocabulary changed (go test ./pkg/vocab -update, then review the diff):\n%s", b.String())
	}
}

// TestShortID: hex IDs are cut, names (an LXC container's) are not.
func TestShortID(t *testing.T) {
	for id, want := range map[string]string{cid: "c2c2c2c2c2c2", "abc": "abc", "107": "107",
		"paperless-ngx-production": "paperless-ngx-production", "0123456789abcdefX": "0123456789abcdefX"} {
		if got := ShortID(id); got != want {
			t.Errorf("ShortID(%q) = %q, want %q", id, got, want)
		}
	}
}
