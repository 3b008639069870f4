package backup

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"

	"github.com/storage-host/storage-host/abi"
)

// The file layout; FORMAT.md describes it byte by byte.
const (
	// Magic opens every backup file.
	Magic = "SHBACKUP"
	// Version is the format version this package writes. It reads
	// version 1 files too (VersionOne).
	Version = 2
	// VersionOne is the first format: no redo frames, no settled flag.
	VersionOne = 1
	// Ext is the extension of backup files the daemon writes.
	Ext = ".shbk"

	// frameEnd is the kind byte that ends the frames.
	frameEnd = 0
	// frameOverride, or'ed with a record kind, marks a redo frame holding
	// a record's value at the backup's end; frameTombstone marks a redo
	// frame saying a record is absent from the snapshot (version 2).
	frameOverride  = 0x80
	frameTombstone = 4
	// maxHeader bounds the header block, and maxFrame a frame's body: a
	// record is at most a plugin's response (host.Limits.MaxResponseBytes
	// caps it, 16 MiB by default; 4 GiB at most), and a damaged length
	// must not make a reader allocate gigabytes.
	maxHeader = 64 << 10
	maxFrame  = 64 << 20
	// maxPosition bounds the event log position in the trailer.
	maxPosition = 256
)

// Errors of a file that is not a sound backup. Every damage — a
// truncation, a flipped byte, a wrong count — matches ErrCorrupt.
var (
	// ErrNotBackup: the file does not start with Magic.
	ErrNotBackup = errors.New("backup: not a storage-host backup file")
	// ErrUnsupportedVersion: the file is of a format version this package
	// cannot read.
	ErrUnsupportedVersion = errors.New("backup: unsupported format version")
	// ErrCorrupt: the file is damaged.
	ErrCorrupt = errors.New("backup: file is corrupt")
	// ErrTruncated: the file ends early. It matches ErrCorrupt too.
	ErrTruncated = fmt.Errorf("%w: truncated", ErrCorrupt)
)

// Header describes where and when a backup was made.
type Header struct {
	// Created is when the backup started.
	Created time.Time
	// Backend is the name of the backend backed up.
	Backend string
	// Plugin, PluginVersion and ABI are what the backend's plugin declared
	// about itself (abi.Metadata).
	Plugin        string
	PluginVersion string
	ABI           abi.Version
}

func (h *Header) encode(e *abi.Encoder) {
	e.Time(h.Created)
	e.String(h.Backend)
	e.String(h.Plugin)
	e.String(h.PluginVersion)
	e.Uvarint(uint64(h.ABI.Major))
	e.Uvarint(uint64(h.ABI.Minor))
}

func (h *Header) decode(d *abi.Decoder) {
	h.Created = d.Time()
	h.Backend = d.String()
	h.Plugin = d.String()
	h.PluginVersion = d.String()
	h.ABI.Major = d.Uint16()
	h.ABI.Minor = d.Uint16()
}

// Record is one record of a backup: a metric, an alert or an agent state,
// as its Kind says, with every field the backend returned except the
// absolute expiry, which TTL replaces.
type Record struct {
	Kind   abi.RecordKind
	Metric abi.Metric
	Alert  abi.Alert
	State  abi.AgentState
	// TTL is how long the record had left to live when it was read,
	// rounded up to the millisecond; zero means it never expires.
	TTL time.Duration
	// Override marks a redo frame: the record as it was re-read after a
	// write during the backup. It supersedes every earlier frame of its
	// key (version 2).
	Override bool
	// Tombstone marks a redo frame saying that the record with this key
	// is absent from the snapshot: only Kind and the key fields (a
	// metric's AgentID, Name and Timestamp, an alert's ID, an agent
	// state's AgentID) are set. It supersedes every earlier frame of its
	// key (version 2).
	Tombstone bool
}

// recKey identifies a record within a backup: its kind and key.
type recKey struct {
	kind abi.RecordKind
	a, b string // agent ID and name of a metric; the ID of the others
	ts   int64  // a metric's timestamp, Unix ns
}

