package policy

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// watch re-reads a local bundle file or directory when it changes, and
// activates it if it loads, verifies and compiles; otherwise the active
// policy keeps serving and Status names the rejected one. It polls rather
// than using fsnotify so that the atomic symlink swaps of mounted
// Kubernetes ConfigMaps and Secrets, and editors that replace files, are
// seen the same way as in-place writes.
func (e *Engine) watch(ctx context.Context, every time.Duration, seen string) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		fp, err := fingerprint(e.opts.Source)
		if err != nil {
			// Report a vanished or unreadable source once, not every tick.
			if err.Error() != lastErr {
				lastErr = err.Error()
				e.reject(fmt.Errorf("policy source %s: %w", e.opts.Source, err))
			}
			continue
		}
		lastErr = ""
		if fp == seen {
			continue
		}
		seen = fp
		if err := e.Reload(ctx); err != nil && ctx.Err() == nil {
			e.reject(err)
		}
	}
}

// fingerprint changes whenever the policy source does: for a bundle file,
// the hash of its bytes; for a directory, the names, sizes and modification
// times of its files (hashing every file of a large tree each tick would cost
// more than the reload it saves).
func fingerprint(source string) (string, error) {
	info, err := os.Stat(source)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if !info.IsDir() {
		f, err := os.Open(source)
		if err != nil {
			return "", err
		}
		defer f.Close()
		if _, err := io.Copy(h, f); err != nil {
			return "", err
		}
		return fmt.Sprintf("file:%x", h.Sum(nil)), nil
	}
	err = filepath.WalkDir(source, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(source, path)
		fmt.Fprintf(h, "%d %s %d %d\n", len(rel), rel, fi.Size(), fi.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("dir:%x", h.Sum(nil)), nil
}
