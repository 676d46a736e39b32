// Package durable holds what the agent's state files (the spool, the
// checkpoint) need to survive a crash or a power loss: a file created,
// renamed or removed is only durable once its directory is synced too.
package durable

import (
	"fmt"
	"os"
)

// SyncDir flushes dir's entries (files created, renamed or removed in it)
// to stable storage.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
