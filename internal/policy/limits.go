package policy

import (
	"archive/tar"
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Bundle limits.
//
// OPA reads a bundle whole into memory, file by file, and only then checks
// its signature; its own guard, size_limit_bytes, bounds each file (1 GB by
// default) but neither their number nor their sum nor the download. A bundle
// of a few MB that expands to GBs of zeros therefore costs GBs before it is
// found to be unsigned. The engine checks every bundle against these limits
// first, from what can be known without expanding it: the download's
// Content-Length, then the compressed bytes as they arrive, then each tar
// header's declared size, before any file's content is read. OPA's
// size_limit_bytes is set to FileBytes as a second line.

// Default bundle limits.
const (
	DefaultMaxBundleBytes             = 64 << 20
	DefaultMaxBundleUncompressedBytes = 256 << 20
	DefaultMaxBundleFiles             = 10000
	DefaultMaxBundleFileBytes         = 64 << 20
)

// BundleLimits bound what the engine reads from a policy source. Zero fields
// take the defaults.
type BundleLimits struct {
	// Bytes bounds a bundle as stored or downloaded (compressed), in bytes
	// (policy.max_bundle_bytes).
	Bytes int64
	// UncompressedBytes bounds the sum of a bundle's files, and its whole
	// expanded tar stream (policy.max_bundle_uncompressed_bytes).
	UncompressedBytes int64
	// Files bounds the number of entries in a bundle or files in a policy
	// directory (policy.max_bundle_files).
	Files int
	// FileBytes bounds each file (policy.max_bundle_file_bytes); OPA's
	// size_limit_bytes is set to it.
	FileBytes int64
}

func (l BundleLimits) withDefaults() BundleLimits {
	l.Bytes = cmp.Or(l.Bytes, DefaultMaxBundleBytes)
	l.UncompressedBytes = cmp.Or(l.UncompressedBytes, DefaultMaxBundleUncompressedBytes)
	l.Files = cmp.Or(l.Files, DefaultMaxBundleFiles)
	l.FileBytes = cmp.Or(l.FileBytes, DefaultMaxBundleFileBytes)
	return l
}

func (l BundleLimits) validate() error {
	if l.Bytes < 0 || l.UncompressedBytes < 0 || l.Files < 0 || l.FileBytes < 0 {
		return errors.New("policy bundle limits must not be negative")
	}
	return nil
}

// LimitError says which bundle limit a policy source broke.
type LimitError struct {
	// Key is the configuration key of the limit, as policy.max_bundle_files.
	Key   string
	Limit int64
	// What describes what broke it.
	What string
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s: over policy.%s (%d)", e.What, e.Key, e.Limit)
}

func overLimit(key string, limit int64, format string, args ...any) error {
	return &LimitError{Key: key, Limit: limit, What: fmt.Sprintf(format, args...)}
}

// cappedReader reads at most cap bytes of r, then fails with tooLarge, so
// that a stream larger than allowed is never read whole.
type cappedReader struct {
	r        io.Reader
	n, cap   int64
	tooLarge error
	// exceeded: tooLarge was returned (gzip and tar may report it as
	// another error, such as an unexpected EOF).
	exceeded bool
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.n >= c.cap {
		// One byte more tells "exactly cap" from "more than cap".
		var one [1]byte
		if n, err := io.ReadFull(c.r, one[:]); n == 0 {
			return 0, err
		}
		c.exceeded = true
		return 0, c.tooLarge
	}
	if int64(len(p)) > c.cap-c.n {
		p = p[:c.cap-c.n]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// scanTarball checks a gzipped tar bundle, read from r, against l without
// holding any of it: the compressed stream is capped at l.Bytes, the
// expanded one at l.UncompressedBytes, and each entry is counted and its
// declared size checked before its content is read (the tar reader then
// skips over it, expanding at most what the limits allow).
func scanTarball(r io.Reader, l BundleLimits) error {
	compressed := &cappedReader{r: r, cap: l.Bytes,
		tooLarge: overLimit("max_bundle_bytes", l.Bytes, "bundle is larger than %d bytes", l.Bytes)}
	var expanded *cappedReader
	// A read error may be a cap reached underneath, reported otherwise.
	unreadable := func(err error) error {
		switch {
		case compressed.exceeded:
			return compressed.tooLarge
		case expanded != nil && expanded.exceeded:
			return expanded.tooLarge
		}
		return fmt.Errorf("not a gzipped tar bundle: %w", err)
	}
	zr, err := gzip.NewReader(bufio.NewReader(compressed))
	if err != nil {
		return unreadable(err)
	}
	defer zr.Close()
	expanded = &cappedReader{r: zr, cap: l.UncompressedBytes,
		tooLarge: overLimit("max_bundle_uncompressed_bytes", l.UncompressedBytes, "bundle expands to more than %d bytes", l.UncompressedBytes)}
	tr := tar.NewReader(expanded)
	var files int
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return unreadable(err)
		}
		// Every entry counts, directories and links too: each costs a
		// header to read.
		if files++; files > l.Files {
			return overLimit("max_bundle_files", int64(l.Files), "bundle holds more than %d entries", l.Files)
		}
		if h.Size > l.FileBytes {
			return overLimit("max_bundle_file_bytes", l.FileBytes, "bundle file %s is %d bytes", strings.TrimPrefix(h.Name, "/"), h.Size)
		}
		if total += h.Size; total > l.UncompressedBytes {
			return overLimit("max_bundle_uncompressed_bytes", l.UncompressedBytes, "bundle files add up to more than %d bytes", l.UncompressedBytes)
		}
	}
}

// readBundleFile reads a bundle file that passes l: OPA is then given these
// bytes, not the file, which may have changed since it was checked.
func readBundleFile(path string, l BundleLimits) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if info.Size() > l.Bytes {
		return nil, overLimit("max_bundle_bytes", l.Bytes, "bundle file is %d bytes", info.Size())
	}
	raw, err := io.ReadAll(&cappedReader{r: f, cap: l.Bytes,
		tooLarge: overLimit("max_bundle_bytes", l.Bytes, "bundle file is larger than %d bytes", l.Bytes)})
	if err != nil {
		return nil, err
	}
	if err := scanTarball(bytes.NewReader(raw), l); err != nil {
		return nil, err
	}
	return raw, nil
}

// checkDir checks the files of a policy directory that the loader will read
// (test files excluded) against l, from their sizes, before any is read.
func checkDir(dir string, l BundleLimits) error {
	var files int
	var total int64
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		// As OPA's loader: regular files only (it does not follow links).
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if skipTestFiles(path, info, 0) {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		if files++; files > l.Files {
			return overLimit("max_bundle_files", int64(l.Files), "policy directory holds more than %d files", l.Files)
		}
		if info.Size() > l.FileBytes {
			return overLimit("max_bundle_file_bytes", l.FileBytes, "policy file %s is %d bytes", rel, info.Size())
		}
		if total += info.Size(); total > l.UncompressedBytes {
			return overLimit("max_bundle_uncompressed_bytes", l.UncompressedBytes, "policy files add up to more than %d bytes", l.UncompressedBytes)
		}
		return nil
	})
}

// checkSource checks a local policy source, a bundle file or a directory.
func checkSource(path string, l BundleLimits) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if info.IsDir() {
		return checkDir(path, l)
	}
	_, err = readBundleFile(path, l)
	return err
}
