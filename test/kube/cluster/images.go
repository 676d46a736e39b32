package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/oomwatch/oomwatch/test/containerd"
)

// Images the cluster imports (no registry is reachable; pods use
// imagePullPolicy Never or find them present).
const (
	AgentImage      = "oomwatch.local/agent:dev"
	AggregatorImage = "oomwatch.local/aggregator:dev"
	// TestImage has busybox (sh, sleep, cat) and /hog (test/e2e/hog).
	TestImage = "oomwatch.local/hog:dev"
)

// distroless-like /etc files: root and nonroot (65532), as the Dockerfile's
// gcr.io/distroless/static images have.
var etcFiles = []containerd.File{
	{Path: "etc/passwd", Data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"), Mode: 0o644},
	{Path: "etc/group", Data: []byte("root:x:0:\nnonroot:x:65532:\n"), Mode: 0o644},
	{Path: "tmp", Dir: true, Mode: 0o1777},
	{Path: "home/nonroot", Dir: true, Mode: 0o700},
}

// images are the cluster's images: the sandbox image, oomwatch's agent and
// aggregator as the Dockerfile's targets lay them out (the static binary in
// /usr/local/bin, the same user), and the test workload image.
func (c *Cluster) images() ([]containerd.Image, error) {
	pause, err := containerd.PauseImage()
	if err != nil {
		return nil, err
	}
	bin := c.opts.OomwatchBin
	agent := containerd.Image{Ref: AgentImage, User: "0:0", Entrypoint: []string{"/usr/local/bin/agent"},
		Files: append([]containerd.File{{Path: "usr/local/bin/agent", Src: filepath.Join(bin, "agent"), Mode: 0o755}}, etcFiles...)}
	aggregator := containerd.Image{Ref: AggregatorImage, User: "65532:65532", Entrypoint: []string{"/usr/local/bin/aggregator"},
		Files: append([]containerd.File{{Path: "usr/local/bin/aggregator", Src: filepath.Join(bin, "aggregator"), Mode: 0o755}}, etcFiles...)}
	files, err := containerd.BusyboxFiles("/bin/busybox", "sh", "sleep", "cat", "echo")
	if err != nil {
		return nil, err
	}
	files = append(files, containerd.File{Path: "hog", Src: filepath.Join(c.OwnBin, "hog"), Mode: 0o755})
	test := containerd.Image{Ref: TestImage, Files: files, Entrypoint: []string{"/hog"}}
	return []containerd.Image{pause, agent, aggregator, test}, nil
}

// importImages writes the images as OCI archives and imports them into the
// node's containerd with `ctr -n k8s.io images import`, then waits until
// CRI sees them.
func (c *Cluster) importImages(ctx context.Context) error {
	imgs, err := c.images()
	if err != nil {
		return err
	}
	dir := filepath.Join(c.Dir, "images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	sock := c.ContainerdSocket()
	for _, img := range imgs {
		p := filepath.Join(dir, strings.NewReplacer("/", "_", ":", "_").Replace(img.Ref)+".tar")
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		err = containerd.WriteImage(f, img)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("image %s: %w", img.Ref, err)
		}
		if _, err := run(ctx, "ctr", "-a", sock, "-n", containerd.Namespace, "images", "import", "--snapshotter", "overlayfs", p); err != nil {
			return err
		}
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	is := runtimeapi.NewImageServiceClient(conn)
	for _, img := range imgs {
		if err := waitFor(ctx, "CRI sees image "+img.Ref, 30*time.Second, func() (bool, error) {
			resp, err := is.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: img.Ref}})
			return err == nil && resp.GetImage() != nil, err
		}); err != nil {
			return err
		}
	}
	return nil
}

// Runtime returns a CRI client on the node's containerd, for reading what
// kubelet really asked the runtime for; close the connection when done.
func (c *Cluster) Runtime() (runtimeapi.RuntimeServiceClient, *grpc.ClientConn, error) {
	conn, err := grpc.NewClient("unix://"+c.ContainerdSocket(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	return runtimeapi.NewRuntimeServiceClient(conn), conn, nil
}
