// Command trinity is the one binary of the trinity network: it trains and
// samples a model on one machine, runs the experiments that measure the
// protocol's pieces, and joins, validates or serves a network.
//
// Run `trinity help` for the list of commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand of the CLI.
type command struct {
	summary string
	run     func(ctx context.Context, env *cliEnv, args []string) error
}

// cliEnv is what a command may use of the process: its output streams and logger.
type cliEnv struct {
	stdout, stderr io.Writer
	log            *slog.Logger
}

func commands() map[string]command {
	return map[string]command{
		"train":        {"train a model on one machine (embedded default corpus or --data PATH)", runTrain},
		"generate":     {"sample text from a checkpoint", runGenerate},
		"experiment":   {"run a measurement experiment (sparseloco, grail)", runExperiment},
		"version":      {"print the version", runVersion},
		"verify-proof": {"check a GRAIL proof of generation against a checkpoint", runVerifyProof},
		"testnet":      {"run a whole network in one process on loopback (bootstrap, validator, trainers)", runTestnet},
		"join":         {"join a network as a trainer or rollout peer: trinity join --genesis FILE [--role rollout]", runJoin},
		"validate":     {"run a validator: trinity validate --genesis FILE --key FILE", runValidate},
		"bootstrap":    {"run a bootstrap and relay node for a network", runBootstrap},
		"genesis":      {"write a genesis file defining a network", runGenesis},
		"keygen":       {"create a peer key file and print its peer ID", runKeygen},
		"compute":      {"offer, list, attest and lease compute: trinity compute serve|list|run", runCompute},
	}
}

const version = "0.1.0-dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	env := &cliEnv{stdout: stdout, stderr: stderr,
		log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout, cmds)
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "trinity: unknown command %q\n\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	if err := c.run(ctx, env, args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if errors.Is(err, errUsage) {
			return 2
		}
		fmt.Fprintf(stderr, "trinity %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// errUsage marks a command-line mistake already reported by the flag set.
var errUsage = errors.New("usage")

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintf(w, "trinity %s: train a language model together over a peer-to-peer network\n\nUsage: trinity <command> [flags]\n\nCommands:\n", version)
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintf(w, "\nRun `trinity <command> -h` for a command's flags.\n")
}

// newFlags makes a flag set that reports errors instead of exiting.
func newFlags(env *cliEnv, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("trinity "+name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	return fs
}

// parse parses args, mapping flag errors to errUsage.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return errUsage
	}
	return nil
}

func runVersion(_ context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "version")
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "trinity %s\n", version)
	return nil
}
