package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Checkpoint is how far a table's verification got: every chunk up to and
// including After was compared, and Pending holds the keys found
// mismatched but not yet re-checked. A run that starts with a checkpoint
// re-checks Pending and continues after After. A completed pass clears it.
type Checkpoint struct {
	After    string `json:"after,omitempty"`
	HasAfter bool   `json:"has_after,omitempty"`
	// Scanned: every chunk was compared; only the re-check was left.
	Scanned bool     `json:"scanned,omitempty"`
	Pending []string `json:"pending,omitempty"`
	// Salt is not kept: each run draws its own.
	Updated time.Time `json:"updated"`
}

// Checkpoints keeps checkpoints by id (source>target:table). Implementations
// are safe for concurrent use.
type Checkpoints interface {
	Load(ctx context.Context, id string) (cp Checkpoint, ok bool, err error)
	Save(ctx context.Context, id string, cp Checkpoint) error
	Clear(ctx context.Context, id string) error
}

// MemoryCheckpoints keeps checkpoints in memory: a verifier rebuilt in the
// same process resumes, a restarted process does not. The zero value is
// ready to use.
type MemoryCheckpoints struct {
	mu sync.Mutex
	m  map[string]Checkpoint
}

// Load implements Checkpoints.
func (m *MemoryCheckpoints) Load(_ context.Context, id string) (Checkpoint, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cp, ok := m.m[id]
	return cp, ok, nil
}

// Save implements Checkpoints.
func (m *MemoryCheckpoints) Save(_ context.Context, id string, cp Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]Checkpoint{}
	}
	m.m[id] = cp
	return nil
}

// Clear implements Checkpoints.
func (m *MemoryCheckpoints) Clear(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, id)
	return nil
}

// FileCheckpoints keeps checkpoints in one JSON file (an object by id),
// rewritten atomically (a temporary file renamed over it) at every save,
// so that a restarted process resumes where the last one stopped.
type FileCheckpoints struct {
	path string
	mu   sync.Mutex
}

// NewFileCheckpoints returns the checkpoints kept in path; the file is
// created at the first save. Its folder must exist.
func NewFileCheckpoints(path string) (*FileCheckpoints, error) {
	if path == "" {
		return nil, errors.New("checkpoint file: the path is empty")
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("checkpoint file %s: its folder %s does not exist: create it or choose another path", path, dir)
	}
	return &FileCheckpoints{path: path}, nil
}

func (f *FileCheckpoints) readLocked() (map[string]Checkpoint, error) {
	b, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]Checkpoint{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the checkpoint file: %w", err)
	}
	m := map[string]Checkpoint{}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("reading the checkpoint file %s: %w (remove it to start afresh)", f.path, err)
		}
	}
	return m, nil
}

func (f *FileCheckpoints) writeLocked(m map[string]Checkpoint) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("writing the checkpoint file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.path), filepath.Base(f.path)+".*")
	if err != nil {
		return fmt.Errorf("writing the checkpoint file: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("writing the checkpoint file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing the checkpoint file: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		return fmt.Errorf("writing the checkpoint file: %w", err)
	}
	return nil
}

// Load implements Checkpoints.
func (f *FileCheckpoints) Load(_ context.Context, id string) (Checkpoint, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.readLocked()
	if err != nil {
		return Checkpoint{}, false, err
	}
	cp, ok := m[id]
	return cp, ok, nil
}

// Save implements Checkpoints.
func (f *FileCheckpoints) Save(_ context.Context, id string, cp Checkpoint) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.readLocked()
	if err != nil {
		return err
	}
	m[id] = cp
	return f.writeLocked(m)
}

// Clear implements Checkpoints.
func (f *FileCheckpoints) Clear(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.readLocked()
	if err != nil {
		return err
	}
	if _, ok := m[id]; !ok {
		return nil
	}
	delete(m, id)
	return f.writeLocked(m)
}
