package deploy

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// Names the manifests are built around.
const (
	namespace      = "oomwatch"
	agentName      = "oomwatch-agent"
	aggregatorName = "oomwatch-aggregator"
)

// userSecrets are the Secrets the operator creates (deploy/gen-certs.sh
// makes them, in the subdirectory given here). The manifests must not ship
// them, since applying the kustomization would then overwrite the real
// ones; README.md must name them; their keys are userSecretKeys.
var userSecrets = map[string]string{
	"oomwatch-tls":       "aggregator",
	"oomwatch-agent-tls": "agent",
}

var userSecretKeys = []string{"ca.crt", "tls.crt", "tls.key"}

// suite holds the decoded manifests.
type suite struct {
	dir  string
	objs []object
	kust kustomization
}

func newSuite(t *testing.T) *suite {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "deploy")
	return &suite{dir: dir, objs: loadManifests(t, dir), kust: loadKustomization(t, dir)}
}

func (s *suite) all(kind string) []object {
	var out []object
	for _, o := range s.objs {
		if o.Kind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func (s *suite) find(kind, ns, name string) (object, bool) {
	for _, o := range s.objs {
		if o.Kind() == kind && o.meta().GetName() == name && (ns == "" || o.meta().GetNamespace() == ns) {
			return o, true
		}
	}
	return object{}, false
}

func (s *suite) daemonSet(t *testing.T, name string) *appsv1.DaemonSet {
	t.Helper()
	o, ok := s.find("DaemonSet", namespace, name)
	if !ok {
		t.Fatalf("no DaemonSet %s/%s", namespace, name)
	}
	return o.Obj.(*appsv1.DaemonSet)
}

func (s *suite) deployment(t *testing.T, name string) *appsv1.Deployment {
	t.Helper()
	o, ok := s.find("Deployment", namespace, name)
	if !ok {
		t.Fatalf("no Deployment %s/%s", namespace, name)
	}
	return o.Obj.(*appsv1.Deployment)
}

// workload is a pod template with where it came from.
type workload struct {
	name     string
	selector *metav1.LabelSelector
	tmpl     *corev1.PodTemplateSpec
}

func (s *suite) workloads() []workload {
	var ws []workload
	for _, o := range s.objs {
		switch w := o.Obj.(type) {
		case *appsv1.Deployment:
			ws = append(ws, workload{o.String(), w.Spec.Selector, &w.Spec.Template})
		case *appsv1.DaemonSet:
			ws = append(ws, workload{o.String(), w.Spec.Selector, &w.Spec.Template})
		case *appsv1.StatefulSet:
			ws = append(ws, workload{o.String(), w.Spec.Selector, &w.Spec.Template})
		}
	}
	return ws
}

func container(t *testing.T, spec *corev1.PodSpec, name string) *corev1.Container {
	t.Helper()
	for i := range spec.Containers {
		if spec.Containers[i].Name == name {
			return &spec.Containers[i]
		}
	}
	t.Fatalf("no container %q", name)
	return nil
}

func TestEveryObjectIsInTheNamespace(t *testing.T) {
	s := newSuite(t)
	clusterScoped := map[string]bool{"Namespace": true, "ClusterRole": true, "ClusterRoleBinding": true}
	seen := map[string]bool{}
	for _, o := range s.objs {
		key := o.Kind() + "/" + o.meta().GetNamespace() + "/" + o.meta().GetName()
		if seen[key] {
			t.Errorf("%s: defined twice", o)
		}
		seen[key] = true
		ns := o.meta().GetNamespace()
		switch {
		case clusterScoped[o.Kind()] && ns != "":
			t.Errorf("%s: cluster-scoped but has namespace %q", o, ns)
		case !clusterScoped[o.Kind()] && ns != namespace:
			t.Errorf("%s: namespace %q, want %q (so that `kubectl apply -f` works too)", o, ns, namespace)
		}
		if o.Kind() == "Secret" {
			t.Errorf("%s: the manifests ship no Secret (applying them would overwrite the operator's)", o)
		}
	}
	if _, ok := s.find("Namespace", "", namespace); !ok {
		t.Errorf("no Namespace %s", namespace)
	}
}

func TestSelectorsMatchTemplates(t *testing.T) {
	s := newSuite(t)
	ws := s.workloads()
	if len(ws) != 2 {
		t.Errorf("%d workloads, want the agent's DaemonSet and the aggregator's Deployment", len(ws))
	}
	for _, w := range ws {
		sel, err := metav1.LabelSelectorAsSelector(w.selector)
		if err != nil || sel.Empty() {
			t.Errorf("%s: selector %v: %v (empty selects everything)", w.name, w.selector, err)
			continue
		}
		if !sel.Matches(labels.Set(w.tmpl.Labels)) {
			t.Errorf("%s: selector %s does not match template labels %v", w.name, sel, w.tmpl.Labels)
		}
		for _, other := range ws {
			if other.name != w.name && sel.Matches(labels.Set(other.tmpl.Labels)) {
				t.Errorf("%s: selector also matches the pods of %s", w.name, other.name)
			}
		}
	}
}

func TestServicesReachNamedPorts(t *testing.T) {
	s := newSuite(t)
	svcs := s.all("Service")
	if len(svcs) == 0 {
		t.Fatal("no Service")
	}
	for _, o := range svcs {
		svc := o.Obj.(*corev1.Service)
		var matched []workload
		for _, w := range s.workloads() {
			if len(svc.Spec.Selector) > 0 && labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(w.tmpl.Labels)) {
				matched = append(matched, w)
			}
		}
		if len(matched) != 1 {
			t.Errorf("%s: selector %v matches %d workloads, want 1", o, svc.Spec.Selector, len(matched))
			continue
		}
		for _, p := range svc.Spec.Ports {
			if p.TargetPort.Type != intstr.String {
				t.Errorf("%s: port %s: targetPort %s is not a named port", o, p.Name, p.TargetPort.String())
				continue
			}
			if _, ok := namedPort(matched[0].tmpl, p.TargetPort.StrVal); !ok {
				t.Errorf("%s: port %s: %s has no container port named %q", o, p.Name, matched[0].name, p.TargetPort.StrVal)
			}
		}
	}
	// The aggregator's Service carries what the brief asks for.
	o, ok := s.find("Service", namespace, aggregatorName)
	if !ok {
		t.Fatalf("no Service %s", aggregatorName)
	}
	var names []string
	for _, p := range o.Obj.(*corev1.Service).Spec.Ports {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"grpc", "http", "metrics"}) {
		t.Errorf("%s ports %v, want grpc, http and metrics", o, names)
	}
}

