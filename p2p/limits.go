package p2p

import (
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
)

// newResourceManager builds libp2p's resource manager from libp2p's scaled
// defaults, capped at the system level by our explicit Limits, so that the
// per-peer and per-protocol ceilings stay proportionate.
func newResourceManager(l Limits) (network.ResourceManager, error) {
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	base := scaling.Scale(l.MaxMemory, l.MaxFDs)
	sys := rcmgr.ResourceLimits{
		Conns:           rcmgr.LimitVal(l.MaxConns),
		ConnsInbound:    rcmgr.LimitVal(max(l.MaxConns/2, 1)),
		ConnsOutbound:   rcmgr.LimitVal(l.MaxConns),
		Streams:         rcmgr.LimitVal(l.MaxStreams),
		StreamsInbound:  rcmgr.LimitVal(max(l.MaxStreams/2, 1)),
		StreamsOutbound: rcmgr.LimitVal(l.MaxStreams),
		FD:              rcmgr.LimitVal(l.MaxFDs),
		Memory:          rcmgr.LimitVal64(l.MaxMemory),
	}
	partial := rcmgr.PartialLimitConfig{System: sys, Transient: rcmgr.ResourceLimits{
		Conns:   rcmgr.LimitVal(max(l.MaxConns/4, 1)),
		Streams: rcmgr.LimitVal(max(l.MaxStreams/4, 1)),
		FD:      rcmgr.LimitVal(max(l.MaxFDs/4, 1)),
		Memory:  rcmgr.LimitVal64(max(l.MaxMemory/4, 1)),
	}}
	mgr, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(partial.Build(base)))
	if err != nil {
		return nil, fmt.Errorf("p2p: building resource manager: %w", err)
	}
	return mgr, nil
}

func newConnManager(low, high int) (*connmgr.BasicConnMgr, error) {
	cm, err := connmgr.NewConnManager(low, high, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("p2p: building connection manager: %w", err)
	}
	return cm, nil
}
