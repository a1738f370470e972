package p2p

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/klauspost/compress/zstd"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// Node is a trinity peer: a libp2p host with the network's gossip topics,
// private DHT and blob exchange. All methods are safe for concurrent use.
type Node struct {
	cfg  Config
	log  *slog.Logger
	key  crypto.PrivKey
	now  func() time.Time
	host host.Host
	dht  *dht.IpfsDHT
	// quicCM is the QUIC connection manager we built (quicReuse); Close
	// closes it after the host.
	quicCM io.Closer
	// noiseFirst prefers Noise over TLS (benchmarks compare the two).
	noiseFirst bool
	// plainTLS skips batchedTLS (benchmarks compare the two).
	plainTLS bool
	ps       *pubsub.PubSub

	store     *Store
	bw        *bandwidth // see bandwidth.go
	zenc      *zstd.Encoder
	serveSem  chan struct{}
	serveBufs sync.Pool // *[]byte of serveChunk bytes
	fetchMu   sync.Mutex
	fetching  map[cid.Cid]*fetchCall

	topics      map[Topic]*pubsub.Topic
	roundWindow RoundWindowFunc
	valMu       sync.RWMutex
	validators  map[Topic]ValidatorFunc

	staleMu sync.Mutex
	probing map[peer.ID]bool // peers whose older connections are being pinged

	reach    atomic.Int32
	hostRef  relayHost
	scoresMu sync.Mutex
	scores   map[peer.ID]float64

	// listening is set once libp2p.New has returned, i.e. the host
	// listens; until then nothing may dial (dhtBootstrapPeers).
	listening atomic.Bool

	provMu      sync.Mutex
	unprovided  map[cid.Cid]bool
	bootstrap   []peer.AddrInfo
	staticRelay []peer.AddrInfo
	mdns        mdns.Service

	ctx       context.Context // lives until Close
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	goMu      sync.Mutex
	closed    bool
	closeOnce sync.Once
	closeErr  error
}

// New starts a node. ctx bounds only the start-up; the node runs until
// Close.
func New(ctx context.Context, cfg Config, opts ...Option) (_ *Node, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	o := options{logger: slog.Default(), scoreInspect: time.Second, now: time.Now}
	for _, f := range opts {
		if err := f(&o); err != nil {
			return nil, err
		}
	}
	key := o.identity
	if key == nil {
		if key, err = LoadOrCreateIdentity(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	bootstrap, err := parseAddrInfos(cfg.Bootstrap)
	if err != nil {
		return nil, fmt.Errorf("p2p: config: Bootstrap: %w", err)
	}
	relays, err := parseAddrInfos(cfg.Relays)
	if err != nil {
		return nil, fmt.Errorf("p2p: config: Relays: %w", err)
	}
	store, err := OpenStore(filepath.Join(cfg.DataDir, "blobs"), cfg.MaxBlobSize, cfg.MaxStoreBytes)
	if err != nil {
		return nil, err
	}
	zenc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("p2p: zstd encoder: %w", err)
	}

	n := &Node{
		cfg: cfg, log: o.logger.With("peer", ""), key: key, now: o.now,
		store: store, zenc: zenc, serveSem: make(chan struct{}, maxConcurrentServes),
		fetching: make(map[cid.Cid]*fetchCall), topics: make(map[Topic]*pubsub.Topic),
		roundWindow: o.roundWindow, validators: make(map[Topic]ValidatorFunc),
		scores: make(map[peer.ID]float64), unprovided: make(map[cid.Cid]bool), probing: make(map[peer.ID]bool),
		bootstrap: bootstrap, staticRelay: relays, noiseFirst: o.noiseFirst, plainTLS: o.plainTLS,
	}
	n.serveBufs.New = func() any { b := make([]byte, serveChunk); return &b }
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			_ = n.Close()
		}
	}()

	if err := n.startHost(); err != nil {
		return nil, err
	}
	n.log = o.logger.With("peer", n.host.ID().String())
	if err := n.startPubSub(o.scoreInspect); err != nil {
		return nil, err
	}
	n.host.SetStreamHandler(cfg.NetworkID.BlobProtocol(), n.handleBlob)
	n.watchStaleConns()
	if err := n.startDiscovery(ctx); err != nil {
		return nil, err
	}
	n.spawn(n.provideLoop)
	return n, nil
}

