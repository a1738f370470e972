package p2p

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	ma "github.com/multiformats/go-multiaddr"
)

// DHTMode selects the Kademlia mode.
type DHTMode int

const (
	// DHTAuto serves the DHT once AutoNAT finds the node publicly reachable
	// and stays a client otherwise.
	DHTAuto DHTMode = iota
	// DHTServer always serves (bootstrap nodes, LAN testnets).
	DHTServer
	// DHTClient never serves.
	DHTClient
)

// Limits are the resource manager's explicit ceilings for the whole node.
type Limits struct {
	MaxMemory  int64 // bytes the libp2p stack may reserve (stream buffers, muxers)
	MaxFDs     int   // file descriptors for connections
	MaxConns   int   // connections, both directions
	MaxStreams int   // streams, both directions
}

// Config is the plain-data configuration of a Node. The zero value plus a
// NetworkID and a DataDir is a working configuration.
type Config struct {
	// NetworkID namespaces protocols, topics and the DHT. Required.
	NetworkID NetworkID
	// DataDir holds identity.key and blobs/. Required.
	DataDir string
	// ListenAddrs defaults to TCP and QUIC on all interfaces, port 4001.
	ListenAddrs []string
	// Bootstrap peers as multiaddrs ending in /p2p/<id>.
	Bootstrap []string
	// MDNS enables LAN discovery; local testnets turn it on.
	MDNS bool
	// DHTMode defaults to DHTAuto.
	DHTMode DHTMode
	// Relays are static circuit relay v2 servers (multiaddrs with /p2p/).
	// When empty, relays are discovered among connected peers.
	Relays []string
	// RelayService makes this node a relay for others (bootstrap nodes).
	RelayService bool
	// NATPortMap asks the gateway for a port mapping (UPnP / NAT-PMP).
	NATPortMap bool
	// ForceReachability skips AutoNAT when not ReachabilityUnknown.
	ForceReachability Reachability
	// UserAgent defaults to "trinity".
	UserAgent string

	// ConnLow and ConnHigh are the connection manager's watermarks.
	ConnLow, ConnHigh int
	// Limits: zero fields take DefaultLimits()' values.
	Limits Limits

	// MaxMessageSize bounds a gossip message (encoded envelope); default 1 MiB.
	MaxMessageSize int
	// MaxClockSkew is how far in the future an envelope may be stamped, and
	// MaxMessageAge how far in the past; defaults 2 minutes and 1 hour.
	MaxClockSkew, MaxMessageAge time.Duration
	// ExtraTopics are topics beyond the four built-in ones.
	ExtraTopics []Topic

	// MaxBlobSize bounds one blob (default 256 MiB) and MaxStoreBytes the
	// whole store (default 8 GiB).
	MaxBlobSize, MaxStoreBytes int64
	// Compress offers zstd on the wire when it saves at least 1/16.
	Compress bool
	// HeaderTimeout bounds connecting, sending a request and receiving the
	// response header (default 10 s); MinFetchRate is the slowest transfer
	// accepted after that (default 256 KiB/s), so a slow-loris server is cut
	// off at HeaderTimeout + size/MinFetchRate.
	HeaderTimeout time.Duration
	MinFetchRate  int64
	// FetchParallelism is how many providers are fetched from at once when
	// the hinted peers fail (default 3).
	FetchParallelism int
	// DisableProvideFetched stops a node from providing the blobs it
	// fetched; by default it does, which spreads load off the first provider.
	DisableProvideFetched bool
}

// DefaultLimits returns the resource limits used when Config.Limits is zero.
func DefaultLimits() Limits {
	return Limits{MaxMemory: 1 << 30, MaxFDs: 512, MaxConns: 256, MaxStreams: 2048}
}

// Defaults used by withDefaults.
const (
	defaultMaxMessageSize = 1 << 20
	defaultMaxBlobSize    = 256 << 20
	defaultMaxStore       = 8 << 30
	defaultHeaderTimeout  = 10 * time.Second
	defaultMinFetchRate   = 256 << 10
	defaultParallelism    = 3
	defaultConnLow        = 64
	defaultConnHigh       = 192
)

func (c Config) withDefaults() Config {
	if len(c.ListenAddrs) == 0 {
		c.ListenAddrs = []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"}
	}
	if c.UserAgent == "" {
		c.UserAgent = "trinity"
	}
	if c.ConnLow == 0 && c.ConnHigh == 0 {
		c.ConnLow, c.ConnHigh = defaultConnLow, defaultConnHigh
	}
	// Fill limits field by field, so setting one keeps the others.
	d := DefaultLimits()
	if c.Limits.MaxMemory == 0 {
		c.Limits.MaxMemory = d.MaxMemory
	}
	if c.Limits.MaxFDs == 0 {
		c.Limits.MaxFDs = d.MaxFDs
	}
	if c.Limits.MaxConns == 0 {
		c.Limits.MaxConns = d.MaxConns
	}
	if c.Limits.MaxStreams == 0 {
		c.Limits.MaxStreams = d.MaxStreams
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = defaultMaxMessageSize
	}
	if c.MaxClockSkew == 0 {
		c.MaxClockSkew = 2 * time.Minute
	}
	if c.MaxMessageAge == 0 {
		c.MaxMessageAge = time.Hour
	}
	if c.MaxBlobSize == 0 {
		c.MaxBlobSize = defaultMaxBlobSize
	}
	if c.MaxStoreBytes == 0 {
		c.MaxStoreBytes = defaultMaxStore
	}
	if c.HeaderTimeout == 0 {
		c.HeaderTimeout = defaultHeaderTimeout
	}
	if c.MinFetchRate == 0 {
		c.MinFetchRate = defaultMinFetchRate
	}
	if c.FetchParallelism == 0 {
		c.FetchParallelism = defaultParallelism
	}
	return c
}

