package p2p

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	msmux "github.com/multiformats/go-multistream"
)

// staleProbeTimeout bounds the ping that tells a live older connection
// from one whose peer process is gone.
const staleProbeTimeout = 5 * time.Second

// watchStaleConns handles a peer that was killed and restarted with the
// same identity: it connects again while we still hold its previous
// connection, which over QUIC nothing closes before the idle timeout.
// Gossipsub keeps writing into that connection's stream, and when the
// connection finally dies it forgets the peer's subscriptions although the
// new connection is up, so the restarted peer would hear nothing. So when
// a peer connects while older connections to it are open, those are
// pinged; if one does not answer, every connection to the peer is closed
// and, once gossipsub has let the peer go, it is dialed again, so that
// both sides start from a clean state.
func (n *Node) watchStaleConns() {
	n.host.Network().Notify(&network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		if c.Stat().Limited {
			return // relayed: the direct connection that follows is what counts
		}
		p := c.RemotePeer()
		n.staleMu.Lock()
		defer n.staleMu.Unlock()
		if n.probing[p] || len(n.olderConns(c)) == 0 {
			return
		}
		n.probing[p] = true
		n.spawn(func() {
			defer func() {
				n.staleMu.Lock()
				delete(n.probing, p)
				n.staleMu.Unlock()
			}()
			n.checkStale(c)
		})
	}})
}

// olderConns returns the other direct connections to c's peer opened
// before c.
func (n *Node) olderConns(c network.Conn) []network.Conn {
	var out []network.Conn
	for _, o := range n.host.Network().ConnsToPeer(c.RemotePeer()) {
		if o != c && !o.Stat().Limited && o.Stat().Opened.Before(c.Stat().Opened) {
			out = append(out, o)
		}
	}
	return out
}

func (n *Node) checkStale(c network.Conn) {
	p := c.RemotePeer()
	stale := false
	for _, o := range n.olderConns(c) {
		if err := n.deadNextTo(o, c); err != nil {
			n.log.Info("closing a stale connection: the peer reconnected and the old connection does not answer",
				"peer", p, "addr", o.RemoteMultiaddr(), "err", err)
			stale = true
		}
	}
	if !stale {
		return
	}
	if err := n.host.Network().ClosePeer(p); err != nil {
		n.log.Debug("closing connections", "peer", p, "err", err)
	}
	// Redial only after gossipsub has dropped the peer: reconnecting
	// earlier would look like one more duplicate connection to it.
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for slices.Contains(n.ps.ListPeers(""), p) {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
	}
	ctx, cancel := context.WithTimeout(n.ctx, dialTimeout)
	defer cancel()
	if err := n.host.Connect(ctx, peer.AddrInfo{ID: p}); err != nil && n.ctx.Err() == nil {
		n.log.Info("redialing a restarted peer", "peer", p, "err", err)
	}
}

// deadNextTo returns why old is dead, or nil. It calls old dead only when cur answers a ping and old then
// does not within staleProbeTimeout or twenty times cur's round trip
// (and was not closed by the peer),
// whichever is longer: a slow machine or link slows both, and must not get
// a live connection closed.
func (n *Node) deadNextTo(old, cur network.Conn) error {
	start := time.Now()
	if probeConn(n.ctx, cur, staleProbeTimeout) != nil {
		return nil // the peer does not answer on the new one either
	}
	rtt := time.Since(start)
	err := probeConn(n.ctx, old, max(staleProbeTimeout, 20*rtt))
	// A connection the peer closed itself (a fetcher that hung up and
	// dialed again) says the peer is alive; closing every connection to it
	// would cut the new one's transfers. A restarted peer cannot close the
	// old connection: it is silent, or answers with a stateless reset.
	var hungUp *network.ConnError
	if errors.As(err, &hungUp) && hungUp.Remote || n.ctx.Err() != nil {
		return nil
	}
	return err
}

// probeConn runs one libp2p ping over c itself (not whichever connection
// the host would pick).
func probeConn(ctx context.Context, c network.Conn, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := c.NewStream(ctx)
	if err != nil {
		return fmt.Errorf("opening a stream: %w", err)
	}
	defer s.Reset()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	_ = s.SetDeadline(time.Now().Add(timeout))
	if err := msmux.SelectProtoOrFail(ping.ID, s); err != nil {
		return fmt.Errorf("negotiating ping: %w", err)
	}
	if err := s.SetProtocol(ping.ID); err != nil {
		return err
	}
	var out, in [ping.PingSize]byte
	_, _ = rand.Read(out[:])
	if _, err := s.Write(out[:]); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	if _, err := io.ReadFull(s, in[:]); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	if !bytes.Equal(in[:], out[:]) {
		return errors.New("ping: wrong echo")
	}
	return nil
}