// namedPort returns the container port of that name in a pod template.
func namedPort(tmpl *corev1.PodTemplateSpec, name string) (corev1.ContainerPort, bool) {
	for _, c := range tmpl.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return p, true
			}
		}
	}
	return corev1.ContainerPort{}, false
}

func TestVolumesAndReferences(t *testing.T) {
	s := newSuite(t)
	readme, err := os.ReadFile(filepath.Join(s.dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	generated := map[string]bool{}
	for _, g := range s.kust.ConfigMapGenerator {
		generated[g.Name] = true
	}
	for _, w := range s.workloads() {
		spec := &w.tmpl.Spec
		ns := namespace
		declared := map[string]corev1.Volume{}
		for _, v := range spec.Volumes {
			declared[v.Name] = v
		}
		mounted := map[string]bool{}
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			seen := map[string]bool{}
			for _, m := range c.VolumeMounts {
				if _, ok := declared[m.Name]; !ok {
					t.Errorf("%s: container %s mounts undeclared volume %q", w.name, c.Name, m.Name)
				}
				if seen[m.MountPath] {
					t.Errorf("%s: container %s mounts two volumes at %s", w.name, c.Name, m.MountPath)
				}
				seen[m.MountPath] = true
				mounted[m.Name] = true
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil {
					checkSecret(t, s, w.name, r.Name, readme)
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil && !generated[r.Name] {
					if _, ok := s.find("ConfigMap", ns, r.Name); !ok {
						t.Errorf("%s: env %s: no ConfigMap %s", w.name, e.Name, r.Name)
					}
				}
			}
			for _, e := range c.EnvFrom {
				if e.SecretRef != nil {
					checkSecret(t, s, w.name, e.SecretRef.Name, readme)
				}
				if e.ConfigMapRef != nil && !generated[e.ConfigMapRef.Name] {
					if _, ok := s.find("ConfigMap", ns, e.ConfigMapRef.Name); !ok {
						t.Errorf("%s: envFrom: no ConfigMap %s", w.name, e.ConfigMapRef.Name)
					}
				}
			}
		}
		for name, v := range declared {
			if !mounted[name] {
				t.Errorf("%s: volume %q is declared but never mounted", w.name, name)
			}
			switch {
			case v.Secret != nil:
				checkSecret(t, s, w.name, v.Secret.SecretName, readme)
			case v.ConfigMap != nil:
				if _, ok := s.find("ConfigMap", ns, v.ConfigMap.Name); !ok && !generated[v.ConfigMap.Name] {
					t.Errorf("%s: volume %s: no ConfigMap %s", w.name, name, v.ConfigMap.Name)
				}
			case v.PersistentVolumeClaim != nil:
				if _, ok := s.find("PersistentVolumeClaim", ns, v.PersistentVolumeClaim.ClaimName); !ok {
					t.Errorf("%s: volume %s: no PersistentVolumeClaim %s", w.name, name, v.PersistentVolumeClaim.ClaimName)
				}
			}
		}
		if spec.ServiceAccountName == "" {
			t.Errorf("%s: no serviceAccountName (would run as %s/default)", w.name, ns)
		} else if _, ok := s.find("ServiceAccount", ns, spec.ServiceAccountName); !ok {
			t.Errorf("%s: no ServiceAccount %s", w.name, spec.ServiceAccountName)
		}
		for _, c := range spec.Containers {
			if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
				t.Errorf("%s: container %s: readOnlyRootFilesystem is not true", w.name, c.Name)
			}
			for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
				if p == nil || p.HTTPGet == nil {
					continue
				}
				if p.HTTPGet.Port.Type != intstr.String {
					t.Errorf("%s: container %s: probe port %s is not named", w.name, c.Name, p.HTTPGet.Port.String())
				} else if _, ok := namedPort(w.tmpl, p.HTTPGet.Port.StrVal); !ok {
					t.Errorf("%s: container %s: probe port %q is not a container port", w.name, c.Name, p.HTTPGet.Port.StrVal)
				}
			}
		}
	}
}