// key returns r's kind and key.
func (r *Record) key() recKey {
	switch r.Kind {
	case abi.KindMetric:
		return recKey{kind: r.Kind, a: r.Metric.AgentID, b: r.Metric.Name, ts: r.Metric.Timestamp.UnixNano()}
	case abi.KindAlert:
		return recKey{kind: r.Kind, a: r.Alert.ID}
	case abi.KindAgentState:
		return recKey{kind: r.Kind, a: r.State.AgentID}
	}
	return recKey{kind: r.Kind}
}

// compare orders keys of one kind as a listing does (abi/README.md
// section 13.4): metrics by agent ID, name and timestamp, the others by
// ID; -1, 0 or +1.
func (k recKey) compare(o recKey) int {
	return cmp.Or(strings.Compare(k.a, o.a), strings.Compare(k.b, o.b), cmp.Compare(k.ts, o.ts))
}

// String names the record of k, for messages.
func (k recKey) String() string {
	if k.kind == abi.KindMetric {
		return fmt.Sprintf("metric %q %q %s", k.a, k.b, time.Unix(0, k.ts).UTC().Format(time.RFC3339Nano))
	}
	return fmt.Sprintf("%s %q", k.kind, k.a)
}

// record returns a tombstone Record of k.
func (k recKey) record() *Record {
	r := &Record{Kind: k.kind, Tombstone: true}
	switch k.kind {
	case abi.KindMetric:
		r.Metric = abi.Metric{AgentID: k.a, Name: k.b, Timestamp: time.Unix(0, k.ts).UTC()}
	case abi.KindAlert:
		r.Alert.ID = k.a
	case abi.KindAgentState:
		r.State.AgentID = k.a
	}
	return r
}

// encode appends a tombstone's body: its kind, then its key.
func (k recKey) encode(e *abi.Encoder) {
	e.Uvarint(uint64(k.kind))
	e.String(k.a)
	if k.kind == abi.KindMetric {
		e.String(k.b)
		e.Time(time.Unix(0, k.ts))
	}
}

// check reports what is wrong with a tombstone's key.
func (k recKey) check() error {
	if !k.kind.Valid() {
		return fmt.Errorf("unknown record kind %d", k.kind)
	}
	if k.a == "" || (k.kind == abi.KindMetric && (k.b == "" || k.ts == 0)) {
		return fmt.Errorf("%s tombstone without its key", k.kind)
	}
	return nil
}

// restore returns r as an item of host.Store.Restore, expiring TTL after
// now.
func (r *Record) restore(now time.Time, mode abi.RestoreMode) abi.Restore {
	it := abi.Restore{Kind: r.Kind, Metric: r.Metric, Alert: r.Alert, State: r.State, Mode: mode}
	var at time.Time
	if r.TTL > 0 {
		at = now.Add(r.TTL)
	}
	switch r.Kind {
	case abi.KindMetric:
		it.Metric.ExpiresAt = at
	case abi.KindAlert:
		it.Alert.ExpiresAt = at
	case abi.KindAgentState:
		it.State.ExpiresAt = at
	}
	return it
}

// encode appends the ABI encoding of the record, its expires_at left out
// (0).
func (r *Record) encode(e *abi.Encoder) {
	switch r.Kind {
	case abi.KindMetric:
		m := r.Metric
		m.ExpiresAt = time.Time{}
		m.Encode(e)
	case abi.KindAlert:
		a := r.Alert
		a.ExpiresAt = time.Time{}
		a.Encode(e)
	case abi.KindAgentState:
		s := r.State
		s.ExpiresAt = time.Time{}
		s.Encode(e)
	}
}

// Counts are numbers of records by kind.
type Counts struct {
	Metrics     int64 `json:"metrics"`
	Alerts      int64 `json:"alerts"`
	AgentStates int64 `json:"agent_states"`
}

// Of returns the count of kind k.
func (c Counts) Of(k abi.RecordKind) int64 {
	switch k {
	case abi.KindMetric:
		return c.Metrics
	case abi.KindAlert:
		return c.Alerts
	case abi.KindAgentState:
		return c.AgentStates
	}
	return 0
}

// Total returns the sum of the counts.
func (c Counts) Total() int64 { return c.Metrics + c.Alerts + c.AgentStates }

func (c *Counts) add(k abi.RecordKind, n int64) {
	switch k {
	case abi.KindMetric:
		c.Metrics += n
	case abi.KindAlert:
		c.Alerts += n
	case abi.KindAgentState:
		c.AgentStates += n
	}
}

