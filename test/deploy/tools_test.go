package deploy

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/oomwatch/oomwatch/test/apt"
)

// envSkip is the switch of `make test-unit`: nothing built or installed.
const envSkip = "OOMWATCH_SKIP_SYSTEM_TESTS"

var (
	kubectlOnce sync.Once
	kubectlPath string
	kubectlErr  error
)

// kubectl returns the kubectl that checks the kustomizations: the one
// tools/kube/build.sh builds at the version the project's cluster runs
// (`make test` builds it first, as root, so this finds it at once), else
// the one in PATH. The test is skipped only when neither can be had: not
// root, or OOMWATCH_SKIP_SYSTEM_TESTS=1, and none installed.
func kubectl(t *testing.T) string {
	t.Helper()
	kubectlOnce.Do(func() {
		if os.Geteuid() == 0 && os.Getenv(envSkip) != "1" {
			out, err := exec.Command(filepath.Join(repoRoot(t), "tools", "kube", "build.sh")).Output()
			if err != nil {
				kubectlErr = errors.New("tools/kube/build.sh: " + err.Error() + "\n" + stderrOf(err))
				return
			}
			kubectlPath = filepath.Join(strings.TrimSpace(string(out)), "kubectl")
			return
		}
		kubectlPath, kubectlErr = exec.LookPath("kubectl")
	})
	if errors.Is(kubectlErr, exec.ErrNotFound) {
		t.Skip("kubectl not installed, and building it needs root (and no " + envSkip + "=1): the kustomization is not checked")
	}
	if kubectlErr != nil {
		t.Fatal(kubectlErr)
	}
	return kubectlPath
}

// needOpenSSL makes sure openssl, which deploy/gen-certs.sh runs, is
// installed: as root it installs Debian's package when missing, and
// otherwise skips the test.
func needOpenSSL(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err == nil {
		return
	}
	if os.Geteuid() != 0 || os.Getenv(envSkip) == "1" {
		t.Skip("openssl not installed (installing it needs root): deploy/gen-certs.sh not run")
	}
	if err := apt.Install(context.Background(), "openssl"); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatalf("apt-get installed openssl, but: %v", err)
	}
}