// checkSecret checks that a referenced Secret is one the operator is told
// to create (the manifests ship none).
func checkSecret(t *testing.T, s *suite, where, name string, readme []byte) {
	t.Helper()
	if _, ok := userSecrets[name]; !ok {
		t.Errorf("%s: Secret %s is neither shipped nor a documented user-provided Secret", where, name)
		return
	}
	if !bytes.Contains(readme, []byte(name)) {
		t.Errorf("%s: user-provided Secret %s is not documented in deploy/README.md", where, name)
	}
}

func TestAgentDaemonSet(t *testing.T) {
	s := newSuite(t)
	ds := s.daemonSet(t, agentName)
	spec := &ds.Spec.Template.Spec
	c := container(t, spec, "agent")

	// The host's PID namespace, for cgroup.procs (deploy/README.md); no
	// other.
	if !spec.HostPID || spec.HostNetwork || spec.HostIPC {
		t.Errorf("host namespaces: PID %v, network %v, IPC %v; want PID only", spec.HostPID, spec.HostNetwork, spec.HostIPC)
	}
	if spec.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName %q", spec.PriorityClassName)
	}
	if !slices.ContainsFunc(spec.Tolerations, func(tol corev1.Toleration) bool {
		return tol.Operator == corev1.TolerationOpExists && tol.Key == "" && tol.Effect == ""
	}) {
		t.Errorf("tolerations %v: none tolerates every taint (operator Exists, no key, no effect)", spec.Tolerations)
	}
	// The token is mounted in the agent's pod only (for listing its
	// node's pods), never by default for the account.
	if spec.AutomountServiceAccountToken == nil || !*spec.AutomountServiceAccountToken {
		t.Error("the agent's pod mounts no service account token: it cannot list its node's pods for memory requests")
	}
	if sa, ok := s.find("ServiceAccount", namespace, spec.ServiceAccountName); ok {
		if a := sa.Obj.(*corev1.ServiceAccount).AutomountServiceAccountToken; a == nil || *a {
			t.Errorf("%s: automountServiceAccountToken is not false", sa)
		}
	}

	sc := c.SecurityContext
	// The decision documented in deploy/README.md: privileged (the device
	// cgroup), as root, with a read-only root file system.
	if sc == nil || sc.Privileged == nil || !*sc.Privileged {
		t.Error("the agent is not privileged: an unprivileged container's device cgroup denies opening /dev/kmsg (see README.md)")
	}
	if sc != nil && (sc.RunAsUser == nil || *sc.RunAsUser != 0) {
		t.Error("the agent should state runAsUser: 0 (CAP_SYSLOG and other users' /proc entries)")
	}

	var nodeName bool
	for _, e := range c.Env {
		if e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName" {
			nodeName = true
		}
	}
	if !nodeName {
		t.Error("NODE_NAME is not set from the downward API's spec.nodeName")
	}

	wantRes := map[string]map[corev1.ResourceName]string{
		"requests": {corev1.ResourceCPU: "10m", corev1.ResourceMemory: "32Mi"},
		"limits":   {corev1.ResourceMemory: "64Mi"},
	}
	for kind, list := range map[string]corev1.ResourceList{"requests": c.Resources.Requests, "limits": c.Resources.Limits} {
		for name, want := range wantRes[kind] {
			got, ok := list[name]
			if !ok || got.Cmp(resource.MustParse(want)) != 0 {
				t.Errorf("resources.%s.%s = %v, want %s", kind, name, got.String(), want)
			}
		}
	}

	// Host paths: what is mounted, where, and how.
	type hostMount struct {
		typ      corev1.HostPathType
		readOnly bool
	}
	want := map[string]hostMount{
		"/dev/kmsg":         {corev1.HostPathCharDev, true},
		"/proc":             {corev1.HostPathDirectory, true},
		"/sys/fs/cgroup":    {corev1.HostPathDirectory, true},
		"/run/containerd":   {corev1.HostPathDirectory, true},
		"/var/lib/oomwatch": {corev1.HostPathDirectoryOrCreate, false},
	}
	mountOf := map[string]corev1.VolumeMount{} // host path -> mount
	for _, v := range spec.Volumes {
		if v.HostPath == nil {
			continue
		}
		w, ok := want[v.HostPath.Path]
		if !ok {
			t.Errorf("unexpected hostPath %s", v.HostPath.Path)
			continue
		}
		if v.HostPath.Type == nil || *v.HostPath.Type != w.typ {
			t.Errorf("hostPath %s: type %v, want %s", v.HostPath.Path, v.HostPath.Type, w.typ)
		}
		for _, m := range c.VolumeMounts {
			if m.Name == v.Name {
				mountOf[v.HostPath.Path] = m
				if m.ReadOnly != w.readOnly {
					t.Errorf("hostPath %s mounted at %s: readOnly %v, want %v", v.HostPath.Path, m.MountPath, m.ReadOnly, w.readOnly)
				}
			}
		}
	}
	for p := range want {
		if _, ok := mountOf[p]; !ok {
			t.Errorf("hostPath %s is not mounted into the agent", p)
		}
	}
	// The agent opens /dev/kmsg by that fixed path.
	if m := mountOf["/dev/kmsg"]; m.MountPath != "/dev/kmsg" {
		t.Errorf("/dev/kmsg mounted at %q", m.MountPath)
	}

	// The flags point at those mounts.
	fs := parseContainer(t, binaries[imageName(c.Image)], c)
	for flagName, hostPath := range map[string]string{"proc": "/proc", "cgroup-root": "/sys/fs/cgroup", "state-dir": "/var/lib/oomwatch"} {
		if got, want := flagValue(fs, flagName), mountOf[hostPath].MountPath; got != want {
			t.Errorf("--%s=%s, but the host's %s is mounted at %s", flagName, got, hostPath, want)
		}
	}
	if sock := strings.TrimPrefix(flagValue(fs, "cri-endpoint"), "unix://"); sock != mountOf["/run/containerd"].MountPath+"/containerd.sock" {
		t.Errorf("--cri-endpoint socket %s is not containerd.sock in the mount of /run/containerd (%s)", sock, mountOf["/run/containerd"].MountPath)
	}

	// system-node-critical outside kube-system needs a quota on clusters
	// that limit the critical classes (GKE).
	var quota bool
	for _, o := range s.all("ResourceQuota") {
		if sel := o.Obj.(*corev1.ResourceQuota).Spec.ScopeSelector; sel != nil {
			for _, e := range sel.MatchExpressions {
				if e.ScopeName == corev1.ResourceQuotaScopePriorityClass && e.Operator == corev1.ScopeSelectorOpIn && slices.Contains(e.Values, "system-node-critical") {
					quota = true
				}
			}
		}
	}
	if !quota {
		t.Error("no ResourceQuota admits system-node-critical pods in the namespace")
	}
}

