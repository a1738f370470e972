package p2p

import (
	"bufio"
	"context"
	"net"
	"sync"

	pool "github.com/libp2p/go-buffer-pool"
	ci "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/sec"
	tptu "github.com/libp2p/go-libp2p/p2p/net/upgrader"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
)

// TLS writes each 16 KiB record with its own write syscall and reads about
// one record per read; a blob moves in thousands of them. batchedTLS
// wraps go-libp2p's TLS so that the records of one Write of the secured
// connection (a yamux frame of up to 64 KiB) leave in one syscall, and
// reads take what the socket holds, up to batchReadSize, at once. The bytes
// on the wire do not change: peers without it interoperate.
const (
	batchReadSize  = 64 << 10
	batchWriteSize = 128 << 10
)

type batchedTLS struct{ *libp2ptls.Transport }

func newBatchedTLS(id protocol.ID, key ci.PrivKey, muxers []tptu.StreamMuxer) (*batchedTLS, error) {
	t, err := libp2ptls.New(id, key, muxers)
	if err != nil {
		return nil, err
	}
	return &batchedTLS{t}, nil
}

func (t *batchedTLS) SecureInbound(ctx context.Context, insecure net.Conn, p peer.ID) (sec.SecureConn, error) {
	return batched(ctx, insecure, p, t.Transport.SecureInbound)
}

func (t *batchedTLS) SecureOutbound(ctx context.Context, insecure net.Conn, p peer.ID) (sec.SecureConn, error) {
	return batched(ctx, insecure, p, t.Transport.SecureOutbound)
}

// batched runs a handshake over a batchConn around insecure.
func batched(ctx context.Context, insecure net.Conn, p peer.ID,
	secure func(context.Context, net.Conn, peer.ID) (sec.SecureConn, error)) (sec.SecureConn, error) {
	raw := newBatchConn(insecure)
	c, err := secure(ctx, raw, p)
	if err != nil {
		return nil, err
	}
	return &batchedSecureConn{SecureConn: c, raw: raw}, nil
}

// batchedSecureConn holds the raw connection's writes for the duration of
// each Write, then sends them at once.
type batchedSecureConn struct {
	sec.SecureConn
	raw *batchConn
}

func (c *batchedSecureConn) Write(b []byte) (int, error) {
	c.raw.hold()
	n, err := c.SecureConn.Write(b)
	if ferr := c.raw.release(); err == nil {
		err = ferr
	}
	return n, err
}

// batchConn is the raw connection under TLS: buffered reads, and writes
// collected while held.
type batchConn struct {
	net.Conn
	r *bufio.Reader

	mu    sync.Mutex
	holds int
	buf   []byte
}

func newBatchConn(c net.Conn) *batchConn {
	return &batchConn{Conn: c, r: bufio.NewReaderSize(c, batchReadSize)}
}

func (c *batchConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func (c *batchConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holds == 0 {
		return c.Conn.Write(b)
	}
	if len(c.buf)+len(b) > batchWriteSize {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		if len(b) > batchWriteSize {
			return c.Conn.Write(b)
		}
	}
	if c.buf == nil {
		// Pooled: idle connections hold no write buffer.
		c.buf = pool.Get(batchWriteSize)[:0]
	}
	c.buf = append(c.buf, b...)
	return len(b), nil
}

func (c *batchConn) hold() {
	c.mu.Lock()
	c.holds++
	c.mu.Unlock()
}

// release sends what was collected once the last hold ends.
func (c *batchConn) release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holds--
	if c.holds > 0 {
		return nil
	}
	return c.flushLocked()
}

func (c *batchConn) flushLocked() error {
	if c.buf == nil {
		return nil
	}
	var err error
	if len(c.buf) > 0 {
		_, err = c.Conn.Write(c.buf)
	}
	pool.Put(c.buf[:cap(c.buf)])
	c.buf = nil
	return err
}
