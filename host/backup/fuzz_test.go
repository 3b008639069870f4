package backup_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/storage-host/storage-host/abi"
	"github.com/storage-host/storage-host/host/backup"
)

// FuzzVerify feeds arbitrary bytes to the reader a restore trusts: it
// never panics, it either verifies the file or says why with ErrCorrupt
// or ErrNotBackup or ErrUnsupportedVersion, and a file it verifies reads
// back, record by record, to exactly the counts it reported, its
// tombstones apart.
func FuzzVerify(f *testing.F) {
	for _, n := range []int{0, 1, 3} {
		var buf bytes.Buffer
		w, err := backup.NewWriter(&buf, backup.Header{Created: t0, Backend: "b", Plugin: "memory", PluginVersion: "1.0.0"})
		if err != nil {
			f.Fatal(err)
		}
		recs := sample(n)
		for i := range recs {
			if err := w.Write(&recs[i]); err != nil {
				f.Fatal(err)
			}
		}
		if n == 3 {
			over := recs[0]
			over.Override = true
			if err := w.Write(&over); err != nil {
				f.Fatal(err)
			}
			if err := w.Write(&backup.Record{Kind: abi.KindAlert, Tombstone: true, Alert: abi.Alert{ID: "gone"}}); err != nil {
				f.Fatal(err)
			}
			w.Settle("17-3")
		}
		if _, err := w.Close(); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
		f.Add(buf.Bytes()[:buf.Len()/2])
	}
	f.Add([]byte("SHBACKUP"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		sum, err := backup.Verify(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, backup.ErrCorrupt) && !errors.Is(err, backup.ErrNotBackup) && !errors.Is(err, backup.ErrUnsupportedVersion) {
				t.Fatalf("Verify: an error that is none of the documented ones: %v", err)
			}
			return
		}
		r, err := backup.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("verified, but NewReader: %v", err)
		}
		var n, tombs int64
		for {
			rec, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("verified, but record %d: %v", n, err)
			}
			if rec.Tombstone {
				tombs++
			} else {
				n++
			}
		}
		if n != sum.Counts.Total() || tombs != sum.Tombstones {
			t.Fatalf("verified %d records and %d tombstones, read %d and %d", sum.Counts.Total(), sum.Tombstones, n, tombs)
		}
	})
}
