package p2p

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ipfs/go-cid"
)

// Blob exchange framing (version 1, big-endian). One request and one response
// per stream.
//
//	request:  u8 version | u8 flags | u64 max size | u8 len, CID bytes
//	response: u8 version | u8 status | u8 encoding | u64 size | u64 wire length,
//	          then wire-length bytes of body (only for statusOK)
//
// size is the blob's length; the body is the blob itself (encodingRaw, wire
// length == size) or its zstd frame (encodingZstd, decompressing to exactly
// size bytes).
const (
	exchangeVersion = 1

	flagAcceptZstd = 1 << 0

	requestFixedLen   = 1 + 1 + 8 + 1
	responseHeaderLen = 1 + 1 + 1 + 8 + 8
	maxCIDLen         = 64
)

type exchangeStatus uint8

const (
	statusOK exchangeStatus = iota
	statusNotFound
	statusTooLarge
	statusBusy
	statusBadRequest
)

func (s exchangeStatus) String() string {
	switch s {
	case statusOK:
		return "ok"
	case statusNotFound:
		return "not found"
	case statusTooLarge:
		return "too large"
	case statusBusy:
		return "busy"
	case statusBadRequest:
		return "bad request"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

type bodyEncoding uint8

const (
	encodingRaw bodyEncoding = iota
	encodingZstd
)

// errBadFrame is wrapped by every framing error.
var errBadFrame = errors.New("p2p: bad exchange frame")

type blobRequest struct {
	cid        cid.Cid
	acceptZstd bool
	maxSize    uint64
}

func (q blobRequest) marshal() []byte {
	cb := q.cid.Bytes()
	b := make([]byte, 0, requestFixedLen+len(cb))
	b = append(b, exchangeVersion)
	var flags byte
	if q.acceptZstd {
		flags |= flagAcceptZstd
	}
	b = append(b, flags)
	b = binary.BigEndian.AppendUint64(b, q.maxSize)
	b = append(b, byte(len(cb)))
	return append(b, cb...)
}

// readRequest reads one request from r, reading no more than the frame.
func readRequest(r io.Reader) (blobRequest, error) {
	var q blobRequest
	var hdr [requestFixedLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return q, fmt.Errorf("%w: request header: %v", errBadFrame, err)
	}
	if hdr[0] != exchangeVersion {
		return q, fmt.Errorf("%w: request version %d, want %d", errBadFrame, hdr[0], exchangeVersion)
	}
	if hdr[1]&^flagAcceptZstd != 0 {
		return q, fmt.Errorf("%w: unknown request flags %#x", errBadFrame, hdr[1])
	}
	q.acceptZstd = hdr[1]&flagAcceptZstd != 0
	q.maxSize = binary.BigEndian.Uint64(hdr[2:10])
	n := int(hdr[10])
	if n == 0 || n > maxCIDLen {
		return q, fmt.Errorf("%w: CID length %d", errBadFrame, n)
	}
	cb := make([]byte, n)
	if _, err := io.ReadFull(r, cb); err != nil {
		return q, fmt.Errorf("%w: request CID: %v", errBadFrame, err)
	}
	c, err := cid.Cast(cb)
	if err != nil {
		return q, fmt.Errorf("%w: request CID: %v", errBadFrame, err)
	}
	if _, err := CheckCID(c); err != nil {
		return q, fmt.Errorf("%w: %v", errBadFrame, err)
	}
	q.cid = c
	return q, nil
}

type responseHeader struct {
	status   exchangeStatus
	encoding bodyEncoding
	size     uint64
	wireLen  uint64
}

func (h responseHeader) marshal() []byte {
	b := make([]byte, 0, responseHeaderLen)
	b = append(b, exchangeVersion, byte(h.status), byte(h.encoding))
	b = binary.BigEndian.AppendUint64(b, h.size)
	return binary.BigEndian.AppendUint64(b, h.wireLen)
}

// maxZstdWire bounds the body of a zstd response for a blob of size bytes:
// zstd never expands by more than a small block overhead, so anything
// larger is a lie meant to make the reader buffer.
func maxZstdWire(size uint64) uint64 { return size + size/128 + 1024 }

// readResponseHeader reads a header and checks it against the size the
// reader is willing to receive.
func readResponseHeader(r io.Reader, maxSize uint64) (responseHeader, error) {
	var h responseHeader
	var b [responseHeaderLen]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return h, fmt.Errorf("%w: response header: %w", errBadFrame, err)
	}
	if b[0] != exchangeVersion {
		return h, fmt.Errorf("%w: response version %d, want %d", errBadFrame, b[0], exchangeVersion)
	}
	h.status = exchangeStatus(b[1])
	h.encoding = bodyEncoding(b[2])
	h.size = binary.BigEndian.Uint64(b[3:11])
	h.wireLen = binary.BigEndian.Uint64(b[11:19])
	if h.status > statusBadRequest {
		return h, fmt.Errorf("%w: unknown status %d", errBadFrame, b[1])
	}
	if h.status != statusOK {
		if h.encoding != 0 || h.size != 0 || h.wireLen != 0 {
			return h, fmt.Errorf("%w: %v response carries a body", errBadFrame, h.status)
		}
		return h, nil
	}
	if h.size > maxSize {
		return h, fmt.Errorf("%w: %d bytes announced, limit %d", ErrTooLarge, h.size, maxSize)
	}
	switch h.encoding {
	case encodingRaw:
		if h.wireLen != h.size {
			return h, fmt.Errorf("%w: raw body of %d bytes for a %d-byte blob", errBadFrame, h.wireLen, h.size)
		}
	case encodingZstd:
		if h.wireLen > maxZstdWire(h.size) {
			return h, fmt.Errorf("%w: zstd body of %d bytes for a %d-byte blob", errBadFrame, h.wireLen, h.size)
		}
	default:
		return h, fmt.Errorf("%w: unknown encoding %d", errBadFrame, b[2])
	}
	return h, nil
}
