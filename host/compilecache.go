package host

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// compilationCacheBytes bounds the compilation cache directory: wazero
// keeps one file per module it ever compiled there and never removes one,
// so a plugin file replaced again and again (each version a new module of
// megabytes; the built-ins compile to 15–18 MB each) would fill the disk
// the data directory shares. A variable for tests.
var compilationCacheBytes int64 = 1 << 30

// staleCacheWrite is the age past which a temporary file in the cache is
// taken for a write that never finished (a process killed while writing).
const staleCacheWrite = time.Hour

// cachedModule is one file of the compilation cache.
type cachedModule struct {
	path string
	size int64
	used time.Time
}

// trimCompilationCache removes compiled modules from the cache at dir, the
// least recently used first, until what stays is at most limit bytes, and
// answers how many it removed and their bytes. A module's last use is its
// access time where the file system keeps one (Linux's default, relatime,
// moves it at the first read after a write and then at most once a day),
// else when it was written. Only the files wazero writes are touched: those
// in the subdirectories it makes (one per wazero version and platform,
// older versions' included), not dir's own files nor anything deeper.
// Temporary files of writes that never finished count and go first; those
// of writes that may be running are left alone. Errors (a file another
// process removed first, a directory that is not there) leave the rest as
// they are: trimming is best effort and never fails a load.
func trimCompilationCache(dir string, limit int64) (removed int, freed int64) {
	subdirs, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0
	}
	var (
		files []cachedModule
		total int64
	)
	for _, sd := range subdirs {
		if !sd.IsDir() || !strings.HasPrefix(sd.Name(), "wazero-") {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(dir, sd.Name()))
		if err != nil {
			continue
		}
		for _, e := range entries {
			if !e.Type().IsRegular() {
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue
			}
			f := cachedModule{path: filepath.Join(dir, sd.Name(), e.Name()), size: info.Size(), used: lastUse(info)}
			if strings.HasSuffix(e.Name(), ".tmp") {
				if time.Since(info.ModTime()) < staleCacheWrite {
					continue
				}
				f.used = time.Time{} // first to go
			}
			files = append(files, f)
			total += f.size
		}
	}
	if total <= limit {
		return 0, 0
	}
	slices.SortFunc(files, func(a, b cachedModule) int { return a.used.Compare(b.used) })
	for _, f := range files {
		if total <= limit {
			break
		}
		if err := os.Remove(f.path); err != nil {
			continue
		}
		total -= f.size
		removed++
		freed += f.size
	}
	return removed, freed
}

// lastUse is the later of a file's access and modification times.
func lastUse(info os.FileInfo) time.Time {
	if a := accessTime(info); a.After(info.ModTime()) {
		return a
	}
	return info.ModTime()
}
