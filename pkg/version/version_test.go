package version

import (
	"runtime/debug"
	"testing"
)

func TestDescribe(t *testing.T) {
	info := func(settings ...debug.BuildSetting) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) { return &debug.BuildInfo{Settings: settings}, true }
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	for _, tc := range []struct {
		v    string
		info func() (*debug.BuildInfo, bool)
		want string
	}{
		{"v0.4.0", info(debug.BuildSetting{Key: "vcs.revision", Value: "2c2d047abcdef0123"}), "v0.4.0"},
		{"dev", info(debug.BuildSetting{Key: "vcs.revision", Value: "2c2d047abcdef0123"}), "dev (2c2d047abcde)"},
		{"dev", info(debug.BuildSetting{Key: "vcs.revision", Value: "2c2d047"}, debug.BuildSetting{Key: "vcs.modified", Value: "true"}), "dev (2c2d047, modified)"},
		{"dev", info(), "dev"},
		{"dev", none, "dev"},
	} {
		if got := describe(tc.v, tc.info); got != tc.want {
			t.Errorf("describe(%q) = %q, want %q", tc.v, got, tc.want)
		}
	}
	if String() == "" {
		t.Error("no version")
	}
}
