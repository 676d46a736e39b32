package agent

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/devkmsg"
	"github.com/oomwatch/oomwatch/pkg/kubepods"
	"github.com/oomwatch/oomwatch/pkg/transport"
)

// Options are the agent's flags. Each is also read from OOMWATCH_<NAME>
// (upper case, '-' as '_'); the node name also from NODE_NAME, which a
// DaemonSet sets from the downward API.
type Options struct {
	NodeName string
	Server   string
	StateDir string
	// KmsgDevice is the kernel log device to tail.
	KmsgDevice  string
	Proc        string
	CgroupRoot  string
	CRIEndpoint string
	NoCRI       bool
	// KubeAPIServer, KubeTokenFile and KubeCAFile reach the Kubernetes API
	// for the pod specs' memory requests (in-cluster defaults); NoKubeAPI
	// turns that off.
	KubeAPIServer string
	KubeTokenFile string
	KubeCAFile    string
	NoKubeAPI     bool
	MetricsAddr   string
	LogLevel      string
	// SpoolMaxEvents and SpoolMaxBytes bound the on-disk spool; past them
	// the oldest events are dropped and reported as lost.
	SpoolMaxEvents int
	SpoolMaxBytes  int64
	// MemoryQueueEvents and MemoryQueueBytes bound the events kept in
	// memory while the spool cannot be written (a full disk).
	MemoryQueueEvents int
	MemoryQueueBytes  int64
	// Recent is how old a report may be for its PIDs to be looked up in /proc.
	Recent    time.Duration
	Transport transport.Options
	// SyntheticKills, when > 0, replaces /dev/kmsg with that many synthetic
	// OOM reports at SyntheticRate per second: for load and fault tests.
	SyntheticKills int
	SyntheticRate  float64
}

// AddFlags registers the options on fs.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.NodeName, "node-name", "", "this node's name (default: $NODE_NAME)")
	fs.StringVar(&o.Server, "server", "", "aggregator address host:port")
	fs.StringVar(&o.StateDir, "state-dir", "/var/lib/oomwatch", "directory for the spool and the checkpoint (a hostPath, so they survive restarts)")
	fs.StringVar(&o.KmsgDevice, "kmsg-device", devkmsg.DevKmsg, "the kernel log device (the host's /dev/kmsg, wherever it is mounted)")
	fs.StringVar(&o.Proc, "proc", "/proc", "the host's /proc")
	fs.StringVar(&o.CgroupRoot, "cgroup-root", "/sys/fs/cgroup", "the host's cgroup mount")
	fs.StringVar(&o.CRIEndpoint, "cri-endpoint", "", "container runtime socket (default: containerd's, then CRI-O's usual socket)")
	fs.BoolVar(&o.NoCRI, "no-cri", false, "do not ask the container runtime for names")
	fs.StringVar(&o.KubeAPIServer, "kube-api-server", "", "Kubernetes API server URL for the pods' memory requests (default: in-cluster, from $KUBERNETES_SERVICE_HOST); http:// only for a local proxy")
	fs.StringVar(&o.KubeTokenFile, "kube-token-file", kubepods.ServiceAccountToken, "bearer token file for the Kubernetes API (empty: none)")
	fs.StringVar(&o.KubeCAFile, "kube-ca-file", kubepods.ServiceAccountCA, "CA certificate of the Kubernetes API (empty: the system's roots)")
	fs.BoolVar(&o.NoKubeAPI, "no-kube-api", false, "do not ask the Kubernetes API for memory requests (culprits are then ranked by usage alone)")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", "", "serve Prometheus metrics on this address (off when empty)")
	fs.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.IntVar(&o.SpoolMaxEvents, "spool-max-events", 10000, "events kept on disk while the aggregator is unreachable; past it the oldest are dropped and reported")
	fs.Int64Var(&o.SpoolMaxBytes, "spool-max-bytes", 64<<20, "bytes kept on disk while the aggregator is unreachable")
	fs.IntVar(&o.MemoryQueueEvents, "memory-queue-max-events", DefaultMemoryEvents, "events kept in memory while the state directory refuses writes (full disk); past it the oldest are dropped and reported")
	fs.Int64Var(&o.MemoryQueueBytes, "memory-queue-max-bytes", DefaultMemoryBytes, "bytes kept in memory while the state directory refuses writes")
	fs.DurationVar(&o.Recent, "recent", time.Minute, "reports older than this (kernel time) do not have their PIDs looked up in /proc: they may have been reused")
	fs.IntVar(&o.SyntheticKills, "synthetic-kills", 0, "testing: read this many synthetic OOM reports instead of /dev/kmsg")
	fs.Float64Var(&o.SyntheticRate, "synthetic-rate", 0, "testing: synthetic OOM reports per second (0: as fast as possible)")
	o.Transport.AddFlags(fs)
}

// Errors of Validate.
var (
	ErrNoNode   = errors.New("no node name: set --node-name or NODE_NAME")
	ErrNoServer = errors.New("no aggregator: set --server")
)

// Validate checks the options.
func (o *Options) Validate() error {
	if o.NodeName == "" {
		return ErrNoNode
	}
	if o.Server == "" {
		return ErrNoServer
	}
	if o.StateDir == "" {
		return errors.New("--state-dir must not be empty")
	}
	if o.KmsgDevice == "" {
		return errors.New("--kmsg-device must not be empty")
	}
	if _, err := logrus.ParseLevel(o.LogLevel); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if o.SpoolMaxEvents < 1 || o.SpoolMaxBytes < 1<<20 {
		return errors.New("--spool-max-events must be >= 1 and --spool-max-bytes >= 1 MiB")
	}
	if o.MemoryQueueEvents < 1 || o.MemoryQueueBytes < 64<<10 {
		return errors.New("--memory-queue-max-events must be >= 1 and --memory-queue-max-bytes >= 64 KiB")
	}
	if err := o.Transport.Validate(); err != nil {
		return err
	}
	if _, err := o.KubeConfig(); err != nil && !errors.Is(err, kubepods.ErrNoServer) {
		return err
	}
	return nil
}

// KubeConfig is how the Kubernetes API is reached: the flags, or the
// in-cluster defaults. It returns kubepods.ErrNoServer outside a cluster
// without --kube-api-server, and an error for a malformed server URL.
func (o *Options) KubeConfig() (kubepods.Config, error) {
	if o.KubeAPIServer == "" {
		cfg, err := kubepods.InCluster(o.NodeName)
		if err != nil {
			return cfg, err
		}
		cfg.TokenFile, cfg.CAFile = o.KubeTokenFile, o.KubeCAFile
		return cfg, nil
	}
	cfg := kubepods.Config{Server: o.KubeAPIServer, TokenFile: o.KubeTokenFile, CAFile: o.KubeCAFile, Node: o.NodeName}
	if _, err := kubepods.ParseServer(cfg.Server); err != nil {
		return cfg, fmt.Errorf("--kube-api-server: %w", err)
	}
	return cfg, nil
}
