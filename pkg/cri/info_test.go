package cri

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseContainerInfo(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want containerInfo
	}{
		{
			name: "containerd 1.6.20 exited (recorded)",
			in:   readTestdata(t, "containerd-1.6.20-container-info-exited.json"),
			want: containerInfo{
				SandboxID:       "4d26515dc92529c8a2f4018089124b799de02b2823ad6f21a390d218ab8967a4",
				SpecMemoryLimit: 32 << 20, HasSpecMemoryLimit: true,
				ConfigMemoryLimit: 32 << 20, HasConfigMemoryLimit: true,
				SpecOOMScoreAdj: 937, HasSpecOOMScoreAdj: true,
				ConfigOOMScoreAdj: 937, HasConfigOOMScoreAdj: true,
				CgroupsPath: "/kubepods/burstable/pod5b0c7e0a-5f7e-4b8e-9a51-0c1d2e3f4a5b/91042e6476cc3be41df074f547b20891eb86a67e513d03abbb460102adf57196",
			},
		},
		{
			name: "cri-o 1.28 (spec only)",
			in:   readTestdata(t, "crio-1.28-container-info.json"),
			want: containerInfo{
				SandboxID:       "9c1d0e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d",
				SpecMemoryLimit: 256 << 20, HasSpecMemoryLimit: true,
				SpecOOMScoreAdj: 968, HasSpecOOMScoreAdj: true,
				CgroupsPath: "kubepods-burstable-pod7e1f0a2b_3c4d_4e5f_8a9b_0c1d2e3f4a5b.slice:crio:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
			},
		},
		{
			name: "protojson spelling, int64 as strings",
			in:   readTestdata(t, "protojson-container-info.json"),
			want: containerInfo{
				SandboxID:         "1111222233334444555566667777888899990000aaaabbbbccccddddeeeeffff",
				ConfigMemoryLimit: 512 << 20, HasConfigMemoryLimit: true,
				ConfigOOMScoreAdj: -997, HasConfigOOMScoreAdj: true,
			},
		},
		{
			name: "unlimited spec limit",
			in:   []byte(`{"runtimeSpec":{"linux":{"resources":{"memory":{"limit":-1}}}}}`),
			want: containerInfo{HasSpecMemoryLimit: true},
		},
		{
			name: "wrong types are ignored",
			in:   []byte(`{"sandboxID":7,"runtimeSpec":{"linux":"x","process":[]},"config":{"linux":{"resources":{"memory_limit_in_bytes":"lots"}}}}`),
			want: containerInfo{},
		},
		{name: "empty object", in: []byte(`{}`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseContainerInfo(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseSandboxInfo(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want sandboxInfo
	}{
		{
			name: "containerd 1.6.20 (recorded)",
			in:   readTestdata(t, "containerd-1.6.20-sandbox-info.json"),
			want: sandboxInfo{OverheadBytes: 1 << 20, MemoryLimitBytes: 48 << 20, CgroupParent: "/kubepods/burstable/pod5b0c7e0a-5f7e-4b8e-9a51-0c1d2e3f4a5b"},
		},
		{
			name: "cri-o 1.28 with infra container",
			in:   readTestdata(t, "crio-1.28-sandbox-info.json"),
			want: sandboxInfo{CgroupParent: "kubepods-burstable-pod7e1f0a2b_3c4d_4e5f_8a9b_0c1d2e3f4a5b.slice"},
		},
		{
			name: "cri-o 1.28 without infra container",
			in:   readTestdata(t, "crio-1.28-sandbox-info-no-infra.json"),
			want: sandboxInfo{},
		},
		{
			name: "protojson spelling",
			in:   readTestdata(t, "protojson-sandbox-info.json"),
			want: sandboxInfo{RuntimeHandler: "kata", OverheadBytes: 160 << 20, MemoryLimitBytes: 1 << 30, CgroupParent: "/kubepods/pod-u1"},
		},
		{
			name: "limit from containerd's spec annotation only",
			in:   []byte(`{"runtimeSpec":{"annotations":{"io.kubernetes.cri.sandbox-memory":"50331648"},"linux":{"cgroupsPath":"/kubepods/besteffort/podx/abc"}}}`),
			want: sandboxInfo{MemoryLimitBytes: 48 << 20, CgroupParent: "/kubepods/besteffort/podx"},
		},
		{name: "empty object", in: []byte(`{}`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSandboxInfo(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseInfoErrors(t *testing.T) {
	for _, in := range []string{"", "null", "[]", `"x"`, "{", strings.Repeat(" ", maxInfoSize+1)} {
		if _, err := parseContainerInfo([]byte(in)); !errors.Is(err, ErrBadInfo) {
			t.Errorf("parseContainerInfo(%.20q) error = %v, want ErrBadInfo", in, err)
		}
		if _, err := parseSandboxInfo([]byte(in)); !errors.Is(err, ErrBadInfo) {
			t.Errorf("parseSandboxInfo(%.20q) error = %v, want ErrBadInfo", in, err)
		}
	}
}

func infoSeeds(f *testing.F) {
	ents, err := os.ReadDir("testdata")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".json") {
			f.Add(readTestdata(f, e.Name()))
		}
	}
	f.Add([]byte(`{"config":{"linux":{"resources":{"memory_limit_in_bytes":1e30}}}}`))
}

func FuzzParseContainerInfo(f *testing.F) {
	infoSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		ci, err := parseContainerInfo(b)
		if err != nil {
			if !errors.Is(err, ErrBadInfo) {
				t.Fatalf("error %v does not wrap ErrBadInfo", err)
			}
			return
		}
		if ci.SpecMemoryLimit < 0 || ci.ConfigMemoryLimit < 0 {
			t.Fatalf("negative limit: %+v", ci)
		}
	})
}

func FuzzParseSandboxInfo(f *testing.F) {
	infoSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		si, err := parseSandboxInfo(b)
		if err != nil {
			if !errors.Is(err, ErrBadInfo) {
				t.Fatalf("error %v does not wrap ErrBadInfo", err)
			}
			return
		}
		if si.OverheadBytes < 0 || si.MemoryLimitBytes < 0 {
			t.Fatalf("negative figure: %+v", si)
		}
	})
}

func TestInferOwner(t *testing.T) {
	tests := []struct {
		name        string
		pod         string
		labels      map[string]string
		annotations map[string]string
		kind, owner string
	}{
		{"deployment", "cart-7d9f8c6b5-x2x9q", map[string]string{"pod-template-hash": "7d9f8c6b5", "app": "cart"}, nil, "ReplicaSet?", "cart-7d9f8c6b5"},
		{"replicaset name not derivable", "odd-name", map[string]string{"pod-template-hash": "7d9f8c6b5"}, nil, "ReplicaSet?", ""},
		{"daemonset", "node-exporter-4kq7z", map[string]string{"controller-revision-hash": "5f7b8c9d4", "pod-template-generation": "3"}, nil, "DaemonSet?", "node-exporter"},
		{"statefulset", "db-2", map[string]string{"controller-revision-hash": "db-6c5d7f8b9", "statefulset.kubernetes.io/pod-name": "db-2"}, nil, "StatefulSet?", "db"},
		{"job new label", "report-28391-abcde", map[string]string{"batch.kubernetes.io/job-name": "report-28391", "job-name": "report-28391"}, nil, "Job?", "report-28391"},
		{"job old label", "report-abcde", map[string]string{"job-name": "report"}, nil, "Job?", "report"},
		{"static pod", "etcd-node1", nil, map[string]string{"kubernetes.io/config.source": "file"}, "Node?", ""},
		{"bare pod", "debug", map[string]string{"app": "debug"}, map[string]string{"kubernetes.io/config.source": "api"}, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kind, owner := inferOwner(tc.pod, tc.labels, tc.annotations)
			if kind != tc.kind || owner != tc.owner {
				t.Fatalf("inferOwner = %q %q, want %q %q", kind, owner, tc.kind, tc.owner)
			}
		})
	}
}

func TestKeepLabels(t *testing.T) {
	got := keepLabels(map[string]string{
		"app": "cart", "app.kubernetes.io/name": "cart", "pod-template-hash": "7d9",
		"team": "shop", "io.kubernetes.pod.uid": "x", "security.istio.io/tlsMode": "istio",
	})
	want := map[string]string{"app": "cart", "app.kubernetes.io/name": "cart", "pod-template-hash": "7d9"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if keepLabels(map[string]string{"team": "x"}) != nil {
		t.Error("no kept label should give a nil map")
	}
}