// String reads "N metrics, N alerts, N agent states".
func (c Counts) String() string {
	return fmt.Sprintf("%d metrics, %d alerts, %d agent states", c.Metrics, c.Alerts, c.AgentStates)
}

// kinds lists the record kinds in the order a backup holds them.
var kinds = []abi.RecordKind{abi.KindMetric, abi.KindAlert, abi.KindAgentState}

// Summary describes a whole backup file.
type Summary struct {
	Header Header
	// Counts are the records the file holds, by kind.
	Counts Counts
	// Bytes is the file's length.
	Bytes int64
	// SHA256 is the checksum of its trailer.
	SHA256 [sha256.Size]byte
	// Version is the file's format version.
	Version int
	// Overrides counts the override frames among the records Counts
	// counts, and Tombstones the tombstone frames (version 2; 0 in
	// version 1). Counts.Total() - Overrides is the number of records
	// the scan found; the snapshot holds at most Counts.Total().
	Overrides, Tombstones int64
	// Settled says the backup is a snapshot consistent as of its end: the
	// writes made while it ran were replayed until a round found none
	// (FORMAT.md, "What consistent means"). False in version 1 files and
	// when the backend's events were disabled, lost or did not settle in
	// five rounds: the file is then consistent per record only.
	Settled bool
	// Position is the event log position (an events.Event ID) the
	// snapshot is consistent as of when Settled; "" otherwise.
	Position string
}

// Writer writes a backup file: NewWriter writes its header, Write each
// record, Close the trailer. Nothing in the file counts until Close has
// written the trailer: a reader refuses a file without one.
type Writer struct {
	w      *bufio.Writer
	h      hash.Hash
	enc    abi.Encoder
	sum    Summary
	closed bool
	redo   bool // an override or tombstone frame was written
	err    error
}

// NewWriter writes the opening of a backup described by h to w.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	return newWriter(w, h, Version)
}

// newWriter writes the opening of a backup in format version v (tests
// write version 1 files with it).
func newWriter(w io.Writer, h Header, v byte) (*Writer, error) {
	if !h.Created.IsZero() {
		h.Created = time.Unix(0, h.Created.UnixNano()).UTC() // as a Reader returns it
	}
	bw := &Writer{h: sha256.New(), sum: Summary{Header: h, Version: int(v)}}
	bw.w = bufio.NewWriterSize(io.MultiWriter(w, bw.h), 256<<10)
	bw.raw([]byte(Magic))
	bw.raw([]byte{v})
	var hdr abi.Encoder
	h.encode(&hdr)
	bw.bytes(hdr.Bytes())
	return bw, bw.err
}

func (w *Writer) raw(b []byte) {
	if w.err != nil {
		return
	}
	n, err := w.w.Write(b)
	w.sum.Bytes += int64(n)
	w.err = err
}

func (w *Writer) uvarint(v uint64) { w.raw(binary.AppendUvarint(nil, v)) }

func (w *Writer) bytes(b []byte) {
	w.uvarint(uint64(len(b)))
	w.raw(b)
}

// Write appends one record. A record a backend could not restore (see
// abi.Restore.Check) is refused. Override and tombstone records (redo
// frames) come after every plain record: a plain record after one is
// refused.
func (w *Writer) Write(r *Record) error {
	if w.closed {
		return errors.New("backup: write after Close")
	}
	if w.err != nil {
		return w.err
	}
	if (r.Override || r.Tombstone) && w.sum.Version < 2 {
		return fmt.Errorf("backup: format version %d has no redo frames", w.sum.Version)
	}
	if r.Override && r.Tombstone {
		return errors.New("backup: a record is an override or a tombstone, not both")
	}
	if !r.Override && !r.Tombstone && w.redo {
		return errors.New("backup: a plain record after a redo frame")
	}
	if r.Tombstone {
		k := r.key()
		if err := k.check(); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		w.enc.Reset()
		k.encode(&w.enc)
		if err := w.enc.Err(); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		w.raw([]byte{frameTombstone})
		w.bytes(w.enc.Bytes())
		if w.err == nil {
			w.redo = true
			w.sum.Tombstones++
		}
		return w.err
	}
	if r.TTL < 0 {
		return fmt.Errorf("backup: %s with a negative TTL", r.Kind)
	}
	it := abi.Restore{Kind: r.Kind, Metric: r.Metric, Alert: r.Alert, State: r.State, Mode: abi.RestoreFail}
	if err := it.Check(); err != nil {
		return fmt.Errorf("backup: %s cannot be restored: %w", r.Kind, err)
	}
	w.enc.Reset()
	r.encode(&w.enc)
	if err := w.enc.Err(); err != nil { // a time a restore could not send
		return fmt.Errorf("backup: %s cannot be restored: %w", r.Kind, err)
	}
	w.enc.Uvarint(ttlMillis(r.TTL))
	if len(w.enc.Bytes()) > maxFrame {
		return fmt.Errorf("backup: %s of %d bytes is larger than a frame may be (%d)", r.Kind, len(w.enc.Bytes()), maxFrame)
	}
	kind := byte(r.Kind)
	if r.Override {
		kind |= frameOverride
	}
	w.raw([]byte{kind})
	w.bytes(w.enc.Bytes())
	if w.err == nil {
		w.sum.Counts.add(r.Kind, 1)
		if r.Override {
			w.redo = true
			w.sum.Overrides++
		}
	}
	return w.err
}

