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
// page says it is: one cut by a failed copy or a full disk. bbolt would
// read past the end of its mapping while it rebuilds its freelist (on a
// goroutine of its own, where a panic or a SIGBUS ends the process, not
// the call); refused here, the open fails with the file named, and the
// file is left as it is. A file whose meta pages are both invalid is left
// to bbolt, which refuses it with an error of its own.
func checkLength(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() {
		return err // a directory and the like: bbolt says what it is
	}
	var best struct {
		ok         bool
		txid, need uint64
	}
	pageSize := uint64(0)
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
			return err
		}
		m := meta[pageHeaderBytes:]
		le := binary.LittleEndian
		if le.Uint32(m[0:]) != boltMagic || le.Uint32(m[4:]) != boltVersion {
			continue
		}
		h := fnv.New64a()
		h.Write(m[:metaSummed])
		if h.Sum64() != le.Uint64(m[metaSummed:]) {
			continue
		}
		size := uint64(le.Uint32(m[8:]))
		if i == 0 {
			pageSize = size
		}
		txid, pgid := le.Uint64(m[48:]), le.Uint64(m[40:])
		if !best.ok || txid > best.txid {
			best.ok, best.txid, best.need = true, txid, pgid*size
		}
	}
	if best.ok && uint64(info.Size()) < best.need {
		return fmt.Errorf("%s is %d bytes, shorter than the %d its header names: the file was cut short; restore it from a copy, or move it away to start empty", path, info.Size(), best.need)
	}
	return nil
}
