package gateway

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
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

// mainReadyz reads the main port's /readyz, which must say ready or not and
// nothing else: no check names, error texts (the IdP's address), policy
// source or revision.
func mainReadyz(t *testing.T, url string, leaks ...string) (int, bool) {
	t.Helper()
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("main /readyz is not JSON: %s", raw)
	}
	ready, ok := body["ready"].(bool)
	if !ok || len(body) != 1 {
		t.Fatalf("main /readyz = %s, want only {\"ready\": bool}", raw)
	}
	for _, s := range leaks {
		if strings.Contains(string(raw), s) {
			t.Fatalf("main /readyz shows %q: %s", s, raw)
		}
	}
	return resp.StatusCode, ready
}

func TestReadyzSaysWhatIsNotReady(t *testing.T) {
	w := newAdminWorld(t, withMetricsListener)
	if code, ready := mainReadyz(t, w.url, w.idp.Issuer(), "policy", "checks"); code != 200 || !ready {
		t.Fatalf("healthy gateway main /readyz = %d %v", code, ready)
	}
	if code, body := readyz(t, w.srv.MetricsURL); code != 200 || body["ready"] != true {
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
	ln := listenLoopback(t)
	cfg := baseConfig(ln, issuer)
	cfg.Server.MetricsListen = "127.0.0.1:0"
	cfg.Identity.ClockSkew, cfg.Identity.JWKSRefreshInterval = time.Second, time.Hour
	cfg.Policy = policyConfig(shippedPolicy)
	cfg.Policy.Timeout = time.Second
	cfg.Store = storeConfig(":memory:", time.Hour)
	// A gateway whose IdP is down must still start.
	srv := startServer(t, cfg, StartOptions{Listener: ln}, 3*time.Second)
	if code, ready := mainReadyz(t, srv.URL, dead.Addr().String(), "identity"); code != http.StatusServiceUnavailable || ready {
		t.Fatalf("main /readyz with the IdP down = %d %v, want 503 false", code, ready)
	}
	code, body := readyz(t, srv.MetricsURL)
	checks, _ := body["checks"].(map[string]any)
	if code != http.StatusServiceUnavailable || body["ready"] != false || !strings.Contains(toJSON(checks["identity"]), dead.Addr().String()) {
		t.Fatalf("/readyz with the IdP down = %d %v, want 503 naming the issuer", code, body)
	}
	if checks["policy"] != "ok" || checks["store"] != "ok" {
		t.Fatalf("/readyz blames the wrong part: %v", checks)
	}
}
