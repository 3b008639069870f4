//go:build linux || freebsd || netbsd || openbsd || dragonfly || solaris || aix

package host

import (
	"os"
	"syscall"
	"time"
)

// accessTime is info's access time, or the zero time when the platform's
// stat does not give it.
func accessTime(info os.FileInfo) time.Time {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return time.Time{}
	}
	return time.Unix(st.Atim.Unix())
}
