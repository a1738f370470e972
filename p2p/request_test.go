package p2p

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

func echoHandler(_ context.Context, _ peer.ID, req []byte) ([]byte, error) {
	return append([]byte("echo:"), req...), nil
}

// requestPair starts two connected nodes; the second serves name with h.
func requestPair(t *testing.T, cfg HandlerConfig, h RequestHandler) (client, server *Node) {
	t.Helper()
	nodes := newCluster(t, 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	connect(ctx, t, nodes[0], nodes[1])
	if h != nil {
		if err := nodes[1].HandleRequests("test", cfg, h); err != nil {
			t.Fatal(err)
		}
	}
	return nodes[0], nodes[1]
}

func remoteStatus(err error) (ReqStatus, bool) {
	var re *RemoteError
	if errors.As(err, &re) {
		return re.Status, true
	}
	return 0, false
}

func TestRequestServiceRoundTrip(t *testing.T) {
	fail := errors.New("no such thing")
	client, server := requestPair(t, HandlerConfig{MaxRequest: 1024}, func(ctx context.Context, from peer.ID, req []byte) ([]byte, error) {
		switch string(req) {
		case "fail":
			return nil, fail
		case "big":
			return make([]byte, 2000), nil
		case "empty":
			return nil, nil
		}
		return echoHandler(ctx, from, req)
	})
	ctx := context.Background()
	tests := []struct {
		name    string
		req     []byte
		maxResp int
		want    string
		status  ReqStatus // ReqOK: success expected
		message string
	}{
		{"echo", []byte("hello"), 100, "echo:hello", ReqOK, ""},
		{"empty response", []byte("empty"), 100, "", ReqOK, ""},
		{"handler error", []byte("fail"), 100, "", ReqError, fail.Error()},
		{"response over the limit", []byte("big"), 1999, "", ReqTooLarge, "2000 bytes"},
		{"response at the limit", []byte("big"), 2000, string(make([]byte, 2000)), ReqOK, ""},
		{"request over the server's limit", make([]byte, 1025), 100, "", ReqBadRequest, "exceeds 1024"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := client.Request(ctx, server.ID(), "test", tc.req, tc.maxResp, 5*time.Second)
			if tc.status == ReqOK {
				if err != nil || string(got) != tc.want {
					t.Fatalf("got %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			st, ok := remoteStatus(err)
			if !ok || st != tc.status || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("err = %v; want status %v with %q", err, tc.status, tc.message)
			}
		})
	}
}

func TestRequestNamespacedByNetwork(t *testing.T) {
	a := newTestNode(t, testConfig(t))
	cfg := testConfig(t)
	cfg.NetworkID[0] ^= 1
	b := newTestNode(t, cfg)
	if err := b.HandleRequests("test", HandlerConfig{}, echoHandler); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	connect(ctx, t, a, b)
	if _, err := a.Request(ctx, b.ID(), "test", []byte("x"), 100, 5*time.Second); err == nil {
		t.Fatal("a request crossed networks")
	}
	// And the handler can be withdrawn.
	if err := b.HandleRequests("test", HandlerConfig{}, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.HandleRequests("Bad_Name", HandlerConfig{}, echoHandler); err == nil {
		t.Fatal("invalid protocol name accepted")
	}
}

// TestRequestHostileServer: a server that answers garbage, an oversized
// frame, trailing bytes or nothing at all gives the requester an error
// within its timeout, never a hang or an allocation the server sized.
func TestRequestHostileServer(t *testing.T) {
	client, server := requestPair(t, HandlerConfig{}, nil)
	proto := server.cfg.NetworkID.RequestProtocol("test")
	tests := []struct {
		name  string
		write func(s network.Stream)
	}{
		{"garbage", func(s network.Stream) { _, _ = s.Write([]byte("HTTP/1.1 200 OK\r\n\r\n")) }},
		{"oversized length", func(s network.Stream) {
			_, _ = s.Write(binary.BigEndian.AppendUint32([]byte{requestVersion, byte(ReqOK)}, 1<<31))
		}},
		{"length above the limit", func(s network.Stream) {
			_, _ = s.Write(appendResponseFrame(nil, ReqOK, make([]byte, 101)))
		}},
		{"truncated body", func(s network.Stream) {
			f := appendResponseFrame(nil, ReqOK, make([]byte, 50))
			_, _ = s.Write(f[:len(f)-10])
		}},
		{"trailing bytes", func(s network.Stream) {
			_, _ = s.Write(append(appendResponseFrame(nil, ReqOK, []byte("ok")), 0))
		}},
		{"unknown status", func(s network.Stream) { _, _ = s.Write(appendResponseFrame(nil, 9, nil)) }},
		{"long error message", func(s network.Stream) {
			_, _ = s.Write(appendResponseFrame(nil, ReqError, bytes.Repeat([]byte("x"), maxErrorMessage+1)))
		}},
		{"silent", func(s network.Stream) { time.Sleep(4 * time.Second) }},
		{"slow drip", func(s network.Stream) {
			f := appendResponseFrame(nil, ReqOK, make([]byte, 50))
			for _, b := range f {
				if _, err := s.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan struct{})
			server.host.SetStreamHandler(proto, func(s network.Stream) {
				defer close(done)
				_, _ = io.Copy(io.Discard, io.LimitReader(s, 1<<16))
				tc.write(s)
				_ = s.Close()
			})
			got, err := client.Request(context.Background(), server.ID(), "test", []byte("q"), 100, time.Second)
			if err == nil {
				t.Fatalf("hostile server's response accepted: %q", got)
			}
			if _, ok := remoteStatus(err); ok {
				t.Fatalf("framing error reported as the peer's answer: %v", err)
			}
			if tc.name == "silent" || tc.name == "slow drip" {
				// The requester gave up at its timeout, not when the server
				// finished.
				select {
				case <-done:
					t.Fatalf("request waited for the stalling server: %v", err)
				default:
				}
			}
			<-done
		})
	}
}

// TestRequestHostileClient: a requester that sends garbage, an oversized
// request or stalls gets a bad-request answer or is cut off at the handler's
// timeout; meanwhile the concurrency bound turns extra requests away busy
// and honest requests still succeed afterwards.
func TestRequestHostileClient(t *testing.T) {
	release := make(chan struct{})
	holding := make(chan struct{}, 1) // the blocking request holds the slot
	client, server := requestPair(t, HandlerConfig{MaxRequest: 100, Timeout: time.Second, MaxConcurrent: 1},
		func(ctx context.Context, from peer.ID, req []byte) ([]byte, error) {
			if string(req) == "block" {
				holding <- struct{}{}
				select {
				case <-release:
				case <-ctx.Done():
				}
			}
			return echoHandler(ctx, from, req)
		})
	proto := server.cfg.NetworkID.RequestProtocol("test")
	raw := func(t *testing.T, send []byte, closeWrite bool) (ReqStatus, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := client.host.NewStream(ctx, server.ID(), proto)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Reset()
		_ = s.SetDeadline(time.Now().Add(4 * time.Second))
		if _, err := s.Write(send); err != nil {
			return 0, err
		}
		if closeWrite {
			_ = s.CloseWrite()
		}
		st, _, err := readResponseFrame(s, 1000)
		return st, err
	}
	t.Run("garbage", func(t *testing.T) {
		if st, err := raw(t, []byte("GET / HTTP/1.1\r\n"), true); err != nil || st != ReqBadRequest {
			t.Fatalf("status %v, err %v; want bad request", st, err)
		}
	})
	t.Run("oversized request", func(t *testing.T) {
		hdr := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32([]byte{requestVersion}, 100), 1<<30)
		if st, err := raw(t, hdr, false); err != nil || st != ReqBadRequest {
			t.Fatalf("status %v, err %v; want bad request", st, err)
		}
	})
	t.Run("trailing bytes", func(t *testing.T) {
		if st, err := raw(t, append(appendRequestFrame(nil, 100, []byte("x")), 1), true); err != nil || st != ReqBadRequest {
			t.Fatalf("status %v, err %v; want bad request", st, err)
		}
	})
	t.Run("stalled request", func(t *testing.T) {
		// Announces 50 bytes, sends 10 and waits: the handler's timeout
		// resets the stream.
		f := appendRequestFrame(nil, 100, make([]byte, 50))
		_, err := raw(t, f[:reqFrameHeaderLen+10], false)
		if err == nil {
			t.Fatal("stalled request answered")
		}
		// The server reset the stream at its 1 s timeout, before the
		// requester's own 4 s deadline.
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("server kept a stalled request open: %v", err)
		}
	})
	t.Run("busy", func(t *testing.T) {
		// Once the blocking request holds the only slot, another is busy.
		// (Polling instead raced: a poll could take the slot first.) The
		// previous subtest's stalled request may still hold the slot for a
		// moment, so the blocking request is retried while it is busy.
		errc := make(chan error, 1)
		for tries, held := 0, false; !held; tries++ {
			if tries == 250 {
				t.Fatal("the slot stayed busy for 5 s after the previous subtest")
			}
			go func() {
				_, err := client.Request(context.Background(), server.ID(), "test", []byte("block"), 100, 5*time.Second)
				errc <- err
			}()
			select {
			case <-holding:
				held = true
			case err := <-errc:
				if st, ok := remoteStatus(err); !ok || st != ReqBusy {
					t.Fatalf("blocking request ended early: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		_, err := client.Request(context.Background(), server.ID(), "test", []byte("x"), 100, 5*time.Second)
		st, _ := remoteStatus(err)
		close(release)
		if st != ReqBusy {
			t.Errorf("second concurrent request: status %v, want busy", st)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		got, err := client.Request(context.Background(), server.ID(), "test", []byte("after"), 100, 5*time.Second)
		if err != nil || string(got) != "echo:after" {
			t.Fatalf("honest request after the hostile ones: %q, %v", got, err)
		}
	})
}

func TestRequestCancelled(t *testing.T) {
	client, server := requestPair(t, HandlerConfig{}, func(ctx context.Context, _ peer.ID, _ []byte) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	if _, err := client.Request(ctx, server.ID(), "test", nil, 100, time.Minute); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request: %v", err)
	}
}

func TestKeyProviders(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitRouting(ctx, t, nodes, 1)
	const key = "/test-key"
	for _, n := range nodes[1:] {
		if err := n.ProvideKey(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	var got []peer.AddrInfo
	waitFor(ctx, t, "both providers", func() bool {
		var err error
		fctx, fcancel := context.WithTimeout(ctx, 2*time.Second)
		got, err = nodes[0].FindKeyProviders(fctx, key, 10)
		fcancel()
		return err == nil && len(got) == 2
	})
	want := map[peer.ID]bool{nodes[1].ID(): true, nodes[2].ID(): true}
	for _, ai := range got {
		if !want[ai.ID] {
			t.Errorf("unexpected provider %s", ai.ID)
		}
	}
	octx, ocancel := context.WithTimeout(ctx, 5*time.Second)
	defer ocancel()
	if none, err := nodes[0].FindKeyProviders(octx, "/other-key", 10); err != nil || len(none) != 0 {
		t.Errorf("providers of an unprovided key: %v, %v", none, err)
	}
}

// TestRequestPerPeerLimit: one peer holding its share of a protocol's slots
// is turned away busy, while another peer is still served.
func TestRequestPerPeerLimit(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, b, server := nodes[0], nodes[1], nodes[2]
	connect(ctx, t, a, server)
	connect(ctx, t, b, server)
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	err := server.HandleRequests("test", HandlerConfig{MaxConcurrent: 4, MaxPerPeer: 1},
		func(ctx context.Context, from peer.ID, req []byte) ([]byte, error) {
			if string(req) == "block" {
				arrived <- struct{}{}
				select {
				case <-release:
				case <-ctx.Done():
				}
			}
			return echoHandler(ctx, from, req)
		})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := a.Request(ctx, server.ID(), "test", []byte("block"), 100, 10*time.Second)
		errc <- err
	}()
	<-arrived
	_, err = a.Request(ctx, server.ID(), "test", []byte("again"), 100, 5*time.Second)
	if st, ok := remoteStatus(err); !ok || st != ReqBusy {
		t.Errorf("second request of the same peer: %v, want busy", err)
	}
	if got, err := b.Request(ctx, server.ID(), "test", []byte("other"), 100, 5*time.Second); err != nil || string(got) != "echo:other" {
		t.Errorf("another peer's request: %q, %v", got, err)
	}
	close(release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
