package deploy

import (
	"flag"
	"io"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/oomwatch/oomwatch/pkg/agent"
	"github.com/oomwatch/oomwatch/pkg/aggregator"
	"github.com/oomwatch/oomwatch/pkg/envflag"
)

// binary is an oomwatch image: the flags its binary defines, built by the
// binary's own Options.AddFlags, and its Validate.
type binary struct {
	// flags returns a fresh flag set and the Validate of the options
	// behind it, given the container's environment.
	flags func() (*flag.FlagSet, func(getenv func(string) string) error)
	// env are the variables it reads besides OOMWATCH_*.
	env []string
	// pending are flags the manifests already pass that the binary does
	// not define yet (announced, being written), with what they are for.
	// While undefined they are reported and skipped; once defined, the
	// test fails until the entry is removed, so that they are checked like
	// the others.
	pending map[string]string
}

// binaries are keyed by the image name used in the manifests.
var binaries = map[string]binary{
	"oomwatch/agent": {
		flags: func() (*flag.FlagSet, func(func(string) string) error) {
			var o agent.Options
			fs := flag.NewFlagSet("agent", flag.ContinueOnError)
			o.AddFlags(fs)
			return fs, func(getenv func(string) string) error {
				// As agent/main.go does.
				if o.NodeName == "" {
					o.NodeName = getenv("NODE_NAME")
				}
				return o.Validate()
			}
		},
		env: []string{"NODE_NAME"},
	},
	"oomwatch/aggregator": {
		flags: func() (*flag.FlagSet, func(func(string) string) error) {
			var o aggregator.Options
			fs := flag.NewFlagSet("aggregator", flag.ContinueOnError)
			o.AddFlags(fs)
			return fs, func(func(string) string) error { return o.Validate() }
		},
		pending: map[string]string{},
	},
}

// goRuntimeEnv are variables the Go runtime reads.
var goRuntimeEnv = []string{"GOMEMLIMIT", "GOMAXPROCS", "GOGC"}

// imageName strips the tag or digest.
func imageName(image string) string {
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndexByte(image, ':'); i > strings.LastIndexByte(image, '/') {
		image = image[:i]
	}
	return image
}

// parseContainer parses a container's args and environment with its
// binary's flag set, as the binary would (envflag.Parse), and runs the
// options' Validate. Every --flag must be defined, every OOMWATCH_*
// variable must name a flag, and values the downward API fills in get
// placeholders.
func parseContainer(t *testing.T, b binary, c *corev1.Container) *flag.FlagSet {
	t.Helper()
	if b.flags == nil {
		t.Fatalf("container %s: image %s is not an oomwatch binary", c.Name, c.Image)
	}
	if len(c.Command) > 0 {
		t.Errorf("container %s: command %v overrides the image's ENTRYPOINT", c.Name, c.Command)
	}
	fs, validate := b.flags()
	fs.SetOutput(io.Discard)
	byEnv := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { byEnv[envflag.Name(f.Name)] = f.Name })

	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case strings.HasPrefix(e.Name, envflag.Prefix):
			if _, ok := byEnv[e.Name]; !ok {
				t.Errorf("container %s: env %s names no flag", c.Name, e.Name)
			}
		case slices.Contains(b.env, e.Name), slices.Contains(goRuntimeEnv, e.Name):
		default:
			t.Errorf("container %s: env %s is read by nothing", c.Name, e.Name)
		}
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName":
			env[e.Name] = "node-a"
		default:
			env[e.Name] = "placeholder"
		}
	}

	var args []string
	for _, a := range c.Args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case !strings.HasPrefix(a, "-"):
			t.Errorf("container %s: argument %q is not a flag", c.Name, a)
		case fs.Lookup(name) != nil:
			if _, ok := b.pending[name]; ok {
				t.Errorf("container %s: --%s is now defined: remove it from the pending flags in test/deploy", c.Name, name)
			}
			args = append(args, a)
		case b.pending[name] != "":
			t.Logf("container %s: --%s (%s) is not defined by the binary yet: not checked", c.Name, name, b.pending[name])
		default:
			t.Errorf("container %s: --%s is not a flag of %s", c.Name, name, fs.Name())
		}
	}
	getenv := func(k string) string { return env[k] }
	if err := envflag.Parse(fs, args, getenv); err != nil {
		t.Fatalf("container %s: %v", c.Name, err)
	}
	if fs.NArg() > 0 {
		t.Errorf("container %s: positional arguments %v", c.Name, fs.Args())
	}
	if err := validate(getenv); err != nil {
		t.Errorf("container %s: the options do not validate: %v", c.Name, err)
	}
	return fs
}

