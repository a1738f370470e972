package p2p

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/trinity-net/trinity/internal/atomicfile"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Blob store errors.
var (
	ErrNotFound  = errors.New("p2p: blob not found")
	ErrTooLarge  = errors.New("p2p: blob too large")
	ErrStoreFull = errors.New("p2p: blob store full")
)

// BlobInfo describes a stored blob.
type BlobInfo struct {
	CID      cid.Cid
	Size     int64
	Round    uint64 // meaningful when HasRound
	HasRound bool
	Created  time.Time
}

// blobMeta is the JSON of the .meta file written beside each blob.
type blobMeta struct {
	Size     int64  `json:"size"`
	Round    uint64 `json:"round"`
	HasRound bool   `json:"has_round"`
	Created  int64  `json:"created_unix_nano"`
}

// BlobOption tags a Put or steers a Get.
type BlobOption func(*blobOpts)

type blobOpts struct {
	round    uint64
	hasRound bool
	hints    []peer.ID
	maxSize  int64
}

// WithRound records the round a blob belongs to, for GC by round.
func WithRound(r uint64) BlobOption {
	return func(o *blobOpts) { o.round, o.hasRound = r, true }
}

// FromPeers names peers to ask first in Get, in order: typically the peer
// that announced the blob.
func FromPeers(ids ...peer.ID) BlobOption {
	return func(o *blobOpts) { o.hints = append(o.hints, ids...) }
}

// WithMaxSize lowers the size accepted for one Get below Config.MaxBlobSize.
func WithMaxSize(n int64) BlobOption {
	return func(o *blobOpts) { o.maxSize = n }
}

func applyBlobOpts(opts []BlobOption) blobOpts {
	var o blobOpts
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Store keeps blobs on disk, one file per CID plus a .meta file, both written
// atomically. It is safe for concurrent use.
type Store struct {
	dir      string
	maxBlob  int64
	maxTotal int64
	now      func() time.Time

	mu       sync.Mutex
	index    map[cid.Cid]BlobInfo
	total    int64 // bytes of indexed blobs plus reservations of Puts in flight
	inflight map[cid.Cid]bool
}

// OpenStore opens (creating if needed) a store in dir.
func OpenStore(dir string, maxBlob, maxTotal int64) (*Store, error) {
	if maxBlob <= 0 || maxTotal < maxBlob {
		return nil, fmt.Errorf("p2p: opening blob store: limits blob %d / total %d invalid", maxBlob, maxTotal)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("p2p: opening blob store: %w", err)
	}
	s := &Store{dir: dir, maxBlob: maxBlob, maxTotal: maxTotal, now: time.Now,
		index: make(map[cid.Cid]BlobInfo), inflight: make(map[cid.Cid]bool)}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) load() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("p2p: reading blob store: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-") {
			// Left by a crash between create and rename.
			_ = os.Remove(filepath.Join(s.dir, name))
			continue
		}
		if e.IsDir() || strings.HasSuffix(name, ".meta") {
			continue
		}
		c, err := cid.Decode(name)
		if err != nil {
			continue
		}
		if _, err := CheckCID(c); err != nil {
			continue
		}
		st, err := e.Info()
		if err != nil {
			return fmt.Errorf("p2p: reading blob store: %w", err)
		}
		info := BlobInfo{CID: c, Size: st.Size(), Created: st.ModTime()}
		if m, err := s.readMeta(c); err == nil && m.Size == st.Size() {
			info.Round, info.HasRound, info.Created = m.Round, m.HasRound, time.Unix(0, m.Created)
		}
		s.index[c] = info
		s.total += info.Size
	}
	return nil
}

func (s *Store) blobPath(c cid.Cid) string { return filepath.Join(s.dir, c.String()) }
func (s *Store) metaPath(c cid.Cid) string { return filepath.Join(s.dir, c.String()+".meta") }

func (s *Store) readMeta(c cid.Cid) (blobMeta, error) {
	var m blobMeta
	b, err := os.ReadFile(s.metaPath(c))
	if err != nil {
		return m, err
	}
	if len(b) > 4096 {
		return m, errors.New("meta file too large")
	}
	err = json.Unmarshal(b, &m)
	return m, err
}

