package p2p

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/klauspost/compress/zstd"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// maxConcurrentServes bounds blob streams served at once; more get statusBusy.
const maxConcurrentServes = 32

// serveChunk is the read/write unit when serving a blob from disk.
const serveChunk = 256 << 10

// maxProviders is how many providers one DHT lookup asks for.
const maxProviders = 20

// ErrNoProvider means every known source of a blob failed or none was found.
var ErrNoProvider = errors.New("p2p: no peer served the blob")

// transferDeadline is how long a body of n bytes may take: HeaderTimeout of
// slack plus n at the slowest accepted rate.
func (n *Node) transferDeadline(bytes uint64) time.Time {
	secs := float64(bytes) / float64(n.cfg.MinFetchRate)
	return time.Now().Add(n.cfg.HeaderTimeout + time.Duration(secs*float64(time.Second)))
}

// handleBlob serves one request on the blob protocol.
func (n *Node) handleBlob(s network.Stream) {
	select {
	case n.serveSem <- struct{}{}:
		defer func() { <-n.serveSem }()
	default:
		_, _ = s.Write(responseHeader{status: statusBusy}.marshal())
		_ = s.Close()
		return
	}
	if err := n.serveBlob(s); err != nil {
		n.log.Debug("serving blob", "peer", s.Conn().RemotePeer(), "err", err)
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

func (n *Node) serveBlob(s network.Stream) error {
	_ = s.SetDeadline(time.Now().Add(n.cfg.HeaderTimeout))
	q, err := readRequest(s)
	if err != nil {
		_, _ = s.Write(responseHeader{status: statusBadRequest}.marshal())
		return err
	}
	f, size, err := n.store.open(q.cid)
	if err != nil {
		if _, werr := s.Write(responseHeader{status: statusNotFound}.marshal()); werr != nil {
			return werr
		}
		return nil
	}
	defer f.Close()
	if uint64(size) > q.maxSize {
		_, err := s.Write(responseHeader{status: statusTooLarge}.marshal())
		return err
	}
	_ = s.SetWriteDeadline(n.transferDeadline(uint64(size)))
	if q.acceptZstd && n.cfg.Compress {
		sent, err := n.serveCompressed(s, f, size)
		if sent || err != nil {
			return err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
	}
	h := responseHeader{status: statusOK, encoding: encodingRaw, size: uint64(size), wireLen: uint64(size)}
	if _, err := s.Write(h.marshal()); err != nil {
		return err
	}
	// Large writes let the muxer send full frames instead of 32 KiB ones;
	// the buffer is reused across serves rather than allocated per request.
	bp := n.serveBufs.Get().(*[]byte)
	defer n.serveBufs.Put(bp)
	if _, err := io.CopyBuffer(s, io.LimitReader(f, size), *bp); err != nil {
		return fmt.Errorf("p2p: sending blob %s: %w", q.cid, err)
	}
	return nil
}

// serveCompressed sends the zstd body when it saves at least 1/16 of the
// size; otherwise it sends nothing and reports false.
func (n *Node) serveCompressed(s network.Stream, f *os.File, size int64) (bool, error) {
	raw := make([]byte, size)
	if _, err := io.ReadFull(f, raw); err != nil {
		return false, err
	}
	z := n.zenc.EncodeAll(raw, make([]byte, 0, size/2))
	if int64(len(z)) > size-size/16 {
		return false, nil
	}
	h := responseHeader{status: statusOK, encoding: encodingZstd, size: uint64(size), wireLen: uint64(len(z))}
	if _, err := s.Write(h.marshal()); err != nil {
		return true, err
	}
	_, err := s.Write(z)
	return true, err
}

// fetchFrom asks one peer for a blob and returns it only if it hashes to c.
func (n *Node) fetchFrom(ctx context.Context, p peer.ID, c cid.Cid, maxSize int64) (data []byte, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	digest, err := CheckCID(c)
	if err != nil {
		return nil, err
	}
	wrap := func(what string, e error) error {
		if ctx.Err() != nil {
			e = errors.Join(ctx.Err(), e)
		}
		return fmt.Errorf("p2p: fetching %s from %s: %s: %w", c, p, what, e)
	}
	hctx, cancel := context.WithTimeout(ctx, n.cfg.HeaderTimeout)
	defer cancel()
	q := blobRequest{cid: c, acceptZstd: true, maxSize: uint64(maxSize)}
	s, finish, err := n.sendRequest(ctx, hctx, p, n.cfg.NetworkID.BlobProtocol(), "blob", q.marshal(), time.Now().Add(n.cfg.HeaderTimeout))
	if err != nil {
		return nil, wrap("request", err)
	}
	defer finish(&err)
	h, err := readResponseHeader(s, uint64(maxSize))
	if err != nil {
		return nil, wrap("reading header", markCut(err))
	}
	switch h.status {
	case statusOK:
	case statusNotFound:
		return nil, wrap("peer answered", ErrNotFound)
	case statusTooLarge:
		return nil, wrap("peer answered", ErrTooLarge)
	default:
		return nil, wrap("peer answered", errors.New(h.status.String()))
	}
	_ = s.SetReadDeadline(n.transferDeadline(h.wireLen))
	body := io.LimitReader(s, int64(h.wireLen))
	sum := sha256.New()
	switch h.encoding {
	case encodingRaw:
		data, err = readExactly(body, h.size, sum)
	case encodingZstd:
		data, err = readZstd(body, h.size, sum)
	}
	if err != nil {
		return nil, wrap("reading body", markCut(err))
	}
	// The frame ends the stream: anything more is a protocol violation.
	var one [1]byte
	if k, _ := s.Read(one[:]); k != 0 {
		return nil, wrap("reading body", fmt.Errorf("%w: bytes after the body", errBadFrame))
	}
	if !bytes.Equal(sum.Sum(nil), digest) {
		return nil, wrap("verifying", fmt.Errorf("%w: %s", ErrHashMismatch, c))
	}
	return data, nil
}

// readChunkAlloc is the largest first allocation for a body; a bigger blob's
// buffer grows as bytes arrive, so a peer that announces a huge blob and
// sends nothing costs little memory.
const readChunkAlloc = 64 << 20

// readExactly reads exactly n bytes. When h is not nil, every chunk is
// handed to a hashing goroutine as it lands, so hashing overlaps the
// transfer (and the transport's decryption) instead of following it.
func readExactly(r io.Reader, n uint64, h hash.Hash) ([]byte, error) {
	var hashed chan<- []byte
	if h != nil {
		ch, wait := hashPipeline(h)
		hashed = ch
		// The hasher must be done before the caller reads the sum, and
		// must not outlive the call on an error path either.
		defer wait()
	}
	buf := make([]byte, min(n, readChunkAlloc))
	var got, sent uint64 // sent: bytes already handed to the hasher
	flush := func(force bool) {
		if hashed != nil && got > sent && (force || got-sent >= readStep) {
			hashed <- buf[sent:got]
			sent = got
		}
	}
	for got < n {
		if got == uint64(len(buf)) {
			flush(true)
			// The hasher may still read the old buffer: it stays valid.
			nb := make([]byte, min(n, 2*uint64(len(buf))))
			copy(nb, buf)
			buf = nb
		}
		k, err := r.Read(buf[got:min(uint64(len(buf)), got+readStep)])
		got += uint64(k)
		flush(false)
		if err == io.EOF {
			if got < n {
				return nil, fmt.Errorf("%w: body ended after %d of %d bytes", errBadFrame, got, n)
			}
			break
		}
		if err != nil {
			return nil, err
		}
	}
	flush(true)
	return buf, nil
}

// hashPipeline starts a goroutine that writes every chunk sent on the
// returned channel to h; wait closes the channel and returns once all
// chunks are hashed.
func hashPipeline(h hash.Hash) (chunks chan<- []byte, wait func()) {
	ch := make(chan []byte, hashQueue)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range ch {
			h.Write(c)
		}
	}()
	return ch, func() { close(ch); <-done }
}

// readStep bounds one Read and is the unit handed to the hasher, so a
// chunk is hashed while it is still in cache.
const readStep = 256 << 10

// hashQueue is how many chunks may wait for the hasher: enough to ride out
// scheduling hiccups, small enough that it never lags far behind.
const hashQueue = 8

// readZstd decompresses a zstd body that must produce exactly n bytes.
func readZstd(r io.Reader, n uint64, h hash.Hash) ([]byte, error) {
	dec, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxMemory(max(n, 1<<20)), zstd.WithDecoderMaxWindow(max(n, 1<<20)))
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	out, err := readExactly(dec, n, h)
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	var one [1]byte
	if k, _ := dec.Read(one[:]); k != 0 {
		return nil, fmt.Errorf("%w: zstd body decompresses past %d bytes", ErrTooLarge, n)
	}
	return out, nil
}

// fetch tries the hinted peers in order, then providers found on the DHT,
// FetchParallelism at a time; the first verified copy wins.
// sendRequest opens a stream to p on proto, sets its deadline, writes req
// and closes the write side: the opening of every request-response
// exchange (blobs and the request service). Limited (relayed) connections
// are allowed: requests are small, and a peer behind NAT must still answer
// before a hole is punched. openCtx bounds the opening; cancelling ctx
// resets the stream at any time. The caller must defer finish(&err) with
// its own result: it closes the stream after a successful exchange and
// resets it after a failed one. A failure after the stream opened wraps
// errStreamCut.
func (n *Node) sendRequest(ctx, openCtx context.Context, p peer.ID, proto protocol.ID, reason string, req []byte, deadline time.Time) (s network.Stream, finish func(*error), err error) {
	s, err = n.host.NewStream(network.WithAllowLimitedConn(openCtx, reason), p, proto)
	if err != nil {
		return nil, nil, fmt.Errorf("opening stream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	finish = func(err *error) {
		stop()
		if *err != nil {
			_ = s.Reset()
			return
		}
		_ = s.Close()
	}
	_ = s.SetDeadline(deadline)
	if _, err = s.Write(req); err == nil {
		err = s.CloseWrite()
	}
	if err != nil {
		err = fmt.Errorf("sending: %w: %w", errStreamCut, err)
		finish(&err)
		return nil, nil, err
	}
	return s, finish, nil
}

// errStreamCut marks a fetch whose stream, or its connection, was reset or
// closed under it: the peer may have been briefly out of stream slots, or a
// connection was being replaced (see watchStaleConns), so one more try is
// worth it. A silent peer times out instead, and a wrong answer is the
// peer's: neither is retried.
var errStreamCut = errors.New("stream cut")

// markCut wraps errStreamCut around err when it is a reset of the stream or
// a close of its connection.
func markCut(err error) error {
	var closed *network.ConnError
	if errors.Is(err, network.ErrReset) || errors.As(err, &closed) {
		return fmt.Errorf("%w: %w", errStreamCut, err)
	}
	return err
}

// fetchRetry is fetchFrom with one more try, after a short pause, when the
// first was cut.
func (n *Node) fetchRetry(ctx context.Context, p peer.ID, c cid.Cid, maxSize int64) ([]byte, error) {
	data, err := n.fetchFrom(ctx, p, c, maxSize)
	if err == nil || !errors.Is(err, errStreamCut) {
		return data, err
	}
	n.log.Debug("fetch cut, retrying", "cid", c, "peer", p, "err", err)
	select {
	case <-ctx.Done():
		return nil, err
	case <-time.After(retryPause):
	}
	return n.fetchFrom(ctx, p, c, maxSize)
}

// retryPause is the pause before fetchRetry's second try.
const retryPause = 50 * time.Millisecond

func (n *Node) fetch(ctx context.Context, c cid.Cid, o blobOpts, maxSize int64) ([]byte, error) {
	tried := map[peer.ID]bool{n.host.ID(): true}
	var errs []error
	for _, p := range o.hints {
		if tried[p] {
			continue
		}
		tried[p] = true
		data, err := n.fetchRetry(ctx, p, c, maxSize)
		if err == nil {
			return data, nil
		}
		n.log.Debug("hinted fetch failed", "cid", c, "peer", p, "err", err)
		errs = append(errs, err)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("p2p: getting %s: %w", c, ctx.Err())
		}
	}

	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		data []byte
		err  error
	}
	results := make(chan result, n.cfg.FetchParallelism)
	provs := n.dht.FindProvidersAsync(pctx, c, maxProviders)
	active := 0
	drain := func() {
		cancel()
		for ; active > 0; active-- {
			<-results
		}
		// FindProvidersAsync's goroutine ends when pctx is done and the
		// channel is read to its close.
		if provs != nil {
			for range provs {
			}
		}
	}
	for {
		in := provs
		if active >= n.cfg.FetchParallelism {
			in = nil // wait for a slot before taking another provider
		}
		if in == nil && active == 0 {
			drain()
			if len(errs) == 0 {
				errs = append(errs, errors.New("no providers found"))
			}
			return nil, fmt.Errorf("%w %s: %w", ErrNoProvider, c, errors.Join(errs...))
		}
		select {
		case ai, ok := <-in:
			if !ok {
				provs = nil
				continue
			}
			if tried[ai.ID] {
				continue
			}
			tried[ai.ID] = true
			if len(ai.Addrs) > 0 {
				n.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
			}
			active++
			go func(p peer.ID) {
				data, err := n.fetchRetry(pctx, p, c, maxSize)
				results <- result{data, err}
			}(ai.ID)
		case r := <-results:
			active--
			if r.err == nil {
				drain()
				return r.data, nil
			}
			n.log.Debug("provider fetch failed", "cid", c, "err", r.err)
			errs = append(errs, r.err)
		case <-ctx.Done():
			drain()
			return nil, fmt.Errorf("p2p: getting %s: %w", c, ctx.Err())
		}
	}
}