// flagValue returns a flag's value, "" when undefined.
func flagValue(fs *flag.FlagSet, name string) string {
	if f := fs.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

// portOf returns the port of a listen address.
func portOf(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.ParseInt(p, 10, 32)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return int32(n)
}

// pathFlags are the flags naming files or directories, and whether the
// binary writes there.
var pathFlags = map[string]bool{
	"tls-cert":     false,
	"tls-key":      false,
	"tls-ca":       false,
	"token-file":   false,
	"proc":         false,
	"cgroup-root":  false,
	"cri-endpoint": false,
	"state-dir":    true,
	"db":           true,
}

// TestContainerFlags checks every container of every workload against its
// binary: flags and variables defined, options valid, every path a flag
// names on a volume (the root file system is read-only), writable where
// the binary writes, and files from user-provided Secrets named by the
// keys those Secrets have.
func TestContainerFlags(t *testing.T) {
	s := newSuite(t)
	var checked int
	for _, w := range s.workloads() {
		for i := range w.tmpl.Spec.Containers {
			c := &w.tmpl.Spec.Containers[i]
			t.Run(w.name+"/"+c.Name, func(t *testing.T) {
				fs := parseContainer(t, binaries[imageName(c.Image)], c)
				checked++
				fs.Visit(func(f *flag.Flag) {
					writes, ok := pathFlags[f.Name]
					if !ok || f.Value.String() == "" {
						return
					}
					p := strings.TrimPrefix(f.Value.String(), "unix://")
					m, ok := mountFor(c, p)
					if !ok {
						t.Errorf("--%s=%s is on no volume (the root file system is read-only and the image holds only the binary)", f.Name, p)
						return
					}
					if writes && m.ReadOnly {
						t.Errorf("--%s=%s is on read-only mount %s", f.Name, p, m.MountPath)
					}
					v := volume(&w.tmpl.Spec, m.Name)
					if v.Secret == nil {
						return
					}
					if _, ok := userSecrets[v.Secret.SecretName]; ok {
						rel := strings.TrimPrefix(p, strings.TrimSuffix(m.MountPath, "/")+"/")
						if !slices.Contains(userSecretKeys, rel) {
							t.Errorf("--%s=%s: Secret %s has no key %q (it has %v)", f.Name, p, v.Secret.SecretName, rel, userSecretKeys)
						}
					}
					if path.Dir(p) != strings.TrimSuffix(m.MountPath, "/") {
						t.Errorf("--%s=%s is not directly in Secret mount %s", f.Name, p, m.MountPath)
					}
				})
			})
		}
	}
	if checked == 0 {
		t.Fatal("no container checked")
	}
}

func TestImageName(t *testing.T) {
	for in, want := range map[string]string{
		"oomwatch/agent":                      "oomwatch/agent",
		"oomwatch/agent:latest":               "oomwatch/agent",
		"registry:5000/oomwatch/agent:v1":     "registry:5000/oomwatch/agent",
		"registry:5000/oomwatch/agent":        "registry:5000/oomwatch/agent",
		"oomwatch/agent@sha256:0123456789abc": "oomwatch/agent",
	} {
		if got := imageName(in); got != want {
			t.Errorf("imageName(%q) = %q, want %q", in, got, want)
		}
	}
}
