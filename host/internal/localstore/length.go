package localstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
)

// The parts of bbolt's file format checkLength reads: two meta pages at
// the start of the file, the second one page size in, each a 16-byte page
// header followed by the meta, whose checksum is FNV-1a over the meta's
// first 56 bytes.
const (
	boltMagic       = 0xED0CDAED
	boltVersion     = 2
	pageHeaderBytes = 16
	metaSummed      = 56 // magic … txid
)

// checkLength refuses a bbolt file shorter than its newest valid meta
// page says it is: one cut by a failed copy or a full disk; and, with
// ErrDamaged, one whose pages reachable from its root are not a B+tree's
// (pageWalk). bbolt would
// read past the end of its mapping while it rebuilds its freelist (on a
// goroutine of its own, where a panic or a SIGBUS ends the process, not
// the call); refused here, the open fails with the file named, and the
// file is left as it is. A file whose meta pages are both invalid is left
// to bbolt, which refuses it with an error of its own.
//
// It also returns what the file says of a commit bbolt will drop: the meta
// page of the transaction after the newest valid one's fails its checksum
// (bbolt writes a commit's meta page last, alternating between the two),
// and does not name the transaction before it. bbolt opens the file at
// the older transaction without a word; the caller says so.
func checkLength(path string) (lost string, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() {
		return "", err // a directory and the like: bbolt says what it is
	}
	var best struct {
		ok                   bool
		txid, need, pageSize uint64
		root                 uint64 // the root bucket's page
	}
	pageSize := uint64(0)
	var badTxid [2]uint64 // the transaction a meta page whose checksum fails names
	var bad [2]bool
	for i := range 2 {
		meta := make([]byte, pageHeaderBytes+metaSummed+8)
		off := int64(i) * int64(pageSize)
		if i == 1 && pageSize == 0 {
			pageSize = 4096 // the first meta is invalid: bbolt's default page
			off = int64(pageSize)
		}
		if _, err := f.ReadAt(meta, off); err != nil {
			if err == io.EOF {
				break
			}
			return "", err
		}
		m := meta[pageHeaderBytes:]
		le := binary.LittleEndian
		if le.Uint32(m[0:]) != boltMagic || le.Uint32(m[4:]) != boltVersion {
			continue
		}
		h := fnv.New64a()
		h.Write(m[:metaSummed])
		if h.Sum64() != le.Uint64(m[metaSummed:]) {
			bad[i], badTxid[i] = true, le.Uint64(m[48:])
			continue
		}
		size := uint64(le.Uint32(m[8:]))
		if i == 0 {
			pageSize = size
		}
		txid, pgid := le.Uint64(m[48:]), le.Uint64(m[40:])
		if !best.ok || txid > best.txid {
			best.ok, best.txid, best.need, best.pageSize = true, txid, pgid*size, size
			best.root = le.Uint64(m[16:])
		}
	}
	if best.ok && uint64(info.Size()) < best.need {
		return "", fmt.Errorf("%s is %d bytes, shorter than the %d its header names: the file was cut short; restore it from a copy, or move it away to start empty", path, info.Size(), best.need)
	}
	if !best.ok {
		return "", nil
	}
	w := pageWalk{f: f, size: uint64(info.Size()), pageSize: best.pageSize, high: best.need / best.pageSize, seen: map[uint64]bool{}}
	if err := w.visit(best.root, 0); err != nil {
		return "", damaged(path, err)
	}
	// The meta page of transaction best.txid+1 is page (best.txid+1) % 2;
	// damaged, it names that transaction, or garbage, or (harmless) the
	// transaction before best's.
	if next := (best.txid + 1) % 2; bad[next] && badTxid[next] != best.txid-1 {
		lost = fmt.Sprintf("%s: the header page of its last commit (transaction %d) is damaged, and the file opens at the commit before it (%d): "+
			"what that last commit wrote is gone. A crash while the commit was written leaves the same, and then the writes were never acknowledged; "+
			"otherwise the page was damaged since, and acknowledged writes were lost: restore the file from a backup if they matter",
			path, best.txid+1, best.txid)
	}
	return lost, nil
}

