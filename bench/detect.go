package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/oomwatch/oomwatch/test/e2e/scenario"
	"github.com/oomwatch/oomwatch/test/e2e/vm"
)

// DetectScenarios are the e2e scenarios (test/e2e/scenario) the real-kernel
// rows run, one after the other in one guest: a container limit, a pod
// limit, two node-level kills and a memory.oom.group kill.
var DetectScenarios = []string{"container-limit", "pod-limit-sidecar", "node-besteffort-collateral", "node-system-service", "oom-group-docker"}

// DetectVM boots Debian's cloud kernel in qemu (test/e2e/vm), starts
// cmd/peerwatch (oomwatch's live path, cAdvisor and NPD reading the real
// /dev/kmsg side by side), runs DetectScenarios so that the kernel really
// kills, and adds one row per parser to t: which kills each found and what
// it could tell, scored against the kernel's own lines (KillsFromKmsg).
func DetectVM(ctx context.Context, cfg HookConfig, t *Table) error {
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", args...)
		}
	}
	assets, err := vm.EnsureAssets(ctx, logf)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "oomwatch-bench-vm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logf("detect-vm: building hog and peerwatch")
	hog, err := buildStatic(ctx, cfg.RepoRoot, dir, "./test/e2e/hog")
	if err != nil {
		return err
	}
	peerwatch, err := buildStatic(ctx, filepath.Join(cfg.RepoRoot, "bench"), dir, "./cmd/peerwatch")
	if err != nil {
		return err
	}
	script, err := detectScript()
	if err != nil {
		return err
	}
	logf("detect-vm: booting %s with %d scenarios", assets.KernelPackage, len(DetectScenarios))
	res, err := vm.Run(ctx, vm.Config{
		Assets: assets,
		Files: map[string]vm.File{
			"/bin/hog":       {HostPath: hog},
			"/bin/peerwatch": {HostPath: peerwatch},
		},
		Script: script,
		// A log buffer that holds every report, so the dump read at the
		// end (the truth) is whole.
		Cmdline:  []string{"log_buf_len=4M"},
		MemoryMB: 256,
		CPUs:     2,
		Timeout:  10 * time.Minute,
	})
	if res != nil {
		saveArtifacts(cfg.ArtifactDir, "detect-vm", res, logf)
	}
	if err != nil {
		return err
	}
	raw, err := res.File("findings.json")
	if err != nil {
		return err
	}
	dump, err := res.File("kmsg")
	if err != nil {
		return err
	}
	var lr LiveResult
	if err := json.Unmarshal(raw, &lr); err != nil {
		return fmt.Errorf("findings.json: %w", err)
	}
	kills := KillsFromKmsg(dump)
	input := fmt.Sprintf("real 6.1 kernel, %d scenarios", len(DetectScenarios))
	for _, name := range []string{OomwatchLive{}.Name(), CAdvisor{}.Name(), npdLiveName} {
		f, ok := lr.Findings[name]
		var err error
		if !ok {
			err = fmt.Errorf("no findings from the guest")
		}
		t.AddScoredRow(input, name, name == OomwatchLive{}.Name(), ScoreFindings(kills, f), err)
	}
	t.Notes = append(t.Notes, fmt.Sprintf("%s: %s in qemu -accel tcg (guest 256 MiB, 2 CPUs), scenarios %s of test/e2e/scenario; the three parsers read /dev/kmsg live and concurrently; truth from the kernel's own kill and oom-kill: lines (bench.KillsFromKmsg); records lost to log overwrites: %d",
		input, assets.KernelPackage, strings.Join(DetectScenarios, ", "), lr.Lost))
	return nil
}

// detectScript is the guest script of DetectVM.
func detectScript() (string, error) {
	byName := map[string]scenario.Scenario{}
	for _, sc := range scenario.All() {
		byName[sc.Name] = sc
	}
	var b strings.Builder
	b.WriteString(scenario.Helpers)
	b.WriteString(`
peerwatch -out /tmp/findings.json -stop /tmp/stop >/tmp/peerwatch.log 2>&1 &
sleep 2
`)
	for _, name := range DetectScenarios {
		sc, ok := byName[name]
		if !ok {
			return "", fmt.Errorf("no e2e scenario %q", name)
		}
		fmt.Fprintf(&b, "echo '== scenario %s'\n(\n%s\n)\n", name, sc.Script)
		// Leftover holders would skew the next scenario.
		b.WriteString("killall -9 hog 2>/dev/null; sleep 1\n")
	}
	b.WriteString(`
# Let the readers catch up, then collect.
sleep 3
touch /tmp/stop
waitfile /tmp/findings.json
hog -dump-kmsg /tmp/kmsg
export_file findings.json /tmp/findings.json
export_file kmsg /tmp/kmsg
export_file peerwatch.log /tmp/peerwatch.log
`)
	return b.String(), nil
}

// buildStatic builds the main package pkg of the module in moduleDir as a
// static binary into outDir, with oomwatch's build tags.
func buildStatic(ctx context.Context, moduleDir, outDir, pkg string) (string, error) {
	out := filepath.Join(outDir, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", vm.BuildTags, "-trimpath", "-o", out, pkg)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w: %s", pkg, err, b)
	}
	return out, nil
}

// saveArtifacts keeps a guest's console and exports under dir/name, when
// dir is set.
func saveArtifacts(dir, name string, res *vm.Result, logf func(string, ...any)) {
	if dir == "" {
		return
	}
	d := filepath.Join(dir, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		logf("artifacts: %v", err)
		return
	}
	_ = os.WriteFile(filepath.Join(d, "console.txt"), res.Console, 0o644)
	for _, f := range res.FileNames() {
		if b, err := res.File(f); err == nil {
			_ = os.WriteFile(filepath.Join(d, f), b, 0o644)
		}
	}
	logf("%s: artifacts in %s", name, d)
}