func TestAggregatorDeployment(t *testing.T) {
	s := newSuite(t)
	d := s.deployment(t, aggregatorName)
	spec := &d.Spec.Template.Spec
	c := container(t, spec, "aggregator")
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("replicas %v, want 1 (SQLite is single-writer)", d.Spec.Replicas)
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("strategy %q, want Recreate", d.Spec.Strategy.Type)
	}
	psc, sc := spec.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("the aggregator's pod is not runAsNonRoot")
	}
	if psc != nil && (psc.RunAsUser == nil || *psc.RunAsUser == 0) {
		t.Error("the aggregator's pod has no non-zero runAsUser")
	}
	if sc == nil || (sc.Privileged != nil && *sc.Privileged) || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		t.Errorf("the aggregator's container security context %+v: want unprivileged, no escalation, all capabilities dropped", sc)
	}

	fs := parseContainer(t, binaries[imageName(c.Image)], c)
	// The database sits on the PersistentVolumeClaim, writable.
	db := flagValue(fs, "db")
	m, ok := mountFor(c, db)
	if !ok {
		t.Fatalf("--db=%s is on no volume", db)
	}
	if m.ReadOnly || volume(spec, m.Name).PersistentVolumeClaim == nil {
		t.Errorf("--db=%s is on volume %s, which is not a writable PersistentVolumeClaim", db, m.Name)
	}

	// Ports agree with the flags, and the probes use the plaintext port.
	grpcPort := portOf(t, flagValue(fs, "listen"))
	if p, ok := namedPort(&d.Spec.Template, "grpc"); !ok || p.ContainerPort != grpcPort {
		t.Errorf("container port grpc = %v, --listen port %d", p.ContainerPort, grpcPort)
	}
	for name, flagName := range map[string]string{"metrics": "metrics-addr", "http": "http-addr"} {
		if fs.Lookup(flagName) == nil {
			continue // not implemented yet: reported by parseContainer
		}
		want := portOf(t, flagValue(fs, flagName))
		if p, ok := namedPort(&d.Spec.Template, name); !ok || p.ContainerPort != want {
			t.Errorf("container port %s = %v, --%s port %d", name, p.ContainerPort, flagName, want)
		}
	}
	for what, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe: want an HTTP probe of /healthz on the plaintext metrics port", what)
			continue
		}
		if p.HTTPGet.Port.StrVal != "metrics" || p.HTTPGet.Path != "/healthz" {
			t.Errorf("%s probe: %s on port %s, want /healthz on metrics (7443 is TLS-only; the kubelet's gRPC probe cannot do TLS)", what, p.HTTPGet.Path, p.HTTPGet.Port.String())
		}
	}

	// The agents dial the Service, on a port that reaches --listen.
	agent := container(t, &s.daemonSet(t, agentName).Spec.Template.Spec, "agent")
	server := flagValue(parseContainer(t, binaries[imageName(agent.Image)], agent), "server")
	host, port, ok := strings.Cut(server, ":")
	if !ok {
		t.Fatalf("agent --server=%s: no port", server)
	}
	if host != aggregatorName+"."+namespace+".svc" {
		t.Errorf("agent --server host %s, want %s.%s.svc (what the server certificate names)", host, aggregatorName, namespace)
	}
	svc, ok := s.find("Service", namespace, aggregatorName)
	if !ok {
		t.Fatal("no aggregator Service")
	}
	var reached bool
	for _, p := range svc.Obj.(*corev1.Service).Spec.Ports {
		if fmt.Sprint(p.Port) == port {
			tp, _ := namedPort(&d.Spec.Template, p.TargetPort.StrVal)
			reached = tp.ContainerPort == grpcPort
		}
	}
	if !reached {
		t.Errorf("agent --server=%s does not reach the aggregator's gRPC port %d through the Service", server, grpcPort)
	}
}