// validate names the first bad field.
func (c Config) validate() error {
	if c.NetworkID.IsZero() {
		return errors.New("p2p: config: NetworkID is required")
	}
	if c.DataDir == "" {
		return errors.New("p2p: config: DataDir is required")
	}
	for _, s := range c.ListenAddrs {
		if _, err := ma.NewMultiaddr(s); err != nil {
			return fmt.Errorf("p2p: config: ListenAddrs %q: %w", s, err)
		}
	}
	if c.ConnLow < 0 || c.ConnHigh < c.ConnLow || c.ConnHigh == 0 {
		return fmt.Errorf("p2p: config: ConnLow %d / ConnHigh %d: want 0 <= low <= high, high > 0", c.ConnLow, c.ConnHigh)
	}
	l := c.Limits
	if l.MaxMemory <= 0 || l.MaxFDs <= 0 || l.MaxConns <= 0 || l.MaxStreams <= 0 {
		return fmt.Errorf("p2p: config: Limits %+v: every limit must be positive", l)
	}
	if c.MaxMessageSize <= 0 || c.MaxMessageSize > MaxEnvelopeSize {
		return fmt.Errorf("p2p: config: MaxMessageSize %d: want 1..%d", c.MaxMessageSize, MaxEnvelopeSize)
	}
	if c.MaxClockSkew < 0 || c.MaxMessageAge < 0 {
		return errors.New("p2p: config: MaxClockSkew and MaxMessageAge must not be negative")
	}
	for _, t := range c.ExtraTopics {
		if err := validTopicName(string(t)); err != nil {
			return fmt.Errorf("p2p: config: ExtraTopics: %w", err)
		}
	}
	if c.MaxBlobSize <= 0 || c.MaxStoreBytes < c.MaxBlobSize {
		return fmt.Errorf("p2p: config: MaxBlobSize %d / MaxStoreBytes %d: want 0 < blob <= store", c.MaxBlobSize, c.MaxStoreBytes)
	}
	if c.HeaderTimeout < 0 || c.MinFetchRate <= 0 || c.FetchParallelism <= 0 {
		return errors.New("p2p: config: HeaderTimeout, MinFetchRate and FetchParallelism must be positive")
	}
	if c.DHTMode < DHTAuto || c.DHTMode > DHTClient {
		return fmt.Errorf("p2p: config: DHTMode %d unknown", c.DHTMode)
	}
	if c.ForceReachability < ReachabilityUnknown || c.ForceReachability > ReachabilityPrivate {
		return fmt.Errorf("p2p: config: ForceReachability %d unknown", c.ForceReachability)
	}
	return nil
}

// RoundWindowFunc returns the inclusive range of rounds whose messages are
// currently accepted.
type RoundWindowFunc func() (lo, hi uint64)

// Option configures what is not plain data.
type Option func(*options) error

type options struct {
	logger       *slog.Logger
	roundWindow  RoundWindowFunc
	identity     crypto.PrivKey
	scoreInspect time.Duration
	now          func() time.Time
	noiseFirst   bool // tests: prefer Noise to TLS
	plainTLS     bool // tests: go-libp2p's TLS without batchedTLS
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("p2p: WithLogger: nil logger")
		}
		o.logger = l
		return nil
	}
}

// WithRoundWindow supplies the round window; without it every round is
// accepted.
func WithRoundWindow(f RoundWindowFunc) Option {
	return func(o *options) error {
		if f == nil {
			return errors.New("p2p: WithRoundWindow: nil function")
		}
		o.roundWindow = f
		return nil
	}
}

// WithIdentity uses key instead of DataDir/identity.key.
func WithIdentity(key crypto.PrivKey) Option {
	return func(o *options) error {
		if key == nil || key.Type() != crypto.Ed25519 {
			return errors.New("p2p: WithIdentity: need an Ed25519 key")
		}
		o.identity = key
		return nil
	}
}

// WithScoreInspectPeriod sets how often PeerScore's snapshot is refreshed
// (default 1 s).
func WithScoreInspectPeriod(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return errors.New("p2p: WithScoreInspectPeriod: period must be positive")
		}
		o.scoreInspect = d
		return nil
	}
}