// fetchCall is one in-flight fetch that concurrent Gets of the same CID share.
type fetchCall struct {
	done chan struct{}
	data []byte
	err  error
}

// Get returns the blob with CID c: from the local store, else from the
// peers named by FromPeers, else from providers found on the DHT. The bytes
// are verified against c before they are returned or stored. A fetched blob
// is stored (tagged with WithRound if given) and, unless disabled, provided.
func (n *Node) Get(ctx context.Context, c cid.Cid, opts ...BlobOption) ([]byte, error) {
	if _, err := CheckCID(c); err != nil {
		return nil, err
	}
	o := applyBlobOpts(opts)
	maxSize := n.cfg.MaxBlobSize
	if o.maxSize > 0 && o.maxSize < maxSize {
		maxSize = o.maxSize
	}
	for {
		if data, err := n.store.Get(c); err == nil {
			if int64(len(data)) > maxSize {
				return nil, fmt.Errorf("%w: %s is %d bytes, limit %d", ErrTooLarge, c, len(data), maxSize)
			}
			return data, nil
		}
		n.fetchMu.Lock()
		call, shared := n.fetching[c]
		if !shared {
			call = &fetchCall{done: make(chan struct{})}
			n.fetching[c] = call
		}
		n.fetchMu.Unlock()
		if !shared {
			call.data, call.err = n.fetchAndStore(ctx, c, o, maxSize)
			n.fetchMu.Lock()
			delete(n.fetching, c)
			n.fetchMu.Unlock()
			close(call.done)
			return call.data, call.err
		}
		select {
		case <-call.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("p2p: getting %s: %w", c, ctx.Err())
		}
		// The owner's context may have ended while ours has not: try again.
		if call.err != nil && (errors.Is(call.err, context.Canceled) || errors.Is(call.err, context.DeadlineExceeded)) {
			continue
		}
		if call.err == nil && int64(len(call.data)) > maxSize {
			return nil, fmt.Errorf("%w: %s is %d bytes, limit %d", ErrTooLarge, c, len(call.data), maxSize)
		}
		return call.data, call.err
	}
}

