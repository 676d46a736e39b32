package deploy

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/oomwatch/oomwatch/pkg/envflag"
	"github.com/oomwatch/oomwatch/pkg/metrics"
	"github.com/oomwatch/oomwatch/pkg/migration"
)

// The replicated install's database Secret: created by the operator
// (deploy/README.md), read by the replicas (OOMWATCH_DB) and by the
// migration Job (OOMWATCH_TO).
const (
	dbSecret    = "oomwatch-db"
	dbSecretKey = "url"
)

// kustomize builds the kustomization in dir (relative to the module root)
// with `kubectl kustomize`, as `kubectl apply -k` does, and decodes the
// output strictly.
func kustomize(t *testing.T, dir string) []object {
	t.Helper()
	out, err := exec.Command(kubectl(t), "kustomize", filepath.Join(repoRoot(t), dir)).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderrOf(err))
	}
	objs, err := decodeStream(dir, out)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// secretEnv returns the Secret name and key a container's variable is
// read from, "" when it is not read from a Secret.
func secretEnv(c *corev1.Container, name string) (secret, key string) {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			return e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key
		}
	}
	return "", ""
}

// TestHAOverlay builds deploy-ha and checks it against deploy/: the same
// objects but the SQLite volume claim, plus a PodDisruptionBudget; the
// aggregator replicated (3, rolling one at a time, spread over nodes),
// ready only while its database answers, its --db from the Secret, no
// SQLite volume left; one Service in front of every replica.
func TestHAOverlay(t *testing.T) {
	base := &suite{objs: kustomize(t, "deploy")}
	ha := &suite{objs: kustomize(t, "deploy-ha")}
	readme, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "README.md"))
	if err != nil {
		t.Fatal(err)
	}

	// The same objects as deploy/, less the claim, plus the budget.
	want := map[string]bool{}
	for _, o := range base.objs {
		want[o.Kind()+"/"+o.meta().GetName()] = true
	}
	delete(want, "PersistentVolumeClaim/"+aggregatorName+"-db")
	want["PodDisruptionBudget/"+aggregatorName] = true
	for _, o := range ha.objs {
		key := o.Kind() + "/" + o.meta().GetName()
		if !want[key] {
			t.Errorf("deploy-ha makes %s", key)
		}
		delete(want, key)
		if o.meta().GetNamespace() != namespace && o.Kind() != "Namespace" && !strings.HasPrefix(o.Kind(), "Cluster") {
			t.Errorf("%s is in namespace %q", key, o.meta().GetNamespace())
		}
	}
	for key := range want {
		t.Errorf("deploy-ha does not make %s", key)
	}
	if len(ha.all("PersistentVolumeClaim")) != 0 {
		t.Error("deploy-ha still makes a PersistentVolumeClaim")
	}

	d := ha.deployment(t, aggregatorName)
	spec := &d.Spec.Template.Spec
	c := container(t, spec, "aggregator")
	podLabels := labels.Set(d.Spec.Template.Labels)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Errorf("replicas %d, want 3", ptrOr(d.Spec.Replicas, 1))
	}
	ru := d.Spec.Strategy.RollingUpdate
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.String() != "1" ||
		ru.MaxSurge == nil || ru.MaxSurge.String() != "0" {
		t.Errorf("strategy %+v, want RollingUpdate, maxUnavailable 1, maxSurge 0 (no fourth node needed)", d.Spec.Strategy)
	}

	// Spread over nodes, preferred only: a small cluster still schedules.
	aa := spec.Affinity
	if aa == nil || aa.PodAntiAffinity == nil || len(aa.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Fatalf("affinity %+v, want one preferred pod anti-affinity term", aa)
	}
	if len(aa.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 0 {
		t.Error("a required pod anti-affinity: a cluster of fewer than 3 nodes could not run every replica")
	}
	term := aa.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm
	if sel, err := metav1.LabelSelectorAsSelector(term.LabelSelector); err != nil || sel.Empty() || !sel.Matches(podLabels) ||
		term.TopologyKey != corev1.LabelHostname {
		t.Errorf("anti-affinity term %+v: want the replicas' own labels, across %s", term, corev1.LabelHostname)
	}

	// Probes: readiness follows the database, liveness does not.
	for what, tc := range map[string]struct {
		p    *corev1.Probe
		path string
	}{"readiness": {c.ReadinessProbe, "/readyz"}, "liveness": {c.LivenessProbe, "/healthz"}, "startup": {c.StartupProbe, "/healthz"}} {
		if tc.p == nil || tc.p.HTTPGet == nil || tc.p.HTTPGet.Path != tc.path || tc.p.HTTPGet.Port.StrVal != "metrics" {
			t.Errorf("%s probe %+v, want %s on port metrics", what, tc.p, tc.path)
		}
	}

	if p := c.ReadinessProbe; p != nil && time.Duration(p.TimeoutSeconds)*time.Second <= metrics.ReadyTimeout {
		t.Errorf("readiness probe timeout %ds: the kubelet gives up before /readyz's database ping (%v) answers", p.TimeoutSeconds, metrics.ReadyTimeout)
	}

	// --db comes from the Secret, and no SQLite is left.
	if s, k := secretEnv(c, envflag.Name("db")); s != dbSecret || k != dbSecretKey {
		t.Errorf("%s from Secret %q key %q, want %s key %s", envflag.Name("db"), s, k, dbSecret, dbSecretKey)
	}
	if !bytes.Contains(readme, []byte(dbSecret)) {
		t.Errorf("deploy/README.md does not say to create the Secret %s", dbSecret)
	}
	fs := parseContainer(t, binaries[imageName(c.Image)], c)
	if db := flagValue(fs, "db"); db != "placeholder" {
		t.Errorf("--db is %q, not the Secret's value: an argument overrides it", db)
	}
	for _, v := range spec.Volumes {
		if v.PersistentVolumeClaim != nil || v.Name == "db" {
			t.Errorf("volume %s is left", v.Name)
		}
	}
	for _, m := range c.VolumeMounts {
		if m.Name == "db" || m.MountPath == "/var/lib/oomwatch" {
			t.Errorf("mount %s at %s is left", m.Name, m.MountPath)
		}
	}
	// Everything else of the container is deploy/'s.
	bc := container(t, &base.deployment(t, aggregatorName).Spec.Template.Spec, "aggregator")
	var baseArgs []string
	for _, a := range bc.Args {
		if !strings.HasPrefix(a, "--db=") {
			baseArgs = append(baseArgs, a)
		}
	}
	if strings.Join(c.Args, " ") != strings.Join(baseArgs, " ") || c.Image != bc.Image {
		t.Errorf("args %v image %s, want deploy/'s without --db: %v %s", c.Args, c.Image, baseArgs, bc.Image)
	}

	// The budget allows one replica down, as the rollout does.
	o, ok := ha.find("PodDisruptionBudget", namespace, aggregatorName)
	if !ok {
		t.Fatal("no PodDisruptionBudget")
	}
	pdb := o.Obj.(*policyv1.PodDisruptionBudget)
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(podLabels) {
		t.Errorf("PodDisruptionBudget selector %v does not select the replicas", pdb.Spec.Selector)
	}
	switch {
	case pdb.Spec.MaxUnavailable != nil && pdb.Spec.MinAvailable == nil:
		if pdb.Spec.MaxUnavailable.String() != "1" {
			t.Errorf("maxUnavailable %s, want 1", pdb.Spec.MaxUnavailable)
		}
	case pdb.Spec.MinAvailable != nil && pdb.Spec.MaxUnavailable == nil:
		if pdb.Spec.MinAvailable.String() != "2" {
			t.Errorf("minAvailable %s, want 2", pdb.Spec.MinAvailable)
		}
	default:
		t.Errorf("PodDisruptionBudget %+v: want one of maxUnavailable 1 or minAvailable 2", pdb.Spec)
	}

	// One ClusterIP Service in front of every replica.
	svcs := ha.all("Service")
	if len(svcs) != 1 {
		t.Fatalf("%d Services, want 1", len(svcs))
	}
	svc := svcs[0].Obj.(*corev1.Service)
	if svc.Spec.Type != corev1.ServiceTypeClusterIP || svc.Spec.ClusterIP == corev1.ClusterIPNone ||
		!labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
		t.Errorf("Service %s: type %s clusterIP %q selector %v, want a ClusterIP Service selecting the replicas", svc.Name, svc.Spec.Type, svc.Spec.ClusterIP, svc.Spec.Selector)
	}
}

