package gateway

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/config"
)

func readyz(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func TestReadyzSaysWhatIsNotReady(t *testing.T) {
	w := newAdminWorld(t)
	if code, body := readyz(t, w.url); code != 200 || body["ready"] != true {
		t.Fatalf("healthy gateway /readyz = %d %v", code, body)
	} else if policy, _ := body["policy"].(map[string]any); policy == nil || policy["revision"] == "" {
		t.Fatalf("/readyz lacks the active policy revision: %v", body)
	}

	// An issuer whose keys cannot be fetched: the gateway starts, but is not ready.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + dead.Addr().String()
	dead.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{
		Server:   config.Server{Listen: ln.Addr().String(), PublicURL: "http://" + ln.Addr().String(), MaxBodyBytes: 1 << 20, ReadTimeout: 5 * time.Second},
		Identity: config.Identity{Issuers: []config.Issuer{{Issuer: issuer, Audiences: []string{"api://mcpgw"}}}, ClockSkew: time.Second, JWKSRefreshInterval: time.Hour, ClaimsCacheMaxCost: 100},
		Policy:   config.Policy{Bundle: "../policies", AllowUnsigned: true, Timeout: time.Second},
		Store:    config.Store{DSN: ":memory:", PollInterval: time.Hour},
	}
	srv, err := Start(context.Background(), cfg, StartOptions{Listener: ln, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("a gateway whose IdP is down must still start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = srv.Close(ctx)
	})
	code, body := readyz(t, srv.URL)
	checks, _ := body["checks"].(map[string]any)
	if code != http.StatusServiceUnavailable || body["ready"] != false || !strings.Contains(toJSON(checks["identity"]), dead.Addr().String()) {
		t.Fatalf("/readyz with the IdP down = %d %v, want 503 naming the issuer", code, body)
	}
	if checks["policy"] != "ok" || checks["store"] != "ok" {
		t.Fatalf("/readyz blames the wrong part: %v", checks)
	}
}
