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

// syncLogger flushes, ignoring the EINVAL/ENOTTY a console stderr gives.
func syncLogger(l *zap.Logger) {
	if err := l.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTTY) {
		fmt.Fprintln(os.Stderr, "modelstorefs: flushing logs:", err)
	}
}
