package cache

import (
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/modelstorefs/modelstorefs/digits"
	"github.com/modelstorefs/modelstorefs/internal/storetest"
	"github.com/modelstorefs/modelstorefs/internal/testutil"
	"github.com/modelstorefs/modelstorefs/remote/remotetest"
)

// TestRefusedNamesLogOnce: the names a listing refuses are logged as one
// line per listing, with their count and a few harmless examples, however
// many there are.
func TestRefusedNamesLogOnce(t *testing.T) {
	many := func(n int) []string {
		names := []string{"bad\x1b]0;owned\x07\x1b[2J", "line\nbreak"}
		for i := len(names); i < n; i++ {
			names = append(names, fmt.Sprintf("../up%d", i))
		}
		return names
	}
	tests := []struct {
		name      string
		refused   []string // the store's names besides lenet
		wantLines int
	}{
		{"none", nil, 0},
		{"one", []string{".."}, 1},
		{"a reserved name", []string{"models.tsv"}, 1},
		{"many, with control characters", many(5000), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string][]byte{
				"master.json":     remotetest.MasterJSON("hi", append([]string{"lenet"}, tt.refused...)...),
				"lenet/info.json": []byte("{}"),
			}
			core, logs := observer.New(zapcore.DebugLevel)
			e := newEnv(t, storetest.NewServer(t, files, remotetest.Options{}), Config{Logger: zap.New(core)})
			l, err := e.cat.Listing(testutil.Ctx(t), e.st)
			if err != nil {
				t.Fatal(err)
			}
			if len(l.Models) != 1 {
				t.Errorf("models %q, want lenet alone", l.Models)
			}
			lines := logs.FilterMessage("model names refused").All()
			if len(lines) != tt.wantLines {
				t.Fatalf("%d lines about refused names, want %d", len(lines), tt.wantLines)
			}
			// Nor any other line per name (the prefetch of lenet may warn).
			refusals := logs.Filter(func(e observer.LoggedEntry) bool { return strings.Contains(e.Message, "refused") })
			if refusals.Len() != tt.wantLines {
				t.Errorf("%d lines about refusals in all, want %d", refusals.Len(), tt.wantLines)
			}
			if tt.wantLines == 0 {
				return
			}
			fields := lines[0].ContextMap()
			if got := fields["count"]; got != int64(len(tt.refused)) {
				t.Errorf("count %v, want %d", got, len(tt.refused))
			}
			examples, _ := fields["examples"].([]any)
			if want := min(len(tt.refused), 3); len(examples) != want {
				t.Errorf("examples %q, want %d", examples, want)
			}
			for _, ex := range examples {
				if s := fmt.Sprint(ex); digits.HasControl(s, "") {
					t.Errorf("example %q holds control characters", s)
				}
			}
		})
	}
}
