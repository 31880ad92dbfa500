package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newLogger builds the process's one root logger, writing to stderr.
func newLogger(level, format string) (*zap.Logger, error) {
	return newLoggerTo(level, format, "")
}

// logLevels are the names --log-level takes.
const logLevels = "debug, info, warn or error"

// checkLogFlags refuses a --log-level or --log-format we do not have,
// saying which we do.
func checkLogFlags(level, format string) error {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil || lvl < zapcore.DebugLevel || lvl > zapcore.ErrorLevel {
		return fmt.Errorf("--log-level: %q is not a level; use %s", level, logLevels)
	}
	if format != "console" && format != "json" {
		return fmt.Errorf("--log-format: %q is not console or json", format)
	}
	return nil
}

// newLoggerTo is newLogger writing to file (appended, created 0600) instead
// of stderr when file is not "".
func newLoggerTo(level, format, file string) (*zap.Logger, error) {
	if err := checkLogFlags(level, format); err != nil {
		return nil, err
	}
	lvl, _ := zapcore.ParseLevel(level)
	var cfg zap.Config
	switch format {
	case "console":
		cfg = zap.NewDevelopmentConfig()
		cfg.Development = false
		cfg.DisableStacktrace = true
		cfg.EncoderConfig.EncodeLevel = zapcore.CapitalLevelEncoder
		cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	case "json":
		cfg = zap.NewProductionConfig()
		cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.OutputPaths = []string{"stderr"}
	cfg.ErrorOutputPaths = []string{"stderr"}
	cfg.Sampling = nil
	if file == "" {
		return cfg.Build()
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return nil, fmt.Errorf("--log-file: %w", err)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--log-file: %w", err)
	}
	var enc zapcore.Encoder
	if format == "json" {
		enc = zapcore.NewJSONEncoder(cfg.EncoderConfig)
	} else {
		enc = zapcore.NewConsoleEncoder(cfg.EncoderConfig)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(f), cfg.Level), zap.ErrorOutput(zapcore.Lock(os.Stderr))), nil
}

// newCLILogger is the logger of a command-line verb (ls, import, check),
// read by a person at a terminal: in the console format a line is
// "modelstorefs: warning: MESSAGE {fields}", without the time, source
// position and logger name the daemon's log carries. Entries that shows
// refuses (about models nobody asked about) appear only at debug level;
// a nil shows keeps every entry.
func newCLILogger(level, format string, shows func(zapcore.Entry, logScope) bool) (*zap.Logger, error) {
	return newCLILoggerTo(zapcore.Lock(os.Stderr), level, format, shows)
}

func newCLILoggerTo(w zapcore.WriteSyncer, level, format string, shows func(zapcore.Entry, logScope) bool) (*zap.Logger, error) {
	if err := checkLogFlags(level, format); err != nil {
		return nil, err
	}
	lvl, _ := zapcore.ParseLevel(level)
	var enc zapcore.Encoder
	if format == "json" {
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
	} else {
		enc = zapcore.NewConsoleEncoder(zapcore.EncoderConfig{
			LevelKey: "level", MessageKey: "msg", ConsoleSeparator: " ",
			EncodeLevel: func(l zapcore.Level, pe zapcore.PrimitiveArrayEncoder) {
				pe.AppendString("modelstorefs: " + cliLevelName(l) + ":")
			},
			EncodeDuration: zapcore.StringDurationEncoder,
		})
	}
	var core zapcore.Core = zapcore.NewCore(enc, w, lvl)
	if shows != nil {
		core = &scopeCore{Core: core, shows: shows}
	}
	return zap.New(core, zap.ErrorOutput(zapcore.Lock(os.Stderr))), nil
}

// cliLevelName is a level as a command-line message says it.
func cliLevelName(l zapcore.Level) string {
	if l == zapcore.WarnLevel {
		return "warning"
	}
	return l.String()
}

// logScope is what a log entry is about: the "store" and "model" fields
// the catalog adds ("" when absent).
type logScope struct{ store, model string }

func (s logScope) with(fields []zapcore.Field) logScope {
	for _, f := range fields {
		if f.Type != zapcore.StringType {
			continue
		}
		switch f.Key {
		case "store":
			s.store = f.String
		case "model":
			s.model = f.String
		}
	}
	return s
}

// scopeCore passes on the entries shows accepts; the others go on at
// debug level, so --log-level debug still shows everything.
type scopeCore struct {
	zapcore.Core
	scope logScope // from With
	shows func(zapcore.Entry, logScope) bool
}

func (c *scopeCore) With(fields []zapcore.Field) zapcore.Core {
	return &scopeCore{Core: c.Core.With(fields), scope: c.scope.with(fields), shows: c.shows}
}

func (c *scopeCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *scopeCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	if c.shows(e, c.scope.with(fields)) {
		return c.Core.Write(e, fields)
	}
	if !c.Core.Enabled(zapcore.DebugLevel) {
		return nil
	}
	e.Level = zapcore.DebugLevel
	return c.Core.Write(e, fields)
}

// syncLogger flushes, ignoring the EINVAL/ENOTTY a console stderr gives.
func syncLogger(l *zap.Logger) {
	if err := l.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTTY) {
		fmt.Fprintln(os.Stderr, "modelstorefs: flushing logs:", err)
	}
}
