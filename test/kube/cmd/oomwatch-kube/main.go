// Command oomwatch-kube starts and stops the local single-node Kubernetes
// cluster of test/kube/cluster (`make kube-up`, `make kube-down`) and
// serves its Service DNS:
//
//	oomwatch-kube up [-dir DIR] [-bin DIR] [-no-install]
//	oomwatch-kube down [-dir DIR]
//	oomwatch-kube dns -listen ADDR -kubeconfig FILE
//
// up installs oomwatch into the cluster as deploy/README.md says unless
// -no-install is given, and prints how to reach it with kubectl and oomctl.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/oomwatch/oomwatch/test/kube/cluster"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "up", "down":
		var unlock func()
		if unlock, err = cluster.Lock(ctx, 30*time.Minute); err != nil {
			break
		}
		if os.Args[1] == "up" {
			err = up(ctx, os.Args[2:])
		} else {
			err = down(ctx, os.Args[2:])
		}
		unlock()
	case "dns":
		err = dns(ctx, os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "oomwatch-kube:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: oomwatch-kube up [-dir DIR] [-bin DIR] [-no-install] | down [-dir DIR] | dns -listen ADDR -kubeconfig FILE")
	os.Exit(2)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func up(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	dir := fs.String("dir", cluster.DefaultDir, "the cluster's state directory")
	bin := fs.String("bin", "", "directory with the static agent, aggregator and oomctl (`make build`); built when empty")
	noInstall := fs.Bool("no-install", false, "start the cluster only; do not install oomwatch")
	_ = fs.Parse(args)
	if *bin != "" {
		abs, err := filepath.Abs(*bin)
		if err != nil {
			return err
		}
		*bin = abs
	}
	start := time.Now()
	c, err := cluster.Up(ctx, cluster.Options{Dir: *dir, OomwatchBin: *bin, Log: logf})
	if err != nil {
		return err
	}
	logf("cluster up in %v (binaries %v, control plane %v, node %v, images %v)", c.Timings.Total.Round(time.Millisecond),
		c.Timings.Binaries.Round(time.Millisecond), c.Timings.ControlPlane.Round(time.Millisecond),
		c.Timings.Node.Round(time.Millisecond), c.Timings.Images.Round(time.Millisecond))
	if !*noInstall {
		t := time.Now()
		if err := c.InstallOomwatch(ctx, 3*time.Minute); err != nil {
			return err
		}
		logf("oomwatch installed and Ready in %v", time.Since(t).Round(time.Millisecond))
	}
	p := c.PKI() + "/oomctl"
	oomctl := filepath.Join(c.OwnBin, "oomctl")
	if *bin != "" {
		oomctl = filepath.Join(*bin, "oomctl")
	}
	fmt.Printf(`
Cluster up in %v. To use it:
  export KUBECONFIG=%s PATH=%s:$PATH
  kubectl get pods -A
  kubectl -n oomwatch port-forward svc/oomwatch-aggregator 7443 &
  %s events --server=localhost:7443 --tls-ca=%s/ca.crt --tls-cert=%s/tls.crt --tls-key=%s/tls.key
Stop it with: make kube-down
`, time.Since(start).Round(time.Second), c.Kubeconfig(), c.BinDir, oomctl, p, p, p)
	return nil
}

func down(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("down", flag.ExitOnError)
	dir := fs.String("dir", cluster.DefaultDir, "the cluster's state directory")
	_ = fs.Parse(args)
	start := time.Now()
	if err := cluster.Down(ctx, *dir, logf); err != nil {
		return err
	}
	logf("cluster down in %v", time.Since(start).Round(time.Millisecond))
	return nil
}

func dns(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dns", flag.ExitOnError)
	listen := fs.String("listen", "", "UDP address to answer on")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig to read Services with")
	_ = fs.Parse(args)
	if *listen == "" || *kubeconfig == "" {
		return errors.New("dns: -listen and -kubeconfig are required")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", *listen)
	if err != nil {
		return err
	}
	logf("answering Service names on %s", *listen)
	return cluster.NewResolver(cs).Serve(ctx, pc)
}