func volume(spec *corev1.PodSpec, name string) corev1.Volume {
	for _, v := range spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	return corev1.Volume{}
}

// mountFor returns the volume mount holding path.
func mountFor(c *corev1.Container, path string) (corev1.VolumeMount, bool) {
	var best corev1.VolumeMount
	for _, m := range c.VolumeMounts {
		if (path == m.MountPath || strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/")) && len(m.MountPath) > len(best.MountPath) {
			best = m
		}
	}
	return best, best.Name != ""
}

func TestRBAC(t *testing.T) {
	s := newSuite(t)
	type grant struct{ group, resource, verb string }
	want := map[grant]bool{
		{"", "events", "create"}: true,
		{"", "events", "patch"}:  true,
		{"", "pods", "get"}:      true,
		{"", "nodes", "get"}:     true,
	}
	granted := map[string]map[grant]bool{} // service account -> grants
	for _, kind := range []string{"RoleBinding", "ClusterRoleBinding"} {
		for _, o := range s.all(kind) {
			var ref rbacv1.RoleRef
			var subjects []rbacv1.Subject
			switch b := o.Obj.(type) {
			case *rbacv1.RoleBinding:
				ref, subjects = b.RoleRef, b.Subjects
			case *rbacv1.ClusterRoleBinding:
				ref, subjects = b.RoleRef, b.Subjects
			}
			var rules []rbacv1.PolicyRule
			switch ns := ""; ref.Kind {
			case "ClusterRole":
				r, ok := s.find("ClusterRole", ns, ref.Name)
				if !ok {
					t.Errorf("%s: no ClusterRole %s", o, ref.Name)
					continue
				}
				rules = r.Obj.(*rbacv1.ClusterRole).Rules
			case "Role":
				r, ok := s.find("Role", o.meta().GetNamespace(), ref.Name)
				if !ok {
					t.Errorf("%s: no Role %s", o, ref.Name)
					continue
				}
				rules = r.Obj.(*rbacv1.Role).Rules
			}
			for _, sub := range subjects {
				if sub.Kind != rbacv1.ServiceAccountKind {
					t.Errorf("%s: subject %s %s is not a ServiceAccount", o, sub.Kind, sub.Name)
					continue
				}
				if _, ok := s.find("ServiceAccount", sub.Namespace, sub.Name); !ok {
					t.Errorf("%s: no ServiceAccount %s/%s", o, sub.Namespace, sub.Name)
				}
				if granted[sub.Name] == nil {
					granted[sub.Name] = map[grant]bool{}
				}
				for _, r := range rules {
					if len(r.NonResourceURLs) > 0 || len(r.ResourceNames) > 0 {
						t.Errorf("%s: rule %v: nonResourceURLs or resourceNames", o, r)
					}
					for _, g := range r.APIGroups {
						for _, res := range r.Resources {
							for _, v := range r.Verbs {
								granted[sub.Name][grant{g, res, v}] = true
							}
						}
					}
				}
			}
		}
	}
	agentWant := map[grant]bool{{"", "pods", "list"}: true}
	if g := granted[agentName]; !maps.Equal(g, agentWant) {
		t.Errorf("the agent is granted %v; it needs list pods and nothing else", g)
	}
	got := granted[aggregatorName]
	for g := range got {
		if !want[g] {
			t.Errorf("the aggregator is granted %q %q %q, beyond create/patch events and get pods/nodes", g.group, g.resource, g.verb)
		}
	}
	for g := range want {
		if !got[g] {
			t.Errorf("the aggregator lacks %q %q %q (the Kubernetes Events writer needs it)", g.group, g.resource, g.verb)
		}
	}
	for sa := range granted {
		if sa != aggregatorName && sa != agentName && len(granted[sa]) > 0 {
			t.Errorf("ServiceAccount %s is granted %v", sa, granted[sa])
		}
	}
}

