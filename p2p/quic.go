package p2p

import (
	"context"
	"net"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/quic-go/quic-go"
)

// quicIdleTimeout is how long a QUIC connection may stay silent before it
// is dropped. quic-go's default of 30 s kept a SIGKILLed peer's connection
// (nothing closes it: there is no kernel to send a reset, as with TCP) and
// gossip went into it for that long. Keep-alives go out every half of it,
// so a healthy idle connection is never dropped. QUIC uses the smaller of
// both ends' timeouts; go-libp2p lets us set only the dialing side's, which
// every trinity peer advertises, so it holds in both directions.
const quicIdleTimeout = 10 * time.Second

// quicReuse builds go-libp2p's QUIC connection manager as its default
// constructor does (inbound connections accounted to the resource manager,
// source-address checks by it), with the shorter idle timeout. The manager
// is closed by Close: go-libp2p ties the default one to the host's
// lifetime, but not one we supply.
func (n *Node) quicReuse() libp2p.Option {
	return libp2p.QUICReuse(func(key quic.StatelessResetKey, tok quic.TokenGeneratorKey, rcmgr network.ResourceManager) (*quicreuse.ConnManager, error) {
		cm, err := quicreuse.NewConnManager(key, tok,
			quicreuse.ConnContext(func(ctx context.Context, ci *quic.ClientInfo) (context.Context, error) {
				addr, err := quicreuse.ToQuicMultiaddr(ci.RemoteAddr, quic.Version1)
				if err != nil {
					addr = nil // let the resource manager decide
				}
				scope, err := rcmgr.OpenConnection(network.DirInbound, false, addr)
				if err != nil {
					return ctx, err
				}
				ctx = network.WithConnManagementScope(ctx, scope)
				context.AfterFunc(ctx, scope.Done)
				return ctx, nil
			}),
			quicreuse.VerifySourceAddress(func(a net.Addr) bool { return rcmgr.VerifySourceAddress(a) }),
		)
		if err != nil {
			return nil, err
		}
		c := cm.ClientConfig()
		c.MaxIdleTimeout = quicIdleTimeout
		c.KeepAlivePeriod = quicIdleTimeout / 2
		n.quicCM = cm
		return cm, nil
	})
}
