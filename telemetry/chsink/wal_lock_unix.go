//go:build unix

package chsink

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive lock on dir's LOCK file, so that two writers
// (in one process or two) never share a write-ahead log. The kernel releases
// it when the process dies.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking the write-ahead log folder: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("the write-ahead log folder %s is in use by another writer; give each writer its own WAL.Dir", dir)
		}
		return nil, fmt.Errorf("locking the write-ahead log folder: %w", err)
	}
	return f, nil
}
