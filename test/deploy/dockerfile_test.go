package deploy

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oomwatch/oomwatch/test/e2e/vm"
)

// components are the binaries, each built from ./<name> and shipped in
// the image stage of the same name.
var components = []string{"agent", "aggregator", "oomctl"}

// goBuild is the build stage's `go build` command.
type goBuild struct {
	Args     []string          // after "go"
	Env      map[string]string // the stage's ENV
	OutDir   string            // -o, a directory
	Packages []string
}

// dockerfile parses the repository's Dockerfile.
func dockerfile(t *testing.T) []stage {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stages, err := parseDockerfile(f)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	return stages
}

func stageNamed(stages []stage, name string) (stage, bool) {
	for _, st := range stages {
		if st.Name == strings.ToLower(name) || strconv.Itoa(st.Index) == name {
			return st, true
		}
	}
	return stage{}, false
}

// buildCommand finds the build stage's `go build`, checking the layers
// around it: modules downloaded from go.mod and go.sum alone, before the
// source is copied.
func buildCommand(t *testing.T, st stage) goBuild {
	t.Helper()
	b := goBuild{Env: map[string]string{}}
	var found, modDownload, sourceCopied bool
	for _, in := range st.Body {
		switch in.Cmd {
		case "ENV":
			w, err := in.Words()
			if err != nil {
				t.Fatal(err)
			}
			for _, kv := range w {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("line %d: ENV %s: want KEY=value", in.Line, in.Rest)
				}
				b.Env[k] = v
			}
		case "COPY":
			w, _ := in.Words()
			switch {
			case slices.Equal(w, []string{"go.mod", "go.sum", "./"}):
				if sourceCopied {
					t.Errorf("line %d: go.mod and go.sum copied after the source", in.Line)
				}
			case slices.Equal(w, []string{".", "."}):
				if !modDownload {
					t.Errorf("line %d: the source is copied before `go mod download`: every change re-downloads the modules", in.Line)
				}
				sourceCopied = true
			}
		case "RUN":
			w, err := in.Words()
			if err != nil {
				t.Fatal(err)
			}
			if in.Exec != nil {
				w = in.Exec
			}
			switch {
			case slices.Equal(w, []string{"go", "mod", "download"}):
				modDownload = !sourceCopied
			case len(w) >= 2 && w[0] == "go" && w[1] == "build":
				if found {
					t.Errorf("line %d: a second go build", in.Line)
				}
				found = true
				if !sourceCopied {
					t.Errorf("line %d: go build before the source is copied", in.Line)
				}
				b.Args = w[1:]
				for i := 2; i < len(w); i++ {
					switch a := w[i]; {
					case a == "-o" && i+1 < len(w):
						i++
						b.OutDir = w[i]
					case strings.HasPrefix(a, "-o="):
						b.OutDir = strings.TrimPrefix(a, "-o=")
					case strings.HasPrefix(a, "./"):
						b.Packages = append(b.Packages, a)
					case strings.HasPrefix(a, "-"):
					default:
						t.Errorf("line %d: go build argument %q", in.Line, a)
					}
				}
			}
		}
	}
	if !found {
		t.Fatal("the build stage runs no go build")
	}
	if !modDownload {
		t.Error("the build stage has no `go mod download` layer between copying go.mod/go.sum and the source")
	}
	return b
}

// outputs returns what the build writes: /out/<name> for each package.
func (b goBuild) outputs() []string {
	var out []string
	for _, p := range b.Packages {
		out = append(out, path.Join(b.OutDir, path.Base(p)))
	}
	return out
}

