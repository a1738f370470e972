package p2p

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// RequestHandler answers one request from peer from. Its response must fit
// the requester's limit (else the requester gets ReqTooLarge); an error is
// sent back as a ReqError with the error's text. ctx ends at the handler's
// timeout or when the node closes.
type RequestHandler func(ctx context.Context, from peer.ID, req []byte) ([]byte, error)

// HandlerConfig bounds one request protocol on the serving side.
type HandlerConfig struct {
	// MaxRequest bounds a request body (default 64 KiB, at most
	// MaxRequestBody).
	MaxRequest int
	// Timeout bounds reading the request, running the handler and writing
	// the response (default 30 s).
	Timeout time.Duration
	// MaxConcurrent bounds requests served at once; more get ReqBusy
	// (default 8).
	MaxConcurrent int
	// MaxPerPeer bounds one peer's requests served at once (default 2), so
	// that one peer cannot hold every slot.
	MaxPerPeer int
}

func (c HandlerConfig) withDefaults() (HandlerConfig, error) {
	if c.MaxRequest == 0 {
		c.MaxRequest = 64 << 10
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = 8
	}
	if c.MaxPerPeer == 0 {
		c.MaxPerPeer = min(2, c.MaxConcurrent)
	}
	if c.MaxRequest < 0 || c.MaxRequest > MaxRequestBody || c.Timeout < 0 || c.MaxConcurrent < 0 || c.MaxPerPeer < 0 {
		return c, fmt.Errorf("p2p: handler config %+v: limits must be positive, requests at most %d bytes", c, MaxRequestBody)
	}
	return c, nil
}

// RemoteError is a request's failure as the serving peer reported it.
type RemoteError struct {
	Status  ReqStatus
	Message string
}

func (e *RemoteError) Error() string {
	if e.Message == "" {
		return "p2p: peer answered " + e.Status.String()
	}
	return "p2p: peer answered " + e.Status.String() + ": " + e.Message
}

// RequestProtocol is the stream protocol of the request service name on
// this network: /trinity/<network>/req/<name>/1.0.0.
func (id NetworkID) RequestProtocol(name string) protocol.ID {
	return id.protocolPrefix() + protocol.ID("/req/"+name+"/1.0.0")
}

func validRequestName(name string) error {
	if err := validTopicName(name); err != nil {
		return fmt.Errorf("p2p: request protocol name %q: want 1-%d characters of [a-z0-9-]", name, maxTopicLen)
	}
	return nil
}