// securityOptions offers TLS and Noise, TLS first: AES-GCM (AES-NI) costs
// less CPU per byte than Noise's ChaCha20-Poly1305, which matters for bulk
// blobs (BenchmarkBlobFetch measures both); peers that only speak Noise
// still connect.
func (n *Node) securityOptions() []libp2p.Option {
	tls := libp2p.Security(libp2ptls.ID, newBatchedTLS)
	if n.plainTLS {
		tls = libp2p.Security(libp2ptls.ID, libp2ptls.New)
	}
	nz := libp2p.Security(noise.ID, noise.New)
	if n.noiseFirst {
		return []libp2p.Option{nz, tls}
	}
	return []libp2p.Option{tls, nz}
}

func (n *Node) startHost() error {
	cfg := n.cfg
	rm, err := newResourceManager(cfg.Limits)
	if err != nil {
		return err
	}
	cm, err := newConnManager(cfg.ConnLow, cfg.ConnHigh)
	if err != nil {
		_ = rm.Close()
		return err
	}
	lopts := []libp2p.Option{
		libp2p.Identity(n.key),
		libp2p.ListenAddrStrings(cfg.ListenAddrs...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		n.quicReuse(),
		libp2p.DefaultMuxers,
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.UserAgent(cfg.UserAgent),
		libp2p.ProtocolVersion(string(cfg.NetworkID.protocolPrefix()) + "/1.0.0"),
		libp2p.DisableMetrics(),
		n.bandwidthOption(),
		libp2p.Routing(func(h host.Host) (routing.PeerRouting, error) {
			d, err := n.newDHT(h)
			n.dht = d
			return d, err
		}),
	}
	lopts = append(lopts, n.securityOptions()...)
	lopts = append(lopts, n.natOptions()...)
	h, err := libp2p.New(lopts...)
	if err != nil {
		// libp2p.New closes what it built, but not the managers we handed it
		// when it fails before taking ownership.
		_ = cm.Close()
		_ = rm.Close()
		if n.quicCM != nil {
			_ = n.quicCM.Close()
			n.quicCM = nil
		}
		if n.dht != nil {
			_ = n.dht.Close()
			n.dht = nil
		}
		return fmt.Errorf("p2p: starting libp2p host: %w", err)
	}
	n.host = h
	n.listening.Store(true)
	return n.watchReachability()
}

// Close stops the node and waits for its goroutines. It is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.goMu.Lock()
		n.closed = true
		n.goMu.Unlock()
		n.cancel()
		var errs []error
		if n.mdns != nil {
			errs = append(errs, n.mdns.Close())
		}
		n.wg.Wait()
		if n.host != nil {
			n.host.RemoveStreamHandler(n.cfg.NetworkID.BlobProtocol())
		}
		if n.dht != nil {
			errs = append(errs, n.dht.Close())
		}
		if n.host != nil {
			errs = append(errs, n.host.Close())
		}
		if n.quicCM != nil {
			errs = append(errs, n.quicCM.Close())
		}
		if n.zenc != nil {
			errs = append(errs, n.zenc.Close())
		}
		if err := errors.Join(errs...); err != nil {
			n.closeErr = fmt.Errorf("p2p: closing node: %w", err)
		}
	})
	return n.closeErr
}

// ID returns the node's peer ID.
func (n *Node) ID() peer.ID { return n.host.ID() }

// Addrs returns the node's listen addresses, each ending in /p2p/<id>,
// ready to hand to another node's Config.Bootstrap.
func (n *Node) Addrs() []ma.Multiaddr {
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()})
	if err != nil {
		return nil
	}
	return addrs
}

// AddrInfo returns the node's ID and addresses.
func (n *Node) AddrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()}
}

// Peers returns the peers with an open connection.
func (n *Node) Peers() []peer.ID { return n.host.Network().Peers() }

// Connect dials a peer.
func (n *Node) Connect(ctx context.Context, ai peer.AddrInfo) error {
	if err := n.host.Connect(ctx, ai); err != nil {
		return fmt.Errorf("p2p: connecting to %s: %w", ai.ID, err)
	}
	return nil
}

// Host exposes the libp2p host for protocols layered on top (status
// probes, tests). Callers must not close it.
func (n *Node) Host() host.Host { return n.host }

// Connectedness reports the state of the connection to p.
func (n *Node) Connectedness(p peer.ID) network.Connectedness {
	return n.host.Network().Connectedness(p)
}

func parseAddrInfos(ss []string) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	for _, s := range ss {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		ai, err := peer.AddrInfoFromP2pAddr(m)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		out = append(out, *ai)
	}
	// Several addresses of one peer become one AddrInfo.
	return peer.AddrInfosFromP2pAddrs(func() []ma.Multiaddr {
		var ms []ma.Multiaddr
		for _, ai := range out {
			a, _ := peer.AddrInfoToP2pAddrs(&ai)
			ms = append(ms, a...)
		}
		return ms
	}()...)
}
