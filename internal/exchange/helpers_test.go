package exchange_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/demo"
	"github.com/mcpgw/mcpgw/internal/exchange"
	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/testidp"
	"github.com/mcpgw/mcpgw/internal/testutil"
	"github.com/mcpgw/mcpgw/internal/upstream"
)

// Names shared by the fixtures.
const (
	agentClientID    = "cursor-app" // the agent's client at the IdP
	resourceClientID = "hr-app"     // the agent's client at the resource AS
	resourceSecret   = "hr-secret"
	hrResource       = "https://hr.example/mcp" // the backend, as an RFC 8707 resource
	userAudience     = "api://mcpgw"
)

func startIdP(tb testing.TB, opts testidp.Options) *testidp.Server {
	tb.Helper()
	s, err := testidp.Start(tb.Context(), opts)
	if err != nil {
		tb.Fatalf("start testidp: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func newVerifier(tb testing.TB, issuer, audience string) *identity.Verifier {
	tb.Helper()
	v, err := identity.NewVerifier(tb.Context(), config.Identity{Issuers: []config.Issuer{{Issuer: issuer, Audiences: []string{audience}}}})
	if err != nil {
		tb.Fatalf("NewVerifier: %v", err)
	}
	tb.Cleanup(v.Close)
	return v
}

// newAgentKey is a P-256 private key with a kid, and its JWK JSON as the
// Okta adapter stores agents' private_key.
func newAgentKey(tb testing.TB) (jwk.Key, string) {
	tb.Helper()
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	key, err := jwk.Import(raw)
	if err != nil {
		tb.Fatal(err)
	}
	if err := jwk.AssignKeyID(key); err != nil {
		tb.Fatal(err)
	}
	js, err := json.Marshal(key)
	if err != nil {
		tb.Fatal(err)
	}
	return key, string(js)
}

// countingMetrics records the exchanger's metric hooks.
type countingMetrics struct {
	mu        sync.Mutex
	hits      int
	misses    int
	exchanged map[string]int // outcome -> count
}

func (m *countingMetrics) CacheLookup(_ string, hit bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if hit {
		m.hits++
	} else {
		m.misses++
	}
}

func (m *countingMetrics) Exchanged(_, _, outcome string, _ time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.exchanged == nil {
		m.exchanged = map[string]int{}
	}
	m.exchanged[outcome]++
}

func (m *countingMetrics) snapshot() (hits, misses int, exchanged map[string]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]int{}
	for k, v := range m.exchanged {
		out[k] = v
	}
	return m.hits, m.misses, out
}

// backendLog records what reached the demo backend.
type backendLog struct {
	mu       sync.Mutex
	tokens   []string
	statuses []int
	revoked  map[string]bool
	all      bool // refuse every token
}

func (l *backendLog) seen() (tokens []string, statuses []int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.tokens...), append([]int(nil), l.statuses...)
}

// refuseAll makes the backend refuse every token.
func (l *backendLog) refuseAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = true
}

// revoke makes the backend refuse tok from now on, as a resource server
// does with a revoked token.
func (l *backendLog) revoke(tok string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.revoked[tok] = true
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// wrap records each request's token and status and refuses revoked tokens,
// around the backend's own token check.
func (l *backendLog) wrap(check func(http.Handler) http.Handler) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		checked := check(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			l.mu.Lock()
			l.tokens = append(l.tokens, tok)
			revoked := l.revoked[tok] || l.all
			l.mu.Unlock()
			rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
			if revoked {
				w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
				rec.WriteHeader(http.StatusUnauthorized)
			} else {
				checked.ServeHTTP(rec, r)
			}
			l.mu.Lock()
			l.statuses = append(l.statuses, rec.status)
			l.mu.Unlock()
		})
	}
}

// xaa is the whole cross-app chain on loopback: an IdP, a resource AS that
// trusts it, a demo HR backend that accepts only the resource AS's tokens
// for hrResource, and an Exchanger.
type xaa struct {
	idp, ras   *testidp.Server
	backend    *demo.Backend
	backendLog *backendLog
	agentKey   jwk.Key
	agent      config.Agent
	x          *exchange.Exchanger
	clock      *testutil.Clock
	logs       *testutil.SyncBuffer
	metrics    *countingMetrics
	users      *identity.Verifier
}

type xaaOptions struct {
	// rasTokenTTL is the lifetime of the resource AS's access tokens (default 1h).
	rasTokenTTL time.Duration
	cache       exchange.CacheConfig
}

