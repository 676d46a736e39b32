// Package version says which oomwatch a binary is: the release it was
// built as (set by the build with -ldflags "-X
// github.com/oomwatch/oomwatch/pkg/version.Version=v0.4.0"), else "dev"
// with the commit Go recorded from the source checkout.
package version

import (
	"runtime/debug"
	"sync"
)

// Version is the release, set at build time; "dev" for a build of a
// checkout.
var Version = "dev"

var (
	once sync.Once
	full string
)

// String is the version to show: the release, or "dev (<commit>[,
// modified])" when Go recorded the commit the binary was built from.
func String() string {
	once.Do(func() { full = describe(Version, debug.ReadBuildInfo) })
	return full
}

func describe(v string, info func() (*debug.BuildInfo, bool)) string {
	if v != "dev" {
		return v
	}
	bi, ok := info()
	if !ok {
		return v
	}
	rev, modified := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return v
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified {
		rev += ", modified"
	}
	return v + " (" + rev + ")"
}