// kustomization is the part of kustomize's Kustomization the manifests
// use; decoding is strict, so anything else fails the test.
type kustomization struct {
	APIVersion         string   `json:"apiVersion"`
	Kind               string   `json:"kind"`
	Namespace          string   `json:"namespace"`
	Resources          []string `json:"resources"`
	ConfigMapGenerator []struct {
		Name    string   `json:"name"`
		Files   []string `json:"files"`
		Options struct {
			DisableNameSuffixHash bool              `json:"disableNameSuffixHash"`
			Labels                map[string]string `json:"labels"`
		} `json:"options"`
	} `json:"configMapGenerator"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

func loadKustomization(t testing.TB, dir string) kustomization {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	return k
}

func TestKustomization(t *testing.T) {
	s := newSuite(t)
	k := s.kust
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" || k.Namespace != namespace {
		t.Errorf("kustomization: apiVersion %q kind %q namespace %q", k.APIVersion, k.Kind, k.Namespace)
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(filepath.Join(s.dir, r)); err != nil {
			t.Errorf("resource %s: %v", r, err)
		}
	}
	for _, f := range manifestFiles(t, s.dir) {
		if !slices.Contains(k.Resources, f) {
			t.Errorf("%s is not listed in kustomization.yaml's resources", f)
		}
	}
	var dashboard bool
	for _, g := range k.ConfigMapGenerator {
		for _, f := range g.Files {
			if _, err := os.Stat(filepath.Join(s.dir, f)); err != nil {
				t.Errorf("configMapGenerator %s: %v", g.Name, err)
			}
			if f == dashboardFile {
				dashboard = g.Options.Labels["grafana_dashboard"] != "" && g.Options.DisableNameSuffixHash
			}
		}
	}
	if !dashboard {
		t.Errorf("%s is not generated as a ConfigMap with a stable name and the grafana_dashboard label", dashboardFile)
	}
	images := map[string]bool{}
	for _, w := range s.workloads() {
		for _, c := range w.tmpl.Spec.Containers {
			images[c.Image] = true
		}
	}
	for _, im := range k.Images {
		if !images[im.Name] {
			t.Errorf("images: %s is no container's image", im.Name)
		}
		delete(images, im.Name)
	}
	for im := range images {
		t.Errorf("image %s has no entry in kustomization.yaml's images (where the registry and tag are set)", im)
	}
}

// TestKustomizeBuild runs `kubectl kustomize` (kustomize as `kubectl
// apply -k` runs it) and strictly decodes what it prints.
func TestKustomizeBuild(t *testing.T) {
	s := newSuite(t)
	out, err := exec.Command(kubectl(t), "kustomize", s.dir).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, stderrOf(err))
	}
	built, err := decodeStream("kustomize output", out)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, o := range s.objs {
		want[o.Kind()+"/"+o.meta().GetName()] = true
	}
	for _, g := range s.kust.ConfigMapGenerator {
		want["ConfigMap/"+g.Name] = true
	}
	dash, err := os.ReadFile(filepath.Join(s.dir, dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range built {
		key := o.Kind() + "/" + o.meta().GetName()
		if !want[key] {
			t.Errorf("kustomize made %s, not in the manifests", key)
		}
		delete(want, key)
		if cm, ok := o.Obj.(*corev1.ConfigMap); ok && cm.Name == "oomwatch-grafana-dashboard" {
			if cm.Labels["grafana_dashboard"] == "" || cm.Data[filepath.Base(dashboardFile)] != string(dash) {
				t.Errorf("ConfigMap %s: labels %v, or its data is not %s", cm.Name, cm.Labels, dashboardFile)
			}
		}
	}
	for key := range want {
		t.Errorf("kustomize did not make %s", key)
	}
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