// TestMigrateJob builds deploy-ha/migrate: `aggregator migrate` with flags
// the binary defines and options that validate, reading deploy/'s SQLite
// file from its claim at the path deploy/ gives --db, writing to the
// database of the replicas' Secret, with deploy/'s aggregator image.
func TestMigrateJob(t *testing.T) {
	base := &suite{objs: kustomize(t, "deploy")}
	objs := kustomize(t, "deploy-ha/migrate")
	if len(objs) != 1 {
		t.Fatalf("%d objects, want the Job", len(objs))
	}
	job, ok := objs[0].Obj.(*batchv1.Job)
	if !ok || job.Namespace != namespace {
		t.Fatalf("%s, want a Job in %s", objs[0], namespace)
	}
	spec := &job.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers", len(spec.Containers))
	}
	c := &spec.Containers[0]
	bd := base.deployment(t, aggregatorName)
	bc := container(t, &bd.Spec.Template.Spec, "aggregator")
	if c.Image != bc.Image || len(c.Command) > 0 {
		t.Errorf("image %s command %v, want deploy/'s %s and its entrypoint", c.Image, c.Command, bc.Image)
	}
	if len(c.Args) == 0 || c.Args[0] != "migrate" {
		t.Fatalf("args %v, want the migrate subcommand", c.Args)
	}
	if s, k := secretEnv(c, envflag.Name("to")); s != dbSecret || k != dbSecretKey {
		t.Errorf("%s from Secret %q key %q, want %s key %s", envflag.Name("to"), s, k, dbSecret, dbSecretKey)
	}
	var o migration.Options
	fs := flag.NewFlagSet("aggregator migrate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.AddFlags(fs)
	byEnv := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { byEnv[envflag.Name(f.Name)] = true })
	env := map[string]string{}
	for _, e := range c.Env {
		if !byEnv[e.Name] {
			t.Errorf("env %s names no flag of aggregator migrate", e.Name)
		}
		env[e.Name] = e.Value
		if e.ValueFrom != nil {
			env[e.Name] = "postgres://oomwatch@db.example/oomwatch"
		}
	}
	if err := envflag.Parse(fs, c.Args[1:], func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil || fs.NArg() > 0 {
		t.Fatalf("options %+v: %v, extra %v", o, err, fs.Args())
	}

	// --from is deploy/'s --db, on deploy/'s claim.
	var baseDB string
	for _, a := range bc.Args {
		if v, ok := strings.CutPrefix(a, "--db="); ok {
			baseDB = v
		}
	}
	if o.From != baseDB {
		t.Errorf("--from=%s, want deploy/'s --db=%s", o.From, baseDB)
	}
	m, ok := mountFor(c, o.From)
	if !ok || path.Dir(o.From) != strings.TrimSuffix(m.MountPath, "/") {
		t.Fatalf("--from=%s is on no volume", o.From)
	}
	bm, _ := mountFor(bc, baseDB)
	v, bv := volume(spec, m.Name), volume(&bd.Spec.Template.Spec, bm.Name)
	if v.PersistentVolumeClaim == nil || bv.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != bv.PersistentVolumeClaim.ClaimName {
		t.Errorf("--from is on volume %+v, want deploy/'s claim %+v", v.VolumeSource, bv.VolumeSource)
	}
	if spec.RestartPolicy != corev1.RestartPolicyNever && spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		t.Errorf("restartPolicy %q", spec.RestartPolicy)
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("security context %+v: want a read-only root and no escalation", sc)
	}
}

// checkMigrate runs the built aggregator's migrate subcommand: -h lists
// exactly migration.Options' flags, and a --to that is not a PostgreSQL
// URL is refused as a usage error (exit 2), saying so.
func checkMigrate(t *testing.T, bin string) {
	t.Helper()
	run := func(args ...string) (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	code, usage := run("migrate", "-h")
	var printed []string
	for _, m := range flagLine.FindAllStringSubmatch(usage, -1) {
		printed = append(printed, m[1])
	}
	var o migration.Options
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	o.AddFlags(fs)
	var defined []string
	fs.VisitAll(func(f *flag.Flag) { defined = append(defined, f.Name) })
	slices.Sort(printed)
	if code != 0 || !slices.Equal(printed, defined) {
		t.Errorf("aggregator migrate -h: exit %d, flags %v; want 0 and %v", code, printed, defined)
	}
	code, out := run("migrate", "--from=/nonexistent/oomwatch.db", "--to=/tmp/oomwatch.db")
	if code != 2 || !strings.Contains(out, "must be a PostgreSQL URL") {
		t.Errorf("aggregator migrate --to=<a file>: exit %d, %q; want 2 and why", code, out)
	}
}