// The parts of bbolt's page format pageWalk reads: a page is a 16-byte
// header (its id, flags, element count, overflow pages) and count
// elements of 16 bytes, each naming its key (and a leaf's value) by an
// offset from the element; a leaf value flagged as a bucket starts with
// the bucket's root page id, 0 for a bucket inline in the value.
const (
	branchPage     = 0x01
	leafPage       = 0x02
	bucketLeaf     = 0x01
	elementBytes   = 16
	bucketHeader   = 16
	maxBranchDepth = 64
)

// pageWalk reads the pages of a bbolt file reachable from its root
// bucket, refusing one whose header, elements or children are not a
// B+tree's: bbolt trusts them, and reading such a page panics or faults,
// at open on a goroutine of its own (its freelist rebuild), where nothing
// can recover it.
type pageWalk struct {
	f              *os.File
	size, pageSize uint64
	high           uint64 // pages the meta says the file has
	seen           map[uint64]bool
}

func (w *pageWalk) visit(id uint64, depth int) error {
	switch {
	case depth > maxBranchDepth:
		return fmt.Errorf("page %d is %d levels deep", id, depth)
	case id < 2 || id >= w.high:
		return fmt.Errorf("page %d is outside the file's %d pages", id, w.high)
	case w.seen[id]:
		return fmt.Errorf("page %d is reached twice", id)
	}
	w.seen[id] = true
	head := make([]byte, pageHeaderBytes)
	if _, err := w.f.ReadAt(head, int64(id*w.pageSize)); err != nil {
		return fmt.Errorf("page %d: %v", id, err)
	}
	le := binary.LittleEndian
	overflow := uint64(le.Uint32(head[12:]))
	if got := le.Uint64(head); got != id {
		return fmt.Errorf("page %d says it is page %d", id, got)
	}
	if id+overflow >= w.high {
		return fmt.Errorf("page %d runs %d pages past the file's end", id, overflow)
	}
	p := make([]byte, (overflow+1)*w.pageSize)
	if _, err := w.f.ReadAt(p, int64(id*w.pageSize)); err != nil {
		return fmt.Errorf("page %d: %v", id, err)
	}
	children, err := elements(p, id)
	if err != nil {
		return err
	}
	for _, c := range children {
		if err := w.visit(c, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// elements checks the elements of page p (id, for errors; a bucket inline
// in a leaf value is checked in place) and returns the pages they lead
// to: a branch's children, a leaf's buckets' roots.
func elements(p []byte, id uint64) ([]uint64, error) {
	le := binary.LittleEndian
	flags, count := le.Uint16(p[8:]), uint64(le.Uint16(p[10:]))
	if flags != branchPage && flags != leafPage {
		return nil, fmt.Errorf("page %d has flags %#x: neither a branch nor a leaf", id, flags)
	}
	if pageHeaderBytes+count*elementBytes > uint64(len(p)) {
		return nil, fmt.Errorf("page %d: %d elements do not fit in it", id, count)
	}
	var next []uint64
	for i := range count {
		at := pageHeaderBytes + i*elementBytes
		e := p[at : at+elementBytes]
		if flags == branchPage {
			pos, ksize := uint64(le.Uint32(e[0:])), uint64(le.Uint32(e[4:]))
			if at+pos+ksize > uint64(len(p)) {
				return nil, fmt.Errorf("page %d: key %d runs past the page", id, i)
			}
			next = append(next, le.Uint64(e[8:]))
			continue
		}
		lflags, pos := le.Uint32(e[0:]), uint64(le.Uint32(e[4:]))
		ksize, vsize := uint64(le.Uint32(e[8:])), uint64(le.Uint32(e[12:]))
		end := at + pos + ksize + vsize
		if end > uint64(len(p)) || end < at {
			return nil, fmt.Errorf("page %d: element %d runs past the page", id, i)
		}
		if lflags&bucketLeaf == 0 {
			continue
		}
		v := p[at+pos+ksize : end]
		if vsize < bucketHeader {
			return nil, fmt.Errorf("page %d: bucket %d has a %d-byte header", id, i, vsize)
		}
		if root := le.Uint64(v); root != 0 {
			next = append(next, root)
		} else if len(v) < bucketHeader+pageHeaderBytes {
			return nil, fmt.Errorf("page %d: inline bucket %d is cut short", id, i)
		} else if inner, err := elements(v[bucketHeader:], id); err != nil {
			return nil, err
		} else if len(inner) > 0 {
			return nil, fmt.Errorf("page %d: inline bucket %d names pages", id, i)
		}
	}
	return next, nil
}
