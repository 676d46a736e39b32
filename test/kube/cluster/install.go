package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Kubectl runs kubectl at the cluster's version with the admin kubeconfig
// and returns its standard output (the error carries standard error).
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.KubectlPath(), args...)
	cmd.Env = c.Env()
	cmd.Dir = c.Repo
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out), nil
}

// Env is the environment for commands run against the cluster: KUBECONFIG
// set, the cluster's kubectl first on PATH.
func (c *Cluster) Env() []string {
	return append(os.Environ(), "KUBECONFIG="+c.Kubeconfig(), "PATH="+c.BinDir+":"+c.OwnBin+":"+os.Getenv("PATH"))
}

// PKI is where InstallOomwatch has deploy/gen-certs.sh put oomwatch's
// certificates (OUT of its usage); oomctl's are in PKI()/oomctl.
func (c *Cluster) PKI() string { return filepath.Join(c.Dir, "oomwatch-pki") }

// InstallOomwatch installs oomwatch as deploy/README.md says: the TLS
// Secrets with `deploy/gen-certs.sh --apply`, then `kubectl apply -k` of
// test/kube/overlay (the shipped deploy/ with the local image names and
// pull policy Never), and waits until the agent DaemonSet and the
// aggregator Deployment are rolled out and Ready.
func (c *Cluster) InstallOomwatch(ctx context.Context, timeout time.Duration) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.Repo, "deploy", "gen-certs.sh"), "--apply", c.PKI())
	cmd.Env = c.Env()
	cmd.Dir = c.Repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("deploy/gen-certs.sh --apply: %w\n%s", err, out)
	}
	if _, err := c.Kubectl(ctx, "apply", "-k", filepath.Join(c.Repo, "test", "kube", "overlay")); err != nil {
		return err
	}
	secs := fmt.Sprintf("--timeout=%ds", int(timeout.Seconds()))
	for _, w := range []string{"daemonset/oomwatch-agent", "deployment/oomwatch-aggregator"} {
		if _, err := c.Kubectl(ctx, "-n", "oomwatch", "rollout", "status", w, secs); err != nil {
			desc, _ := c.Kubectl(ctx, "-n", "oomwatch", "describe", "pods")
			return fmt.Errorf("%w\n%s", err, desc)
		}
	}
	return nil
}
