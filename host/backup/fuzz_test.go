package backup_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/storage-host/storage-host/host/backup"
)

// FuzzVerify feeds arbitrary bytes to the reader a restore trusts: it
// never panics, it either verifies the file or says why with ErrCorrupt
// or ErrNotBackup or ErrUnsupportedVersion, and a file it verifies reads
// back, record by record, to exactly the counts it reported.
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
		var n int64
		for {
			_, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("verified, but record %d: %v", n, err)
			}
			n++
		}
		if n != sum.Counts.Total() {
			t.Fatalf("verified %d records, read %d", sum.Counts.Total(), n)
		}
	})
}