func TestDockerfileStages(t *testing.T) {
	stages := dockerfile(t)
	var names []string
	for _, st := range stages {
		names = append(names, st.Name)
	}
	if want := append([]string{"build"}, components...); !slices.Equal(names, want) {
		t.Fatalf("stages %v, want %v", names, want)
	}
	build := stages[0]
	if !regexp.MustCompile(`^golang:1\.26(\.\d+)?$`).MatchString(build.Base) {
		t.Errorf("build stage FROM %s, want golang:1.26", build.Base)
	}
	b := buildCommand(t, build)
	if b.Env["CGO_ENABLED"] != "0" {
		t.Errorf("the build stage's ENV has CGO_ENABLED=%q, want 0 (static binaries)", b.Env["CGO_ENABLED"])
	}
	if !slices.Contains(b.Args, "-trimpath") {
		t.Errorf("go build %v: no -trimpath", b.Args)
	}
	// The Makefile's build tags (grpcnotrace keeps 3.5 MB out of the agent).
	if !slices.Contains(b.Args, "-tags="+vm.BuildTags) {
		t.Errorf("go build %v: no -tags=%s, the Makefile's", b.Args, vm.BuildTags)
	}
	if !strings.HasSuffix(b.OutDir, "/") {
		t.Errorf("go build -o %q: want a directory (ending in /) for several packages", b.OutDir)
	}
	var want []string
	for _, c := range components {
		want = append(want, "./"+c)
	}
	if !slices.Equal(b.Packages, want) {
		t.Errorf("go build builds %v, want exactly %v", b.Packages, want)
	}
	outputs := b.outputs()

	for _, st := range stages[1:] {
		t.Run(st.Name, func(t *testing.T) {
			bin := "/usr/local/bin/" + st.Name
			wantBase := "gcr.io/distroless/static-debian12:nonroot"
			if st.Name == "agent" {
				wantBase = "gcr.io/distroless/static-debian12:latest"
			}
			if st.Base != wantBase {
				t.Errorf("FROM %s, want %s", st.Base, wantBase)
			}
			var copied, entry bool
			var user string
			for _, in := range st.Body {
				switch in.Cmd {
				case "COPY", "ADD":
					from, ok := in.Flags["from"]
					src, ok2 := stageNamed(stages, from)
					if !ok || !ok2 || src.Index >= st.Index {
						t.Errorf("line %d: %s --from=%q: no earlier stage of that name", in.Line, in.Cmd, from)
						continue
					}
					w, _ := in.Words()
					if len(w) != 2 || !slices.Contains(outputs, w[0]) || path.Base(w[0]) != st.Name || w[1] != bin {
						t.Errorf("line %d: COPY %s: want %s/%s %s, a binary the build stage makes", in.Line, in.Rest, strings.TrimSuffix(b.OutDir, "/"), st.Name, bin)
						continue
					}
					copied = true
				case "ENTRYPOINT":
					if !slices.Equal(in.Exec, []string{bin}) {
						t.Errorf("line %d: ENTRYPOINT %s, want [%q] (exec form: the binary is PID 1 and gets SIGTERM)", in.Line, in.Rest, bin)
					}
					entry = true
				case "USER":
					user = in.Rest
				case "RUN":
					t.Errorf("line %d: RUN in a distroless stage (it has no shell)", in.Line)
				}
			}
			if !copied || !entry {
				t.Errorf("copies the binary: %v; has an ENTRYPOINT: %v", copied, entry)
			}
			uid, _, _ := strings.Cut(user, ":")
			n, err := strconv.Atoi(uid)
			switch {
			case err != nil:
				t.Errorf("USER %q: want a numeric user (the kubelet verifies runAsNonRoot only against numbers)", user)
			case st.Name == "agent" && n != 0:
				t.Errorf("USER %q: the agent runs as root (/dev/kmsg, other users' /proc)", user)
			case st.Name != "agent" && n == 0:
				t.Errorf("USER %q: %s runs as non-root", user, st.Name)
			}
		})
	}
}

