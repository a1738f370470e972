package main

import (
	"fmt"
	"log/slog"
	"os"
)

// runDir is dir, or a fresh temporary directory when dir is empty (the
// in-process networks of testnet and the experiments); cleanup removes only
// what runDir made.
func runDir(dir, prefix string) (_ string, cleanup func(), err error) {
	if dir != "" {
		return dir, func() {}, nil
	}
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, fmt.Errorf("temporary data directory: %w", err)
	}
	return d, func() { os.RemoveAll(d) }, nil
}

// nodeLogger is the CLI's logger with -v, else a silent one: an in-process
// network's nodes would otherwise drown the progress table.
func nodeLogger(env *cliEnv, verbose bool) *slog.Logger {
	if verbose {
		return env.log
	}
	return slog.New(slog.DiscardHandler)
}
