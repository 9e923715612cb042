package image

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/testutil"
)

// inImage is the shell step between the private mount namespace and the
// binary: it makes the unpacked root read-only, mounts what the Helm chart
// mounts (the config read-only, emptyDirs for /var/lib/mcpgw and /tmp), then
// enters the root as the image's user and working directory. Only host
// tools run here; the image itself holds no shell.
const inImage = `set -eu
root=$1 cfg=$2; shift 2
mount --bind "$root" "$root"
mount -o remount,bind,ro "$root"
mount --bind "$cfg" "$root/etc/mcpgw"
mount -o remount,bind,ro "$root/etc/mcpgw"
mount -t tmpfs -o size=64m,mode=0700,uid=65532,gid=65532 tmpfs "$root/var/lib/mcpgw"
mount -t tmpfs -o size=16m,mode=1777 tmpfs "$root/tmp"
exec unshare --root="$root" --wd=/var/lib/mcpgw --setgid 65532 --setuid 65532 -- /usr/local/bin/mcpgw "$@"
`

// mcpgwInImage returns the command running the image's mcpgw with args. The
// environment is empty, as in a fresh container: nothing of the host's
// MCPGW_* leaks in.
func mcpgwInImage(t *testing.T, root, cfgDir string, args ...string) *exec.Cmd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("running the image's binary needs root (mount namespace, chroot, setuid); make test runs as root")
	}
	for _, tool := range []string{"unshare", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found (util-linux)", tool)
		}
	}
	cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "--", "sh", "-c", inImage, "sh", root, cfgDir}, args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	return cmd
}

func TestImageVersion(t *testing.T) {
	l := openLayout(t)
	root := l.unpack(t)
	out, err := mcpgwInImage(t, root, t.TempDir(), "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "mcpgw ") {
		t.Fatalf("mcpgw version in the image: %v\n%s", err, out)
	}
	if want := os.Getenv("MCPGW_IMAGE_VERSION"); want != "" && !strings.Contains(string(out), want) {
		t.Errorf("mcpgw version in the image says %q, want the image's version %q", bytes.TrimSpace(out), want)
	}
	t.Logf("%s", bytes.TrimSpace(out))
}

// TestImageServe starts `mcpgw serve` from the image with a config that
// needs no network beyond loopback (a JWKS served by the test, the shipped
// policies as a directory), waits until it is ready, reads both listeners,
// then stops it with SIGTERM as the kubelet would.
func TestImageServe(t *testing.T) {
	l := openLayout(t)
	root := l.unpack(t)
	jwks := serveJWKS(t)
	cfgDir := t.TempDir()
	copyDir(t, "../../../policies", filepath.Join(cfgDir, "policies"))
	listen, metrics := freeAddr(t), freeAddr(t)
	config := fmt.Sprintf(`server:
  listen: %[1]s
  public_url: http://%[1]s
  metrics_listen: %[2]s
identity:
  issuers:
    - issuer: https://idp.example.com/oauth2/default
      audiences: [api://mcpgw]
      jwks_url: %[3]s
backends:
  notes:
    url: http://127.0.0.1:9/mcp
    auth_method: none
agents:
  smoke:
    client_id: smoke
    issuer: https://idp.example.com/oauth2/default
    backend_access: [notes]
policy:
  bundle: /etc/mcpgw/policies
  allow_unsigned: true
`, listen, metrics, jwks)
	// store.dsn and policy.persist_dir keep their relative defaults: they
	// must land in the image's working directory, the only writable place.
	if err := os.WriteFile(filepath.Join(cfgDir, "config.yaml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	// The mount point is the image's /etc/mcpgw; its files must be
	// readable by the image's user.
	if err := os.Chmod(cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}

	cmd := mcpgwInImage(t, root, cfgDir, "serve", "--config", "/etc/mcpgw/config.yaml")
	var logs testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("mcpgw output:\n%s", logs.String())
		}
	})

	base := "http://" + listen
	waitFor(t, exited, base+"/readyz", http.StatusOK)
	for _, c := range []struct{ url, want string }{
		{base + "/healthz", `"status":"ok"`},
		{base + "/readyz", `"ready":true`},
		{"http://" + metrics + "/readyz", `"policy":"ok"`},
		{"http://" + metrics + "/metrics", "mcpgw_policy_bundle_info"},
	} {
		status, body := get(t, c.url)
		if status != http.StatusOK || !strings.Contains(body, c.want) {
			t.Errorf("GET %s: %d, want 200 with %s; body:\n%.2000s", c.url, status, c.want, body)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := <-exited
	stopped = true
	if err != nil {
		t.Errorf("mcpgw after SIGTERM: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var entry struct{ Level, Msg string }
		if json.Unmarshal([]byte(line), &entry) != nil {
			t.Errorf("log line is not JSON: %s", line)
		} else if entry.Level == "ERROR" {
			t.Errorf("error logged: %s", line)
		}
	}
}

// waitFor polls url until it answers want, failing if the process exits
// first. The bound only guards against a hang; it is not a speed check.
func waitFor(t *testing.T, exited <-chan error, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case err := <-exited:
			t.Fatalf("mcpgw exited before %s answered %d: %v", url, want, err)
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered %d (last: %v)", url, want, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// serveJWKS serves one RSA public key as a JWKS on a loopback port, so the
// gateway's identity check becomes ready without an IdP.
func serveJWKS(t *testing.T) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	set, err := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "smoke",
		"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(set)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/jwks"
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