// TestDockerfileBuild runs the build stage's go build here (no image can
// be built in CI), with the stage's environment, into a temporary
// directory; then checks the binaries are static, carry no build paths,
// and start.
func TestDockerfileBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the build stage is not run")
	}
	root := repoRoot(t)
	b := buildCommand(t, dockerfile(t)[0])
	out := t.TempDir()
	args := slices.Clone(b.Args)
	for i, a := range args {
		if a == b.OutDir {
			args[i] = out + "/"
		}
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = os.Environ()
	for k, v := range b.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, o)
	}

	for _, name := range components {
		t.Run(name, func(t *testing.T) {
			bin := filepath.Join(out, name)
			checkStatic(t, bin, stripped(args))
			data, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(data, []byte(root+"/")) {
				t.Errorf("the binary holds the build path %s (-trimpath)", root)
			}
			checkHelp(t, name, bin)
			if name == "aggregator" {
				checkMigrate(t, bin)
			}
		})
	}
}

// stripped reports whether go build's -ldflags include -s (no symbol
// table).
func stripped(args []string) bool {
	for i, a := range args {
		v, ok := strings.CutPrefix(a, "-ldflags=")
		if !ok && a == "-ldflags" && i+1 < len(args) {
			v, ok = args[i+1], true
		}
		if ok && slices.Contains(strings.Fields(v), "-s") {
			return true
		}
	}
	return false
}

// staticProblems returns why an ELF binary is not static (or, when
// stripped is set, not stripped of its symbol table).
func staticProblems(bin string, stripped bool) ([]string, error) {
	f, err := elf.Open(bin)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var problems []string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			problems = append(problems, "program header "+p.Type.String())
		}
	}
	for _, name := range []string{".interp", ".dynamic"} {
		if f.Section(name) != nil {
			problems = append(problems, "section "+name)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		problems = append(problems, "imports "+strings.Join(libs, ", "))
	}
	if stripped && f.Section(".symtab") != nil {
		problems = append(problems, "a symbol table despite -ldflags=-s")
	}
	return problems, nil
}

func checkStatic(t *testing.T, bin string, stripped bool) {
	t.Helper()
	problems, err := staticProblems(bin, stripped)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Errorf("%s is not a static binary: %s", bin, strings.Join(problems, "; "))
	}
}

// TestStaticProblems checks the check on the system's (dynamically
// linked) shell.
func TestStaticProblems(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	sh, _ = filepath.EvalSymlinks(sh)
	problems, err := staticProblems(sh, false)
	if err != nil {
		t.Skipf("%s: %v", sh, err)
	}
	if !slices.Contains(problems, "program header PT_INTERP") {
		t.Errorf("%s: problems %v, want PT_INTERP found", sh, problems)
	}
}

// flagLine matches a flag in the usage Go's flag package prints.
var flagLine = regexp.MustCompile(`(?m)^  -([a-zA-Z0-9][a-zA-Z0-9._-]*)`)

// checkHelp runs the binary with -h: oomctl prints its usage and exits 0;
// the agent and the aggregator print their flags (those of their Options,
// exactly) and exit 2, as Go's flag package does.
func checkHelp(t *testing.T, name, bin string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-h")
	cmd.Env = []string{"PATH=/usr/bin:/bin"} // no OOMWATCH_* from the test's environment
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	usage := stdout.String() + stderr.String()
	if name == "oomctl" {
		if code != 0 || !strings.Contains(usage, "analyze") {
			t.Errorf("oomctl -h: exit %d, want 0 with the commands listed:\n%s", code, usage)
		}
		return
	}
	if code != 0 {
		t.Errorf("%s -h: exit %d, want 0 (help asked for is no error, as oomctl's)", name, code)
	}
	var printed []string
	for _, m := range flagLine.FindAllStringSubmatch(usage, -1) {
		printed = append(printed, m[1])
	}
	fs, _ := binaries["oomwatch/"+name].flags()
	fs.SetOutput(io.Discard)
	var defined []string
	fs.VisitAll(func(f *flag.Flag) { defined = append(defined, f.Name) })
	slices.Sort(printed)
	if !slices.Equal(printed, defined) {
		t.Errorf("%s -h lists flags %v; its Options define %v", name, printed, defined)
	}
}