func newXAA(t testing.TB, o xaaOptions) *xaa {
	t.Helper()
	f := &xaa{clock: testutil.NewClock(), logs: &testutil.SyncBuffer{}, metrics: &countingMetrics{}, backendLog: &backendLog{revoked: map[string]bool{}}}
	f.idp = startIdP(t, testidp.Options{Audience: userAudience})
	f.ras = startIdP(t, testidp.Options{TokenTTL: o.rasTokenTTL, ResourceAS: &testidp.ResourceASOptions{TrustedIssuer: f.idp.Issuer()}})

	var agentJWK string
	f.agentKey, agentJWK = newAgentKey(t)
	if err := f.idp.RegisterClient(testidp.Client{ID: agentClientID, PublicKey: f.agentKey, ResourceClientIDs: map[string]string{f.ras.Issuer(): resourceClientID}}); err != nil {
		t.Fatal(err)
	}
	if err := f.ras.RegisterClient(testidp.Client{ID: resourceClientID, Secret: resourceSecret, Scopes: []string{"hr:read", "hr:write"}}); err != nil {
		t.Fatal(err)
	}
	f.agent = config.Agent{Name: "cursor", ClientID: agentClientID, PrivateKey: agentJWK}

	backendTokens := newVerifier(t, f.ras.Issuer(), hrResource)
	b, err := demo.StartEmployees(demo.Options{Stateless: true, Wrap: f.backendLog.wrap(demo.RequireBearer(backendTokens, hrResource))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	f.backend = b

	x, err := exchange.New(exchange.Deps{
		Logger:  slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Clock:   f.clock.Now,
		Metrics: f.metrics,
		Cache:   o.cache,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.Close)
	f.x = x
	f.users = newVerifier(t, f.idp.Issuer(), userAudience)
	t.Cleanup(func() {
		// Whatever happened, no token may have reached the log.
		if logs := f.logs.String(); strings.Contains(logs, "eyJ") {
			t.Errorf("a JWT reached the log:\n%s", logs)
		}
	})
	return f
}

// authConfig is a working okta-cross-app auth_config; extra entries
// override it (a nil value deletes the key).
func (f *xaa) authConfig(extra map[string]any) map[string]any {
	ac := map[string]any{
		"target_authorization_server": f.ras.Issuer(),
		"target_audience":             hrResource,
		"target_client_id":            resourceClientID,
		"target_client_secret":        resourceSecret,
		"idp_token_endpoint":          f.idp.TokenEndpoint(),
		"scopes":                      []any{"hr:read"},
	}
	for k, v := range extra {
		if v == nil {
			delete(ac, k)
			continue
		}
		ac[k] = v
	}
	return ac
}

func (f *xaa) backendConfig(extra map[string]any) config.Backend {
	return config.Backend{Name: "hr", URL: f.backend.URL, AuthMethod: exchange.MethodOktaCrossApp, AuthConfig: f.authConfig(extra)}
}

func (f *xaa) injector(t testing.TB, extra map[string]any) upstream.Injector {
	t.Helper()
	b := f.backendConfig(extra)
	inj, err := f.x.Factories()[b.AuthMethod](b)
	if err != nil {
		t.Fatalf("factory: %v", err)
	}
	return inj
}

// userToken mints a user access token issued to the agent's client.
func (f *xaa) userToken(t testing.TB, sub string, extra map[string]any) string {
	t.Helper()
	claims := map[string]any{"cid": agentClientID}
	for k, v := range extra {
		claims[k] = v
	}
	tok, err := f.idp.MintUser(sub, []string{"mcp:read"}, []string{"staff"}, claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// caller verifies a fresh user token as the gateway would.
func (f *xaa) caller(t testing.TB, sub string) upstream.Caller {
	t.Helper()
	tok := f.userToken(t, sub, nil)
	p, err := f.users.Verify(t.Context(), tok)
	if err != nil {
		t.Fatalf("verify user token: %v", err)
	}
	return upstream.Caller{Principal: p, Token: tok, Agent: f.agent, Backend: f.backendConfig(nil)}
}

func (f *xaa) exchanges() (idp, ras int64) {
	return f.idp.TokenRequests(testidp.GrantTokenExchange), f.ras.TokenRequests(testidp.GrantJWTBearer)
}

const getEmployee = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_employee","arguments":{"id":"e1"}}}`

// send forwards one tools/call to the backend through upstream.Client, the
// way the gateway does, and returns the status and body.
func send(t testing.TB, inj upstream.Injector, c upstream.Caller, url string) (int, string, error) {
	t.Helper()
	resp, err := upstream.NewClient().Send(t.Context(), inj, c, upstream.Request{
		Method: http.MethodPost,
		URL:    url,
		Header: http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json, text/event-stream"}},
		Body:   []byte(getEmployee),
	})
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read backend response: %v", err)
	}
	return resp.StatusCode, string(body), nil
}

// credentialError asserts err is an *upstream.CredentialError.
func credentialError(t testing.TB, err error) *upstream.CredentialError {
	t.Helper()
	var ce *upstream.CredentialError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a CredentialError", err, err)
	}
	return ce
}
