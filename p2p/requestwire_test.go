package p2p

import (
	"bytes"
	"testing"
)

// FuzzRequestFrames: the frame decoders never panic or allocate beyond the
// bytes present plus their limit, and whatever they accept re-encodes to the
// same bytes.
func FuzzRequestFrames(f *testing.F) {
	f.Add(appendRequestFrame(nil, 100, []byte("hello")))
	f.Add(appendRequestFrame(nil, 0, nil))
	f.Add(appendResponseFrame(nil, ReqOK, []byte("world")))
	f.Add(appendResponseFrame(nil, ReqError, []byte("boom")))
	f.Add(appendResponseFrame(nil, ReqBusy, nil))
	f.Add([]byte{requestVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		const limit = 1 << 10
		if maxResp, body, err := readRequestFrame(bytes.NewReader(b), limit); err == nil {
			if len(body) > limit {
				t.Fatalf("request body of %d bytes above the limit", len(body))
			}
			if again := appendRequestFrame(nil, maxResp, body); !bytes.Equal(again, b) {
				t.Fatalf("request frame does not re-encode: %x vs %x", again, b)
			}
		}
		if st, body, err := readResponseFrame(bytes.NewReader(b), limit); err == nil {
			if len(body) > limit || (st != ReqOK && len(body) > maxErrorMessage) {
				t.Fatalf("%v body of %d bytes above its limit", st, len(body))
			}
			if again := appendResponseFrame(nil, st, body); !bytes.Equal(again, b) {
				t.Fatalf("response frame does not re-encode: %x vs %x", again, b)
			}
		}
	})
}
