package p2p

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// Request/response framing (version 1, big-endian). One request and one
// response per stream; the requester closes its side after the request.
//
//	request:  u8 version | u32 max response length | u32 length | body
//	response: u8 version | u8 status | u32 length | body
//
// For ReqOK the body is the handler's response; for every other status it
// is a UTF-8 message of at most maxErrorMessage bytes.
const (
	requestVersion      = 1
	reqFrameHeaderLen   = 1 + 4 + 4
	respFrameHeaderLen  = 1 + 1 + 4
	maxErrorMessage     = 256
	firstBodyAllocation = 64 << 10
)

// MaxRequestBody bounds a request or response body on the wire: 64 MiB, far
// above what any trinity protocol sends in one piece.
const MaxRequestBody = 64 << 20

// ReqStatus is the outcome a request handler's side reports.
type ReqStatus uint8

// Response statuses.
const (
	ReqOK         ReqStatus = iota // body is the response
	ReqError                       // the handler failed; body is its message
	ReqTooLarge                    // the response exceeds the requester's maximum
	ReqBusy                        // too many requests in progress
	ReqBadRequest                  // the request frame was malformed or too large
)

func (s ReqStatus) String() string {
	switch s {
	case ReqOK:
		return "ok"
	case ReqError:
		return "error"
	case ReqTooLarge:
		return "response too large"
	case ReqBusy:
		return "busy"
	case ReqBadRequest:
		return "bad request"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// errBadRequestFrame is wrapped by every request/response framing error.
var errBadRequestFrame = errors.New("p2p: bad request frame")

func appendRequestFrame(b []byte, maxResp int, body []byte) []byte {
	b = append(b, requestVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(maxResp))
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

func appendResponseFrame(b []byte, st ReqStatus, body []byte) []byte {
	b = append(b, requestVersion, byte(st))
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

// errorMessage turns an error into a bounded, valid UTF-8 status message.
func errorMessage(err error) []byte {
	s := err.Error()
	if len(s) > maxErrorMessage {
		s = s[:maxErrorMessage]
	}
	return []byte(toValidUTF8(s))
}

func toValidUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return string(bytes.ToValidUTF8([]byte(s), []byte("?")))
}

// readRequestFrame reads one request frame of at most maxBody bytes of body
// and checks that nothing follows it.
func readRequestFrame(r io.Reader, maxBody int) (maxResp int, body []byte, err error) {
	var h [reqFrameHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, fmt.Errorf("%w: header: %w", errBadRequestFrame, err)
	}
	if h[0] != requestVersion {
		return 0, nil, fmt.Errorf("%w: version %d", errBadRequestFrame, h[0])
	}
	maxResp = int(binary.BigEndian.Uint32(h[1:5]))
	n := int(binary.BigEndian.Uint32(h[5:9]))
	if maxResp > MaxRequestBody {
		return 0, nil, fmt.Errorf("%w: response limit %d above %d", errBadRequestFrame, maxResp, MaxRequestBody)
	}
	if n > maxBody {
		return 0, nil, fmt.Errorf("%w: body of %d bytes exceeds %d", errBadRequestFrame, n, maxBody)
	}
	if body, err = readBody(r, n); err != nil {
		return 0, nil, err
	}
	if err := expectEOF(r); err != nil {
		return 0, nil, err
	}
	return maxResp, body, nil
}

// readResponseFrame reads one response frame whose body may be at most
// maxBody bytes (maxErrorMessage for a non-OK status).
func readResponseFrame(r io.Reader, maxBody int) (ReqStatus, []byte, error) {
	var h [respFrameHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, fmt.Errorf("%w: header: %w", errBadRequestFrame, err)
	}
	if h[0] != requestVersion {
		return 0, nil, fmt.Errorf("%w: version %d", errBadRequestFrame, h[0])
	}
	st := ReqStatus(h[1])
	if st > ReqBadRequest {
		return 0, nil, fmt.Errorf("%w: status %d", errBadRequestFrame, h[1])
	}
	n := int(binary.BigEndian.Uint32(h[2:6]))
	limit := maxBody
	if st != ReqOK {
		limit = maxErrorMessage
	}
	if n > limit {
		return 0, nil, fmt.Errorf("%w: %s body of %d bytes exceeds %d", errBadRequestFrame, st, n, limit)
	}
	body, err := readBody(r, n)
	if err != nil {
		return 0, nil, err
	}
	if st != ReqOK && !utf8.Valid(body) {
		return 0, nil, fmt.Errorf("%w: status message is not UTF-8", errBadRequestFrame)
	}
	if err := expectEOF(r); err != nil {
		return 0, nil, err
	}
	return st, body, nil
}

// readBody reads exactly n bytes; the buffer grows as bytes arrive, so a
// peer that announces a large body and sends nothing costs little memory.
func readBody(r io.Reader, n int) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(min(n, firstBodyAllocation))
	if k, err := io.CopyN(&buf, r, int64(n)); err != nil {
		return nil, fmt.Errorf("%w: body truncated at %d of %d bytes: %w", errBadRequestFrame, k, n, err)
	}
	return buf.Bytes(), nil
}

// expectEOF checks that the frame ended the stream.
func expectEOF(r io.Reader) error {
	var one [1]byte
	k, err := r.Read(one[:])
	if k != 0 {
		return fmt.Errorf("%w: bytes after the frame", errBadRequestFrame)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: after the frame: %w", errBadRequestFrame, err)
	}
	if err == nil {
		// A reader may return (0, nil); one more read settles it.
		if k, err = r.Read(one[:]); k != 0 || (err != nil && !errors.Is(err, io.EOF)) {
			return fmt.Errorf("%w: stream not closed after the frame", errBadRequestFrame)
		}
	}
	return nil
}
