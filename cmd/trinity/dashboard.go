package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/trinity-net/trinity/node"
)

// startStatus serves src's status endpoint (and dashboard, unless off) on
// addr until ctx ends, tracked by wg, and returns once the address is bound,
// so that callers print the URLs in order.
func startStatus(ctx context.Context, env *cliEnv, wg *sync.WaitGroup, addr string, src node.StatusSource, dashboard bool) (net.Addr, error) {
	bound := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		errc <- node.ServeStatus(ctx, addr, src, env.log, func(a net.Addr) { bound <- a }, node.WithDashboard(dashboard))
	}()
	select {
	case a := <-bound:
		return a, nil
	case err := <-errc:
		if err == nil {
			err = ctx.Err()
		}
		return nil, err
	}
}

// statusLine names the URLs of a status endpoint.
func statusLine(a net.Addr, dashboard bool) string {
	if dashboard {
		return fmt.Sprintf("dashboard http://%s/  status http://%s/status  metrics http://%s/metrics", a, a, a)
	}
	return fmt.Sprintf("status http://%s/status  metrics http://%s/metrics", a, a)
}

// nthAddr is host:port+i for a base address with a port, or the base itself
// for port 0 (any free port).
func nthAddr(base string, i int) (string, error) {
	host, port, err := net.SplitHostPort(base)
	if err != nil {
		return "", fmt.Errorf("--dashboard-addr %q: %w", base, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p+i > 65535 {
		return "", fmt.Errorf("--dashboard-addr %q: bad port", base)
	}
	if p == 0 {
		return base, nil
	}
	return net.JoinHostPort(host, strconv.Itoa(p+i)), nil
}

// serveTestnetStatus serves a status endpoint per testnet node (bootstrap,
// validators, trainers) and prints their URLs: with the dashboard, all of
// them; without, only the lead validator's, and only if --status names it.
func serveTestnetStatus(ctx context.Context, env *cliEnv, wg *sync.WaitGroup, tn *node.Testnet, status, base string, dashboard bool) error {
	srcs := tn.StatusSources()
	width := 0
	for _, ns := range srcs {
		width = max(width, len(ns.Name))
	}
	for i, ns := range srcs {
		lead := i == 1 // validator-0, after the bootstrap node
		addr, err := nthAddr(base, i)
		if err != nil {
			return err
		}
		switch {
		case lead && status != "":
			addr = status
		case !dashboard:
			continue
		}
		a, err := startStatus(ctx, env, wg, addr, ns.Source, dashboard)
		if err != nil {
			return fmt.Errorf("%s: %w", ns.Name, err)
		}
		fmt.Fprintf(env.stdout, "%-*s  %s\n", width, ns.Name, statusLine(a, dashboard))
	}
	return nil
}
