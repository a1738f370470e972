package main

import (
	"context"
	"fmt"
)

func runExperiment(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("name an experiment: sparseloco or grail")
	}
	return fmt.Errorf("unknown experiment %q", args[0])
}
