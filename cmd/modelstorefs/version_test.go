package main

import (
	"runtime/debug"
	"testing"
)

// TestBuildVersion: a binary built without -X main.version names a real
// version: the module's, else the commit, never "dev".
func TestBuildVersion(t *testing.T) {
	rev := "2b57dd8a1f3c9e0d4b5a6c7d8e9f0a1b2c3d4e5f"
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"go install module@version", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}}, "v1.2.0"},
		{"go build in a clone (pseudo-version)", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261206010000-2b57dd8a1f3c+dirty"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}}}, "v0.0.0-20261206010000-2b57dd8a1f3c+dirty"},
		{"devel with a commit", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "false"}}}, "git-2b57dd8a1f3c"},
		{"devel with uncommitted changes", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "true"}}}, "git-2b57dd8a1f3c-dirty"},
		{"no version information", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "unknown"},
		{"no build information", nil, "unknown"},
	}
	for _, tc := range tests {
		if got := buildVersion(tc.bi); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