// Put stores data and returns its CID. Storing a blob already present only
// updates nothing and returns its CID.
func (s *Store) Put(data []byte, opts ...BlobOption) (cid.Cid, error) {
	o := applyBlobOpts(opts)
	n := int64(len(data))
	if n > s.maxBlob {
		return cid.Undef, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, s.maxBlob)
	}
	c := CIDOf(data)
	s.mu.Lock()
	if _, ok := s.index[c]; ok || s.inflight[c] {
		s.mu.Unlock()
		return c, nil
	}
	if s.total+n > s.maxTotal {
		s.mu.Unlock()
		return cid.Undef, fmt.Errorf("%w: %d + %d bytes exceeds %d", ErrStoreFull, s.total, n, s.maxTotal)
	}
	s.total += n
	s.inflight[c] = true
	s.mu.Unlock()

	info := BlobInfo{CID: c, Size: n, Round: o.round, HasRound: o.hasRound, Created: s.now()}
	err := s.write(info, data)
	s.mu.Lock()
	delete(s.inflight, c)
	if err != nil {
		s.total -= n
	} else {
		s.index[c] = info
	}
	s.mu.Unlock()
	if err != nil {
		return cid.Undef, fmt.Errorf("p2p: storing blob %s: %w", c, err)
	}
	return c, nil
}

// write puts the metadata first so that a blob file never exists without
// its round tag after a crash.
func (s *Store) write(info BlobInfo, data []byte) error {
	m, err := json.Marshal(blobMeta{Size: info.Size, Round: info.Round, HasRound: info.HasRound, Created: info.Created.UnixNano()})
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(s.metaPath(info.CID), m); err != nil {
		return err
	}
	return atomicfile.WriteFile(s.blobPath(info.CID), data)
}

// Has reports whether the blob is stored.
func (s *Store) Has(c cid.Cid) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.index[c]
	return ok
}

// Stat returns the blob's metadata.
func (s *Store) Stat(c cid.Cid) (BlobInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.index[c]
	return i, ok
}

// Get reads a blob and checks its hash; a corrupt file is deleted.
func (s *Store) Get(c cid.Cid) ([]byte, error) {
	if !s.Has(c) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, c)
	}
	data, err := os.ReadFile(s.blobPath(c))
	if errors.Is(err, fs.ErrNotExist) {
		s.forget(c)
		return nil, fmt.Errorf("%w: %s", ErrNotFound, c)
	}
	if err != nil {
		return nil, fmt.Errorf("p2p: reading blob %s: %w", c, err)
	}
	if err := verifyBlob(c, data); err != nil {
		_ = s.Delete(c)
		return nil, fmt.Errorf("p2p: stored blob corrupt, deleted: %w", err)
	}
	return data, nil
}

// open returns the blob's file for serving; the reader at the other end
// checks the hash.
func (s *Store) open(c cid.Cid) (*os.File, int64, error) {
	if !s.Has(c) {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, c)
	}
	f, err := os.Open(s.blobPath(c))
	if err != nil {
		return nil, 0, fmt.Errorf("p2p: opening blob %s: %w", c, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("p2p: opening blob %s: %w", c, err)
	}
	return f, st.Size(), nil
}

func (s *Store) forget(c cid.Cid) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.index[c]; ok {
		delete(s.index, c)
		s.total -= i.Size
	}
}

// Delete removes a blob and its metadata.
func (s *Store) Delete(c cid.Cid) error {
	s.forget(c)
	err1 := os.Remove(s.blobPath(c))
	err2 := os.Remove(s.metaPath(c))
	for _, err := range []error{err1, err2} {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("p2p: deleting blob %s: %w", c, err)
		}
	}
	return nil
}

// List returns the metadata of every stored blob.
func (s *Store) List() []BlobInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]BlobInfo, 0, len(s.index))
	for _, i := range s.index {
		out = append(out, i)
	}
	return out
}

// Size returns the bytes stored.
func (s *Store) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// GCPolicy says which blobs GC removes: those older than MaxAge (when
// positive) and those tagged with a round below BeforeRound (when positive).
// Blobs without a round tag are removed by age only.
type GCPolicy struct {
	MaxAge      time.Duration
	BeforeRound uint64
}

// GC removes the blobs the policy selects and returns how many and how many
// bytes.
func (s *Store) GC(p GCPolicy) (removed int, freed int64, err error) {
	now := s.now()
	var victims []BlobInfo
	for _, i := range s.List() {
		old := p.MaxAge > 0 && now.Sub(i.Created) > p.MaxAge
		stale := p.BeforeRound > 0 && i.HasRound && i.Round < p.BeforeRound
		if old || stale {
			victims = append(victims, i)
		}
	}
	for _, i := range victims {
		if e := s.Delete(i.CID); e != nil {
			err = errors.Join(err, e)
			continue
		}
		removed++
		freed += i.Size
	}
	return removed, freed, err
}