// Settle records in the trailer that the file is a snapshot settled as
// of the event log position pos (see Summary.Settled). Call it before
// Close; it has no effect on a version 1 file or with an empty pos.
func (w *Writer) Settle(pos string) {
	if w.sum.Version >= 2 && pos != "" && len(pos) <= maxPosition {
		w.sum.Settled, w.sum.Position = true, pos
	}
}

// ttlMillis rounds a remaining TTL up to whole milliseconds, so that a
// record with any time left keeps some.
func ttlMillis(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	return uint64((d + time.Millisecond - 1) / time.Millisecond)
}

// Close writes the trailer — the counts and the checksum — and flushes.
// It does not close the underlying writer.
func (w *Writer) Close() (Summary, error) {
	if w.closed {
		return w.sum, w.err
	}
	w.closed = true
	w.raw([]byte{frameEnd})
	w.uvarint(uint64(w.sum.Counts.Metrics))
	w.uvarint(uint64(w.sum.Counts.Alerts))
	w.uvarint(uint64(w.sum.Counts.AgentStates))
	if w.sum.Version >= 2 {
		w.uvarint(uint64(w.sum.Overrides))
		w.uvarint(uint64(w.sum.Tombstones))
		w.bytes([]byte(w.sum.Position))
	}
	if w.err == nil {
		w.err = w.w.Flush() // the hash has seen everything before the checksum
	}
	if w.err != nil {
		return w.sum, w.err
	}
	w.h.Sum(w.sum.SHA256[:0])
	w.raw(w.sum.SHA256[:])
	if w.err == nil {
		w.err = w.w.Flush()
	}
	return w.sum, w.err
}

// Reader reads a backup file. Next returns records as it meets them,
// before the checksum at the end of the file has been checked: a caller
// that must not act on a damaged file calls Verify first (Restore does).
type Reader struct {
	r    *bufio.Reader
	h    hash.Hash
	sum  Summary
	read Counts // records returned so far
	// overrides and tombstones count the redo frames returned so far.
	overrides, tombstones int64
	buf                   []byte
	done                  bool
	err                   error
}

// NewReader reads the opening of a backup from r.
func NewReader(r io.Reader) (*Reader, error) {
	br := &Reader{r: bufio.NewReaderSize(r, 256<<10), h: sha256.New()}
	magic, err := br.r.Peek(len(Magic))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("backup: reading: %w", err)
	}
	switch {
	case string(magic) == Magic:
		_, _ = br.full(len(Magic))
	case len(magic) > 0 && len(magic) < len(Magic) && Magic[:len(magic)] == string(magic):
		return nil, fmt.Errorf("%w after %d bytes", ErrTruncated, len(magic))
	default:
		return nil, ErrNotBackup
	}
	v, err := br.byte()
	if err != nil {
		return nil, err
	}
	if v != Version && v != VersionOne {
		return nil, fmt.Errorf("%w %d (this host reads versions %d and %d)", ErrUnsupportedVersion, v, VersionOne, Version)
	}
	br.sum.Version = int(v)
	hdr, err := br.block(maxHeader, "header")
	if err != nil {
		return nil, err
	}
	d := abi.NewDecoder(hdr)
	br.sum.Header.decode(d)
	if err := d.Finish(); err != nil {
		return nil, br.corrupt("header: %v", err)
	}
	return br, nil
}