func (n *Node) fetchAndStore(ctx context.Context, c cid.Cid, o blobOpts, maxSize int64) ([]byte, error) {
	data, err := n.fetch(ctx, c, o, maxSize)
	if err != nil {
		return nil, err
	}
	var popts []BlobOption
	if o.hasRound {
		popts = append(popts, WithRound(o.round))
	}
	if _, err := n.store.Put(data, popts...); err != nil {
		// The caller has verified bytes; failing to keep a copy is not its
		// problem, only a lost chance to serve others.
		n.log.Warn("keeping fetched blob", "cid", c, "err", err)
		return data, nil
	}
	if !n.cfg.DisableProvideFetched {
		n.provideAsync(c)
	}
	return data, nil
}

// Put stores data, provides it on the DHT and returns its CID. Providing
// is skipped while the routing table is empty (a lone node); the reprovide
// loop announces the blob once peers appear.
func (n *Node) Put(ctx context.Context, data []byte, opts ...BlobOption) (cid.Cid, error) {
	c, err := n.store.Put(data, opts...)
	if err != nil {
		return cid.Undef, err
	}
	if err := n.provide(ctx, c); err != nil {
		return c, err
	}
	return c, nil
}

// Has reports whether the blob is stored locally.
func (n *Node) Has(c cid.Cid) bool { return n.store.Has(c) }

// GC removes local blobs selected by the policy; see Store.GC.
func (n *Node) GC(p GCPolicy) (removed int, freed int64, err error) { return n.store.GC(p) }

// Store returns the node's blob store.
func (n *Node) Store() *Store { return n.store }