// HandleRequests serves the request protocol name (namespaced by the network
// ID) with h, replacing any earlier handler of that name. With h nil it
// stops serving name.
func (n *Node) HandleRequests(name string, cfg HandlerConfig, h RequestHandler) error {
	if err := validRequestName(name); err != nil {
		return err
	}
	proto := n.cfg.NetworkID.RequestProtocol(name)
	if h == nil {
		n.host.RemoveStreamHandler(proto)
		return nil
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	slots := &requestSlots{max: cfg.MaxConcurrent, perPeer: cfg.MaxPerPeer, byPeer: map[peer.ID]int{}}
	n.host.SetStreamHandler(proto, func(s network.Stream) {
		if !n.enter() {
			_ = s.Reset()
			return
		}
		defer n.wg.Done()
		from := s.Conn().RemotePeer()
		if !slots.take(from) {
			_ = s.SetWriteDeadline(time.Now().Add(n.cfg.HeaderTimeout))
			_, _ = s.Write(appendResponseFrame(nil, ReqBusy, nil))
			_ = s.Close()
			return
		}
		defer slots.put(from)
		answered, err := n.serveRequest(s, cfg, h)
		if err != nil {
			n.log.Debug("serving request", "protocol", name, "peer", s.Conn().RemotePeer(), "err", err)
		}
		if !answered {
			_ = s.Reset()
			return
		}
		_ = s.Close()
	})
	return nil
}

// requestSlots counts the requests of one protocol in progress, in all and
// per peer.
type requestSlots struct {
	mu           sync.Mutex
	max, perPeer int
	total        int
	byPeer       map[peer.ID]int
}

func (r *requestSlots) take(p peer.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.total >= r.max || r.byPeer[p] >= r.perPeer {
		return false
	}
	r.total++
	r.byPeer[p]++
	return true
}

func (r *requestSlots) put(p peer.ID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total--
	if r.byPeer[p]--; r.byPeer[p] <= 0 {
		delete(r.byPeer, p)
	}
}

// enter registers a stream handler's goroutine with Close; false once the
// node is closing.
func (n *Node) enter() bool {
	n.goMu.Lock()
	defer n.goMu.Unlock()
	if n.closed {
		return false
	}
	n.wg.Add(1)
	return true
}

// serveRequest reads, handles and answers one request. answered says
// whether a response frame went out (the stream is then closed, not reset,
// so that the frame reaches the requester).
func (n *Node) serveRequest(s network.Stream, cfg HandlerConfig, h RequestHandler) (answered bool, err error) {
	ctx, cancel := context.WithTimeout(n.ctx, cfg.Timeout)
	defer cancel()
	// Closing the node or the timeout unblocks a read or write stuck on a
	// silent peer.
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	deadline, _ := ctx.Deadline()
	_ = s.SetDeadline(deadline)
	maxResp, req, err := readRequestFrame(s, cfg.MaxRequest)
	if err != nil {
		_, werr := s.Write(appendResponseFrame(nil, ReqBadRequest, errorMessage(err)))
		return werr == nil, err
	}
	resp, err := h(ctx, s.Conn().RemotePeer(), req)
	if ctx.Err() != nil {
		return false, fmt.Errorf("p2p: request handler: %w", ctx.Err())
	}
	var frame []byte
	switch {
	case err != nil:
		frame = appendResponseFrame(nil, ReqError, errorMessage(err))
	case len(resp) > maxResp:
		frame = appendResponseFrame(nil, ReqTooLarge, errorMessage(fmt.Errorf("%d bytes, limit %d", len(resp), maxResp)))
	default:
		frame = appendResponseFrame(make([]byte, 0, respFrameHeaderLen+len(resp)), ReqOK, resp)
	}
	if _, err := s.Write(frame); err != nil {
		return false, fmt.Errorf("p2p: writing response: %w", err)
	}
	return true, nil
}

// Request sends req to peer p on the request protocol name and returns the
// response body, which may be at most maxResp bytes. The whole exchange
// (opening the stream, sending, the peer's work and the response) must end
// within timeout and before ctx does. A peer's refusal or failure comes back
// as a *RemoteError; a malformed or oversized response, a stalled peer or a
// broken stream as another error.
func (n *Node) Request(ctx context.Context, p peer.ID, name string, req []byte, maxResp int, timeout time.Duration) (resp []byte, err error) {
	if err := validRequestName(name); err != nil {
		return nil, err
	}
	if maxResp < 0 || maxResp > MaxRequestBody || len(req) > MaxRequestBody || timeout <= 0 {
		return nil, fmt.Errorf("p2p: request %s: sizes must be within %d bytes and the timeout positive", name, MaxRequestBody)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	wrap := func(what string, e error) error {
		if ctx.Err() != nil {
			e = errors.Join(ctx.Err(), e)
		}
		return fmt.Errorf("p2p: request %s to %s: %s: %w", name, p, what, e)
	}
	deadline, _ := ctx.Deadline()
	frame := appendRequestFrame(make([]byte, 0, reqFrameHeaderLen+len(req)), maxResp, req)
	s, finish, err := n.sendRequest(ctx, ctx, p, n.cfg.NetworkID.RequestProtocol(name), "request", frame, deadline)
	if err != nil {
		return nil, wrap("request", err)
	}
	defer finish(&err)
	st, body, err := readResponseFrame(s, maxResp)
	if err != nil {
		return nil, wrap("reading response", err)
	}
	if st != ReqOK {
		return nil, wrap("peer answered", &RemoteError{Status: st, Message: string(body)})
	}
	return body, nil
}