// Header returns the file's header.
func (r *Reader) Header() Header { return r.sum.Header }

func (r *Reader) corrupt(format string, args ...any) error {
	return fmt.Errorf("%w at byte %d: %s", ErrCorrupt, r.sum.Bytes, fmt.Sprintf(format, args...))
}

func (r *Reader) truncated() error {
	return fmt.Errorf("%w after %d bytes", ErrTruncated, r.sum.Bytes)
}

// full reads n bytes into the hash and returns them; they alias r.buf.
func (r *Reader) full(n int) ([]byte, error) {
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	b := r.buf[:n]
	got, err := io.ReadFull(r.r, b)
	r.h.Write(b[:got])
	r.sum.Bytes += int64(got)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, r.truncated()
		}
		return nil, fmt.Errorf("backup: reading: %w", err)
	}
	return b, nil
}

func (r *Reader) byte() (byte, error) {
	b, err := r.r.ReadByte()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, r.truncated()
		}
		return 0, fmt.Errorf("backup: reading: %w", err)
	}
	r.h.Write([]byte{b})
	r.sum.Bytes++
	return b, nil
}

func (r *Reader) uvarint() (uint64, error) {
	var x uint64
	for shift := uint(0); ; shift += 7 {
		b, err := r.byte()
		if err != nil {
			return 0, err
		}
		if shift == 63 && b > 1 {
			return 0, r.corrupt("varint overflows 64 bits")
		}
		x |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return x, nil
		}
	}
}

// block reads a length-prefixed block of at most limit bytes.
func (r *Reader) block(limit int, what string) ([]byte, error) {
	n, err := r.uvarint()
	if err != nil {
		return nil, err
	}
	if n > uint64(limit) {
		return nil, r.corrupt("%s of %d bytes, more than the %d allowed", what, n, limit)
	}
	return r.full(int(n))
}

// Next returns the next record, or io.EOF once the trailer has been read
// and found sound. Any damage to the file is an error matching ErrCorrupt;
// the records returned before it came from the damaged file.
func (r *Reader) Next() (*Record, error) {
	if r.err != nil {
		return nil, r.err
	}
	rec, err := r.next()
	if err != nil {
		r.err = err
	}
	return rec, err
}

func (r *Reader) next() (*Record, error) {
	if r.done {
		return nil, io.EOF
	}
	kind, err := r.byte()
	if err != nil {
		return nil, err
	}
	if kind == frameEnd {
		return nil, r.trailer()
	}
	v2 := r.sum.Version >= 2
	if v2 && kind == frameTombstone {
		return r.tombstone()
	}
	override := v2 && kind&frameOverride != 0
	k := abi.RecordKind(kind &^ frameOverride)
	if !override {
		k = abi.RecordKind(kind)
	}
	if !k.Valid() {
		return nil, r.corrupt("unknown frame kind %d", kind)
	}
	if !override && r.overrides+r.tombstones > 0 {
		return nil, r.corrupt("a plain %s after a redo frame", k)
	}
	body, err := r.block(maxFrame, "record")
	if err != nil {
		return nil, err
	}
	rec := &Record{Kind: k, Override: override}
	d := abi.NewDecoder(body)
	switch k {
	case abi.KindMetric:
		rec.Metric.Decode(d)
	case abi.KindAlert:
		rec.Alert.Decode(d)
	case abi.KindAgentState:
		rec.State.Decode(d)
	}
	ms := d.Uvarint()
	if err := d.Finish(); err != nil {
		return nil, r.corrupt("%s: %v", k, err)
	}
	if ms > uint64(1<<63-1)/uint64(time.Millisecond) {
		return nil, r.corrupt("%s: TTL of %d ms out of range", k, ms)
	}
	rec.TTL = time.Duration(ms) * time.Millisecond
	it := abi.Restore{Kind: k, Metric: rec.Metric, Alert: rec.Alert, State: rec.State, Mode: abi.RestoreFail}
	if err := it.Check(); err != nil {
		return nil, r.corrupt("%s cannot be restored: %v", k, err)
	}
	r.read.add(k, 1)
	if override {
		r.overrides++
	}
	return rec, nil
}

