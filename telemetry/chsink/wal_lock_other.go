//go:build !unix

package chsink

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDir creates dir's LOCK file; without flock it does not keep a second
// writer out.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking the write-ahead log folder: %w", err)
	}
	return f, nil
}
