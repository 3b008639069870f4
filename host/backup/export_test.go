package backup

import (
	"io"
)

// NewWriterV1 writes a version 1 file, as a host before version 2 did.
func NewWriterV1(w io.Writer, h Header) (*Writer, error) { return newWriter(w, h, VersionOne) }
