package main

import (
	"bytes"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// TestCLILogger: a command-line verb's log lines carry no time, source
// position or logger name, and entries about models nobody asked about
// show only at debug level, whether the model comes with the entry or
// with the logger (With).
func TestCLILogger(t *testing.T) {
	asked := func(_ zapcore.Entry, s logScope) bool { return s.model == "" || s == logScope{"st", "lenet"} }
	tests := []struct {
		name  string
		level string
		log   func(*zap.Logger)
		want  string // "" for no output
	}{
		{"a warning about the asked model", "warn",
			func(l *zap.Logger) {
				l.Warn("model file left out", zap.String("store", "st"), zap.String("model", "lenet"))
			},
			`modelstorefs: warning: model file left out {"store": "st", "model": "lenet"}` + "\n"},
		{"a warning about another model", "warn",
			func(l *zap.Logger) {
				l.Warn("model cannot be imported", zap.String("store", "st"), zap.String("model", "broken"))
			}, ""},
		{"another model, scope from With", "warn",
			func(l *zap.Logger) {
				l.Named("catalog").With(zap.String("store", "st"), zap.String("model", "broken")).Error("x")
			}, ""},
		{"the same model name in another store", "warn",
			func(l *zap.Logger) { l.Warn("x", zap.String("store", "other"), zap.String("model", "lenet")) }, ""},
		{"asked model, scope from With, logger name dropped", "warn",
			func(l *zap.Logger) {
				l.Named("catalog").With(zap.String("store", "st"), zap.String("model", "lenet")).Error("failed")
			},
			`modelstorefs: error: failed {"store": "st", "model": "lenet"}` + "\n"},
		{"not about a model", "warn", func(l *zap.Logger) { l.Warn("store unreachable", zap.String("store", "st")) },
			`modelstorefs: warning: store unreachable {"store": "st"}` + "\n"},
		{"another model at debug level", "debug",
			func(l *zap.Logger) {
				l.Warn("model cannot be imported", zap.String("store", "st"), zap.String("model", "broken"))
			},
			`modelstorefs: debug: model cannot be imported {"store": "st", "model": "broken"}` + "\n"},
		{"below the level", "warn", func(l *zap.Logger) { l.Info("listed store", zap.String("store", "st")) }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			l, err := newCLILoggerTo(zapcore.AddSync(&buf), tc.level, "console", asked)
			if err != nil {
				t.Fatal(err)
			}
			tc.log(l)
			if got := buf.String(); got != tc.want {
				t.Errorf("logged %q\nwant   %q", got, tc.want)
			}
		})
	}
}

// TestLsShows: ls's log leaves out what its table and its own store lines
// say.
func TestLsShows(t *testing.T) {
	tests := []struct {
		level zapcore.Level
		scope logScope
		want  bool
	}{
		{zapcore.WarnLevel, logScope{"st", ""}, true},   // a stale listing served
		{zapcore.ErrorLevel, logScope{"st", ""}, false}, // ls says it failed itself
		{zapcore.WarnLevel, logScope{"st", "lenet"}, false},
	}
	for _, tc := range tests {
		if got := lsShows(zapcore.Entry{Level: tc.level}, tc.scope); got != tc.want {
			t.Errorf("lsShows(%v, %+v) = %v, want %v", tc.level, tc.scope, got, tc.want)
		}
	}
}

// TestCLILoggerJSON keeps the time for scripts that asked for JSON.
func TestCLILoggerJSON(t *testing.T) {
	var buf bytes.Buffer
	l, err := newCLILoggerTo(zapcore.AddSync(&buf), "warn", "json", nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Warn("x", zap.String("model", "m"))
	if out := buf.String(); !strings.Contains(out, `"ts":`) || !strings.Contains(out, `"model":"m"`) {
		t.Errorf("json log %q", out)
	}
}
