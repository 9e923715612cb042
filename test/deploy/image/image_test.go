// Package image checks the container image that `make image` builds (an OCI
// layout in MCPGW_IMAGE_OCI): its configuration, its root filesystem, and
// the binary run from that filesystem the way a cluster runs it: as user
// 65532, with a read-only root, writable only where the chart mounts
// volumes. No container runtime is needed: the test unpacks the layers
// itself and runs the binary with chroot in a private mount namespace.
package image

import (
	"archive/tar"
	"compress/gzip"
	"crypto/x509"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// nonroot is the image's user (distroless's "nonroot" id).
const nonroot = 65532

// ociImage is the part of an OCI image configuration the test reads.
type ociImage struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Config       struct {
		User         string              `json:"User"`
		Entrypoint   []string            `json:"Entrypoint"`
		Cmd          []string            `json:"Cmd"`
		WorkingDir   string              `json:"WorkingDir"`
		ExposedPorts map[string]struct{} `json:"ExposedPorts"`
		Labels       map[string]string   `json:"Labels"`
	} `json:"config"`
}

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
}

// layout is an OCI image layout directory holding one image.
type layout struct {
	dir    string
	config ociImage
	layers []descriptor
}

func openLayout(t *testing.T) *layout {
	t.Helper()
	dir := os.Getenv("MCPGW_IMAGE_OCI")
	if dir == "" {
		t.Skip("MCPGW_IMAGE_OCI is not set: `make test-image` builds the image and sets it")
	}
	l := &layout{dir: dir}
	var index struct{ Manifests []descriptor }
	l.readJSON(t, filepath.Join(dir, "index.json"), &index)
	if len(index.Manifests) != 1 {
		t.Fatalf("%s/index.json: %d manifests, want 1", dir, len(index.Manifests))
	}
	var manifest struct {
		Config descriptor
		Layers []descriptor
	}
	l.readJSON(t, l.blob(t, index.Manifests[0]), &manifest)
	l.readJSON(t, l.blob(t, manifest.Config), &l.config)
	l.layers = manifest.Layers
	return l
}

func (l *layout) blob(t *testing.T, d descriptor) string {
	t.Helper()
	algo, hex, ok := strings.Cut(d.Digest, ":")
	if !ok || algo != "sha256" || strings.ContainsAny(hex, "/.") {
		t.Fatalf("unexpected digest %q", d.Digest)
	}
	return filepath.Join(l.dir, "blobs", algo, hex)
}

func (l *layout) readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// unpack extracts the layers in order into a new directory, applying OCI
// whiteouts, with the owners and modes the image records (the test runs as
// root). Entries that would leave the directory are refused.
func (l *layout) unpack(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	// The root of the image is the "/" a non-root user must be able to walk.
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range l.layers {
		if err := extractLayer(l.blob(t, d), d.MediaType, root); err != nil {
			t.Fatalf("layer %s: %v", d.Digest, err)
		}
	}
	return root
}

func extractLayer(path, mediaType, root string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(mediaType, "+gzip") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return err
		}
		defer gz.Close()
		r = gz
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean("/" + h.Name)
		target := filepath.Join(root, name)
		dir, base := filepath.Split(target)
		if base == ".wh..wh..opq" {
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
					return err
				}
			}
			continue
		}
		if w, ok := strings.CutPrefix(base, ".wh."); ok {
			if err := os.RemoveAll(filepath.Join(dir, w)); err != nil {
				return err
			}
			continue
		}
		if err := writeEntry(tr, h, root, target); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
	}
}

func writeEntry(tr *tar.Reader, h *tar.Header, root, target string) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	mode := os.FileMode(h.Mode) & os.ModePerm
	switch h.Typeflag {
	case tar.TypeDir:
		if err := os.MkdirAll(target, mode); err != nil {
			return err
		}
	case tar.TypeReg:
		_ = os.RemoveAll(target)
		f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_EXCL, mode)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case tar.TypeSymlink:
		_ = os.RemoveAll(target)
		if err := os.Symlink(h.Linkname, target); err != nil {
			return err
		}
		return os.Lchown(target, h.Uid, h.Gid)
	case tar.TypeLink:
		_ = os.RemoveAll(target)
		if err := os.Link(filepath.Join(root, filepath.Clean("/"+h.Linkname)), target); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unsupported tar entry type %q", h.Typeflag)
	}
	if err := os.Lchown(target, h.Uid, h.Gid); err != nil {
		return err
	}
	// Chmod after chown: chown clears setuid bits, and MkdirAll applied the umask.
	return os.Chmod(target, mode|os.FileMode(h.Mode)&(os.ModeSticky|os.ModeSetuid|os.ModeSetgid))
}