// tombstone reads the body of a tombstone frame.
func (r *Reader) tombstone() (*Record, error) {
	body, err := r.block(maxFrame, "tombstone")
	if err != nil {
		return nil, err
	}
	d := abi.NewDecoder(body)
	k := recKey{kind: abi.RecordKind(min(d.Uvarint(), 255))}
	k.a = d.String()
	if k.kind == abi.KindMetric {
		k.b = d.String()
		if t := d.Time(); !t.IsZero() {
			k.ts = t.UnixNano()
		}
	}
	if err := d.Finish(); err != nil {
		return nil, r.corrupt("tombstone: %v", err)
	}
	if err := k.check(); err != nil {
		return nil, r.corrupt("%v", err)
	}
	r.tombstones++
	return k.record(), nil
}

// trailer reads the counts and the checksum, and checks that nothing
// follows.
func (r *Reader) trailer() error {
	var c Counts
	for _, k := range kinds {
		n, err := r.uvarint()
		if err != nil {
			return err
		}
		if n > 1<<62 {
			return r.corrupt("count of %d %ss", n, k)
		}
		c.add(k, int64(n))
	}
	var overrides, tombstones uint64
	var position string
	if r.sum.Version >= 2 {
		var err error
		if overrides, err = r.uvarint(); err != nil {
			return err
		}
		if tombstones, err = r.uvarint(); err != nil {
			return err
		}
		p, err := r.block(maxPosition, "position")
		if err != nil {
			return err
		}
		position = string(p)
	}
	var want [sha256.Size]byte
	r.h.Sum(want[:0])
	got, err := r.full(sha256.Size)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want[:]) {
		return fmt.Errorf("%w: checksum mismatch (the file says %x, its content hashes to %x)", ErrCorrupt, got, want)
	}
	if c != r.read {
		return r.corrupt("the trailer counts %s, the file holds %s", c, r.read)
	}
	if overrides != uint64(r.overrides) || tombstones != uint64(r.tombstones) {
		return r.corrupt("the trailer counts %d overrides and %d tombstones, the file holds %d and %d",
			overrides, tombstones, r.overrides, r.tombstones)
	}
	if _, err := r.r.ReadByte(); err == nil {
		return r.corrupt("data after the trailer")
	} else if !errors.Is(err, io.EOF) {
		return fmt.Errorf("backup: reading: %w", err)
	}
	copy(r.sum.SHA256[:], got)
	r.sum.Counts = c
	r.sum.Overrides, r.sum.Tombstones = r.overrides, r.tombstones
	r.sum.Position, r.sum.Settled = position, position != ""
	r.done = true
	return io.EOF
}

// Summary describes the file; it is complete once Next has returned
// io.EOF.
func (r *Reader) Summary() Summary { return r.sum }

// Verify reads a whole backup and checks it: the magic, the version,
// every frame, the counts and the checksum; nothing may follow the
// trailer. It returns what the file holds, or an error saying what is
// wrong.
//
// In a version 2 file the last frame of a key wins: see Superseded.
func Verify(r io.Reader) (Summary, error) {
	sum, _, err := verify(r, false)
	return sum, err
}

// lastFrames maps each key with a redo frame to the index (0-based, in
// file order, tombstones included) of its last frame. Its size is the
// number of keys written to during the backup, not the file's.
type lastFrames map[recKey]int64

// superseded reports whether frame i, holding rec, is not part of the
// snapshot: a tombstone, or a frame a later one of its key replaces.
func (l lastFrames) superseded(i int64, rec *Record) bool {
	if rec.Tombstone {
		return true
	}
	if len(l) == 0 {
		return false
	}
	last, ok := l[rec.key()]
	return ok && last != i
}

// verify is Verify; with track, it also returns the last frame of each
// key that has a redo frame.
func verify(r io.Reader, track bool) (Summary, lastFrames, error) {
	br, err := NewReader(r)
	if err != nil {
		return Summary{}, nil, err
	}
	var last lastFrames
	for i := int64(0); ; i++ {
		rec, err := br.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return br.Summary(), last, nil
			}
			return br.Summary(), nil, err
		}
		if track && (rec.Override || rec.Tombstone) {
			if last == nil {
				last = lastFrames{}
			}
			last[rec.key()] = i
		}
	}
}
