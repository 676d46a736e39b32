package cri

import (
	"context"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// IDs in the CRI-O testdata.
const (
	crioSandbox   = "9c1d0e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d"
	crioContainer = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	crioPodUID    = "7e1f0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
	crioPodName   = "cart-6f7c9d8b5-x2x9q"
)

// crioFake answers like CRI-O 1.28 for a Deployment's pod as kubelet makes
// it: kubelet's labels on the sandbox and the container, the container's
// resources in ContainerStatus (when withResources), and CRI-O's verbose
// info (runtimeSpec only, no CRI config).
func crioFake(t *testing.T, withResources bool) (*fakeRuntime, string) {
	f := &fakeRuntime{name: "cri-o"}
	sock := startFake(t, f)
	f.addPod(sandbox(crioSandbox, crioPodUID, "shop", crioPodName,
		map[string]string{
			"app": "cart", "pod-template-hash": "6f7c9d8b5", "team": "shop",
			labelPodName: crioPodName, labelPodNamespace: "shop", labelPodUID: crioPodUID,
		},
		map[string]string{"kubernetes.io/config.source": "api", "kubernetes.io/config.seen": "2026-11-27T06:00:00Z"},
	), string(readTestdata(t, "crio-1.28-sandbox-info.json")))
	st := running(crioContainer, "cart", "registry.example/shop/cart:1.4.2", map[string]string{
		labelContainerName: "cart", labelPodName: crioPodName, labelPodNamespace: "shop", labelPodUID: crioPodUID,
	})
	st.Metadata.Attempt = 2
	st.Annotations = map[string]string{"io.kubernetes.container.restartCount": "2", "io.kubernetes.container.terminationMessagePolicy": "File"}
	if withResources {
		st.Resources = &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{
			MemoryLimitInBytes: 256 << 20, OomScoreAdj: 968, CpuShares: 102,
		}}
	}
	f.addCtr(crioSandbox, st, string(readTestdata(t, "crio-1.28-container-info.json")))
	return f, sock
}

func TestCRIOResolution(t *testing.T) {
	for _, tc := range []struct {
		name          string
		withResources bool
		source        string
	}{
		{"status resources", true, SourceCRIStatus},
		{"runtime spec only", false, SourceRuntimeSpec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, sock := crioFake(t, tc.withResources)
			ctx := context.Background()
			cl, err := Dial(ctx, sock) // a plain path, as --cri-endpoint may give
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			if cl.RuntimeName != "cri-o" {
				t.Errorf("runtime %q", cl.RuntimeName)
			}
			log, _ := testLog()
			exits := make(chan Container, 1)
			c := NewCache(cl.Runtime(), log, CacheOptions{OnExit: func(x Container) { exits <- x }})
			r := NewResolver(c, log)
			if err := c.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			check := func(when string) {
				t.Helper()
				x, ok := r.Container(ctx, crioContainer)
				if !ok {
					t.Fatalf("%s: container not found", when)
				}
				if x.Name != "cart" || x.Attempt != 2 || x.PodName != crioPodName || x.PodNamespace != "shop" || x.PodUID != crioPodUID ||
					x.Image != "registry.example/shop/cart:1.4.2" {
					t.Errorf("%s: names %+v", when, x)
				}
				if x.MemoryLimitBytes != 256<<20 || x.MemoryLimitSource != tc.source || x.OOMScoreAdj != 968 || !x.HasOOMScoreAdj {
					t.Errorf("%s: limit %d from %q, oom_score_adj %d", when, x.MemoryLimitBytes, x.MemoryLimitSource, x.OOMScoreAdj)
				}
				p, ok := r.Pod(ctx, crioPodUID)
				if !ok {
					t.Fatalf("%s: pod not found", when)
				}
				if p.Name != crioPodName || p.Namespace != "shop" || p.OwnerKind != "ReplicaSet?" || p.OwnerName != "cart-6f7c9d8b5" ||
					p.CgroupParent != "kubepods-burstable-pod7e1f0a2b_3c4d_4e5f_8a9b_0c1d2e3f4a5b.slice" ||
					p.Labels["app"] != "cart" || p.Labels["team"] != "" || p.OverheadBytes != 0 || p.MemoryLimitBytes != 0 {
					t.Errorf("%s: pod %+v", when, p)
				}
			}
			check("running")

			// The container is OOM-killed, then kubelet removes it and
			// the pod: the cache still answers.
			f.exit(crioContainer, 137, "OOMKilled", time.Now().UnixNano())
			if err := c.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case x := <-exits:
				if x.Reason != "OOMKilled" || x.ExitCode != 137 || x.PodName != crioPodName {
					t.Errorf("exit: %+v", x)
				}
			default:
				t.Error("no exit reported")
			}
			f.removeCtr(crioContainer)
			f.removePod(crioSandbox)
			if err := c.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			check("removed")
			if x, _ := r.Container(ctx, crioContainer[:12]); x.Removed.IsZero() || x.State != StateExited || x.Reason != "OOMKilled" {
				t.Errorf("removed container by short ID: %+v", x)
			}
		})
	}
}