// TestImageConfig checks what a runtime reads from the image configuration.
func TestImageConfig(t *testing.T) {
	l := openLayout(t)
	c := l.config
	if c.OS != "linux" || c.Architecture == "" {
		t.Errorf("platform %s/%s", c.OS, c.Architecture)
	}
	if c.Config.User != fmt.Sprintf("%d:%d", nonroot, nonroot) {
		t.Errorf("User = %q, want %d:%d (numeric, so runAsNonRoot can verify it)", c.Config.User, nonroot, nonroot)
	}
	if !slices.Equal(c.Config.Entrypoint, []string{"/usr/local/bin/mcpgw"}) {
		t.Errorf("Entrypoint = %q", c.Config.Entrypoint)
	}
	if !slices.Equal(c.Config.Cmd, []string{"serve", "--config", "/etc/mcpgw/config.yaml"}) {
		t.Errorf("Cmd = %q", c.Config.Cmd)
	}
	for _, p := range []string{"8000/tcp", "9090/tcp"} {
		if _, ok := c.Config.ExposedPorts[p]; !ok {
			t.Errorf("port %s not exposed: %v", p, c.Config.ExposedPorts)
		}
	}
	for label, want := range map[string]string{
		"org.opencontainers.image.version":  os.Getenv("MCPGW_IMAGE_VERSION"),
		"org.opencontainers.image.revision": os.Getenv("MCPGW_IMAGE_REVISION"),
		"org.opencontainers.image.title":    "mcpgw",
	} {
		got, ok := c.Config.Labels[label]
		switch {
		case !ok || got == "":
			t.Errorf("label %s missing", label)
		case want != "" && got != want:
			t.Errorf("label %s = %q, want %q", label, got, want)
		}
	}
}

// TestImageFilesystem checks the root filesystem: the static binary, CA
// certificates, the non-root user, and nothing else worth attacking.
func TestImageFilesystem(t *testing.T) {
	l := openLayout(t)
	root := l.unpack(t)

	bin, err := elf.Open(filepath.Join(root, "usr/local/bin/mcpgw"))
	if err != nil {
		t.Fatalf("binary: %v", err)
	}
	defer bin.Close()
	for _, p := range bin.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("mcpgw is dynamically linked: the image has no libc")
		}
	}

	pem, err := os.ReadFile(filepath.Join(root, "etc/ssl/certs/ca-certificates.crt"))
	if err != nil {
		t.Fatalf("CA bundle: %v", err)
	}
	if n := strings.Count(string(pem), "BEGIN CERTIFICATE"); n < 50 || !x509.NewCertPool().AppendCertsFromPEM(pem) {
		t.Errorf("CA bundle holds %d certificates; want a real bundle", n)
	}

	passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil || !strings.Contains(string(passwd), fmt.Sprintf(":%d:%d:", nonroot, nonroot)) {
		t.Errorf("/etc/passwd has no user %d: %v %q", nonroot, err, passwd)
	}

	for _, shell := range []string{"bin/sh", "bin/bash", "bin/busybox", "usr/bin/sh"} {
		if _, err := os.Lstat(filepath.Join(root, shell)); err == nil {
			t.Errorf("/%s exists: the image should hold no shell", shell)
		}
	}
	var files []string
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			files = append(files, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"etc/group", "etc/passwd", "etc/ssl/certs/ca-certificates.crt", "usr/local/bin/mcpgw"}
	if !slices.Equal(files, want) {
		t.Errorf("files in the image = %q, want exactly %q", files, want)
	}

	st, err := os.Stat(filepath.Join(root, "var/lib/mcpgw"))
	if err != nil {
		t.Fatal(err)
	}
	if uid, gid := owner(st); uid != nonroot || gid != nonroot {
		t.Errorf("/var/lib/mcpgw owned by %d:%d, want %d:%d (the working directory)", uid, gid, nonroot, nonroot)
	}
}

func owner(fi os.FileInfo) (uid, gid int) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return -1, -1
	}
	return int(st.Uid), int(st.Gid)
}
