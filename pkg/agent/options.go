package agent

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/oomwatch/oomwatch/pkg/quantity"

	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/devkmsg"
	"github.com/oomwatch/oomwatch/pkg/kubepods"
	"github.com/oomwatch/oomwatch/pkg/transport"
	"github.com/oomwatch/oomwatch/pkg/warn"
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
	// SampleInterval is how often the pod and container cgroups are
	// sampled for warnings; 0 turns sampling and warnings off.
	SampleInterval time.Duration
	// EvictionHardMemory is kubelet's --eviction-hard memory.available
	// threshold: a quantity (100Mi) or a percentage of MemTotal (5%).
	EvictionHardMemory string
	// WarnNearLimit, WarnPressure and WarnForecastHorizon are the warning
	// thresholds a user sets (WarnConfig derives their resolve bounds).
	WarnNearLimit       float64
	WarnPressure        float64
	WarnForecastHorizon time.Duration
}

// AddFlags registers the options on fs.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.NodeName, "node-name", "", "this node's name (default: $NODE_NAME)")
	fs.StringVar(&o.Server, "server", "", "aggregator address host:port, or several replicas' addresses separated by commas (one connection at a time, to a random one, moving to another when it goes away)")
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
	def := warn.DefaultConfig()
	fs.DurationVar(&o.SampleInterval, "sample-interval", DefaultSampleInterval, "how often pod and container memory is sampled for warnings before OOM kills (0: no sampling, no warnings)")
	fs.StringVar(&o.EvictionHardMemory, "eviction-hard-memory", "100Mi", "kubelet's hard eviction threshold of memory.available, a quantity (100Mi) or a percentage of the node's memory (5%); node-low warns near it (0: none, warn near exhaustion)")
	fs.Float64Var(&o.WarnNearLimit, "warn-near-limit", def.NearLimitRatio, "near-limit warns when a working set stays at or above this share of its limit (0-1); it resolves 5 points below")
	fs.Float64Var(&o.WarnPressure, "warn-pressure", def.PressureOpen, "pressure warns when PSI memory full avg10 is at or above this percentage; it resolves at half of it")
	fs.DurationVar(&o.WarnForecastHorizon, "warn-forecast-horizon", def.ForecastHorizon, "forecast warns when a growing working set would reach its limit within this time; it resolves beyond 1.5 times it")
	o.Transport.AddFlags(fs)
}

// Eviction parses --eviction-hard-memory.
func (o *Options) Eviction() (EvictionThreshold, error) {
	t, err := ParseEviction(o.EvictionHardMemory)
	if err != nil {
		return t, fmt.Errorf("--eviction-hard-memory: %w", err)
	}
	return t, nil
}

// ParseEviction parses a memory.available eviction threshold as kubelet
// takes it: a quantity ("100Mi", "1G", "104857600") or a percentage of
// the node's memory ("5%"); "" and "0" are none.
func ParseEviction(s string) (EvictionThreshold, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return EvictionThreshold{}, nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || !(v >= 0 && v < 100) {
			return EvictionThreshold{}, fmt.Errorf("%q is not a percentage from 0 to 100", s)
		}
		return EvictionThreshold{Percent: v}, nil
	}
	v, err := quantity.Parse(s)
	if errors.Is(err, quantity.ErrSyntax) {
		return EvictionThreshold{}, fmt.Errorf("%q is neither a quantity (100Mi, 1Gi) nor a percentage (5%%)", s)
	}
	if err != nil || v < 0 {
		return EvictionThreshold{}, fmt.Errorf("%q is not a size in bytes from 0 to 8 EiB", s)
	}
	return EvictionThreshold{Bytes: v}, nil
}

// WarnConfig is the warn engine's configuration from the flags: the
// defaults, with the thresholds set and their resolve bounds kept at the
// defaults' distance (near-limit 5 points below, pressure at half,
// forecast beyond 1.5 times the horizon).
func (o *Options) WarnConfig() (warn.Config, error) {
	def := warn.DefaultConfig()
	c := def
	switch {
	case math.IsNaN(o.WarnNearLimit) || o.WarnNearLimit <= 0 || o.WarnNearLimit > 1:
		return c, fmt.Errorf("--warn-near-limit %v: must be a share of the limit above 0 and at most 1", o.WarnNearLimit)
	case math.IsNaN(o.WarnPressure) || o.WarnPressure <= 0 || o.WarnPressure > 100:
		return c, fmt.Errorf("--warn-pressure %v: must be a percentage above 0 and at most 100", o.WarnPressure)
	case o.WarnForecastHorizon <= 0:
		return c, fmt.Errorf("--warn-forecast-horizon %v: must be positive", o.WarnForecastHorizon)
	}
	c.NearLimitRatio = o.WarnNearLimit
	c.NearLimitResolveRatio = max(o.WarnNearLimit-(def.NearLimitRatio-def.NearLimitResolveRatio), 0)
	c.NearLimitApproachRatio = min(def.NearLimitApproachRatio, o.WarnNearLimit)
	c.PressureOpen = o.WarnPressure
	c.PressureResolve = o.WarnPressure * def.PressureResolve / def.PressureOpen
	c.ForecastHorizon = o.WarnForecastHorizon
	c.ForecastResolveHorizon = time.Duration(float64(o.WarnForecastHorizon) * (def.ForecastResolveHorizon.Seconds() / def.ForecastHorizon.Seconds()))
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("warning thresholds: %w", err)
	}
	return c, nil
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
	if strings.Contains(o.Server, ",") {
		if _, err := transport.ParseServers(o.Server); err != nil {
			return err
		}
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
	if o.SampleInterval < 0 || (o.SampleInterval > 0 && o.SampleInterval < time.Second) {
		return fmt.Errorf("--sample-interval %v: must be 0 (off) or at least 1s", o.SampleInterval)
	}
	if _, err := o.Eviction(); err != nil {
		return err
	}
	if _, err := o.WarnConfig(); err != nil {
		return err
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
