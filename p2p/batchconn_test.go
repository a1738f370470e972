package p2p

import (
	"bytes"
	"net"
	"sync"
	"testing"
)

// countingConn records every Write that reaches the "socket".
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes = append(c.writes, append([]byte(nil), b...))
	return len(b), nil
}

func TestBatchConnCoalescesHeldWrites(t *testing.T) {
	piece := func(n int, v byte) []byte { return bytes.Repeat([]byte{v}, n) }
	tests := []struct {
		name       string
		held       bool
		pieces     [][]byte
		wantWrites []int // sizes of what reaches the socket, in order
	}{
		{"unheld writes pass through", false, [][]byte{piece(10, 1), piece(20, 2)}, []int{10, 20}},
		{"held records leave at once", true, [][]byte{piece(16<<10, 1), piece(16<<10, 2), piece(16<<10, 3), piece(16<<10, 4)}, []int{64 << 10}},
		{"a full buffer is flushed first", true, [][]byte{piece(100<<10, 1), piece(100<<10, 2)}, []int{100 << 10, 100 << 10}},
		{"an oversized write goes straight out after what is held", true, [][]byte{piece(10, 1), piece(batchWriteSize+1, 2)}, []int{10, batchWriteSize + 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := &countingConn{}
			c := newBatchConn(raw)
			if tc.held {
				c.hold()
			}
			var want []byte
			for _, p := range tc.pieces {
				if n, err := c.Write(p); err != nil || n != len(p) {
					t.Fatalf("Write = %d, %v", n, err)
				}
				want = append(want, p...)
			}
			if tc.held {
				if err := c.release(); err != nil {
					t.Fatal(err)
				}
			}
			var got []byte
			var sizes []int
			for _, w := range raw.writes {
				got = append(got, w...)
				sizes = append(sizes, len(w))
			}
			if !bytes.Equal(got, want) {
				t.Fatal("bytes reordered or lost")
			}
			if len(sizes) != len(tc.wantWrites) {
				t.Fatalf("socket writes %v, want %v", sizes, tc.wantWrites)
			}
			for i := range sizes {
				if sizes[i] != tc.wantWrites[i] {
					t.Fatalf("socket writes %v, want %v", sizes, tc.wantWrites)
				}
			}
		})
	}
}
