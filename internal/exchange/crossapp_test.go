package exchange_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/mcpgw/mcpgw/internal/exchange"
	"github.com/mcpgw/mcpgw/internal/upstream"
)

// claimsOf decodes a JWT's payload (its signature is the backend's business).
func claimsOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	msg, err := jws.Parse([]byte(tok))
	if err != nil {
		t.Fatalf("parse token: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(msg.Payload(), &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

func TestCrossAppEndToEnd(t *testing.T) {
	f := newXAA(t, xaaOptions{})
	// No target_token_endpoint: it is discovered from the resource AS metadata.
	inj := f.injector(t, nil)
	c := f.caller(t, "alice")

	status, body, err := send(t, inj, c, f.backend.URL)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	if status != http.StatusOK || !strings.Contains(body, "Ada Lovelace") {
		t.Fatalf("backend answered %d: %s", status, body)
	}
	tokens, statuses := f.backendLog.seen()
	if len(tokens) != 1 || statuses[0] != http.StatusOK {
		t.Fatalf("backend saw %d requests, statuses %v", len(tokens), statuses)
	}
	if tokens[0] == c.Token {
		t.Fatal("the user's own token reached the backend")
	}
	claims := claimsOf(t, tokens[0])
	want := map[string]any{"iss": f.ras.Issuer(), "aud": hrResource, "sub": "alice", "client_id": resourceClientID, "idp": f.idp.Issuer()}
	for k, v := range want {
		if claims[k] != v {
			t.Errorf("backend token %s = %v, want %v", k, claims[k], v)
		}
	}
	if idp, ras := f.exchanges(); idp != 1 || ras != 1 {
		t.Fatalf("exchanges at IdP/resource AS = %d/%d, want 1/1", idp, ras)
	}

	// A second call, even with a fresh user token, is served from the cache.
	c2 := f.caller(t, "alice")
	if status, _, err := send(t, inj, c2, f.backend.URL); err != nil || status != http.StatusOK {
		t.Fatalf("second send: %d %v", status, err)
	}
	if idp, ras := f.exchanges(); idp != 1 || ras != 1 {
		t.Errorf("after a cached call exchanges = %d/%d, want 1/1", idp, ras)
	}
	hits, misses, exchanged := f.metrics.snapshot()
	if hits != 1 || misses != 1 || exchanged["ok"] != 1 {
		t.Errorf("metrics hits/misses/ok = %d/%d/%d, want 1/1/1", hits, misses, exchanged["ok"])
	}

	// The user's own token is refused by the backend.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, f.backend.URL, strings.NewReader(getEmployee))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("backend answered the user's own token with %d, want 401", resp.StatusCode)
	}
}

func TestCrossAppFailures(t *testing.T) {
	f := newXAA(t, xaaOptions{})
	_, otherJWK := newAgentKey(t)

	tests := []struct {
		name     string
		config   map[string]any
		caller   func(c upstream.Caller) upstream.Caller
		code     string
		contains string
	}{
		{name: "wrong agent key", caller: func(c upstream.Caller) upstream.Caller {
			c.Agent.PrivateKey = otherJWK
			return c
		}, code: "invalid_client", contains: "IdP token exchange"},
		{name: "expired subject token", caller: func(c upstream.Caller) upstream.Caller {
			// The gateway would refuse such a token; the IdP must too.
			c.Token = f.userToken(t, "alice", map[string]any{"exp": time.Now().Add(-time.Minute)})
			return c
		}, code: "invalid_grant", contains: "expired"},
		{name: "subject token issued to another client", caller: func(c upstream.Caller) upstream.Caller {
			c.Token = f.userToken(t, "alice", map[string]any{"cid": "someone-else"})
			return c
		}, code: "invalid_grant", contains: "not issued to this client"},
		{name: "ID-JAG for another audience", config: map[string]any{
			"target_authorization_server": "https://other-as.example", "target_token_endpoint": f.ras.TokenEndpoint(),
		}, code: "invalid_grant", contains: "resource authorization server token request: ID-JAG rejected: wrong audience"},
		{name: "wrong resource AS secret", config: map[string]any{"target_client_secret": "nope"},
			code: "invalid_client", contains: "resource authorization server token request"},
		{name: "scope the resource AS does not grant", config: map[string]any{"scopes": "hr:read payroll:admin"},
			code: "invalid_scope", contains: "resource authorization server token request"},
		{name: "agent without a private key", caller: func(c upstream.Caller) upstream.Caller {
			c.Agent.PrivateKey = ""
			return c
		}, contains: "agents.cursor.private_key: required"},
		{name: "agent without a client_id", caller: func(c upstream.Caller) upstream.Caller {
			c.Agent.ClientID = ""
			return c
		}, contains: "agents.cursor.client_id: required"},
		{name: "caller without a principal", caller: func(c upstream.Caller) upstream.Caller {
			c.Principal = nil
			return c
		}, contains: "no verified principal"},
		{name: "resource AS metadata not found", config: map[string]any{"target_authorization_server": f.ras.Issuer() + "/tenant"},
			contains: "discovery of the resource authorization server's token endpoint failed: metadata missing or invalid"},
		{name: "resource AS metadata names another issuer", config: map[string]any{"target_authorization_server": strings.Replace(f.ras.Issuer(), "127.0.0.1", "localhost", 1)},
			contains: "discovery of the resource authorization server's token endpoint failed: metadata missing or invalid"},
		{name: "IdP token endpoint refuses ID-JAGs", config: map[string]any{"idp_token_endpoint": f.ras.TokenEndpoint()},
			code: "invalid_client", contains: "IdP token exchange"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inj := f.injector(t, tt.config)
			// Each case is its own user, so no cached outcome leaks between cases.
			c := f.caller(t, "user-"+strings.ReplaceAll(tt.name, " ", "-"))
			if tt.caller != nil {
				c = tt.caller(c)
			}
			_, _, err := send(t, inj, c, f.backend.URL)
			ce := credentialError(t, err)
			if ce.Backend != "hr" || ce.Code != tt.code {
				t.Errorf("backend/code = %s/%q, want hr/%q (%v)", ce.Backend, ce.Code, tt.code, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.contains) || !strings.Contains(msg, "backend hr") {
				t.Errorf("error %q does not contain %q", msg, tt.contains)
			}
			if strings.Contains(msg, "eyJ") || strings.Contains(msg, c.Token) {
				t.Errorf("error carries token material: %s", msg)
			}
		})
	}
	if tokens, _ := f.backendLog.seen(); len(tokens) != 0 {
		t.Errorf("a failed exchange still reached the backend %d times", len(tokens))
	}
	if !strings.Contains(f.logs.String(), "names issuer") {
		t.Errorf("the log does not say the metadata named another issuer:\n%s", f.logs.String())
	}
}

// recordingTransport keeps the token requests the exchanger sends, so a test
// can replay them byte for byte.
type recordingTransport struct {
	mu       sync.Mutex
	requests []recorded
}

type recorded struct {
	url    string
	header http.Header
	form   string
}

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && r.Body != nil {
		body, err := r.GetBody()
		if err == nil {
			var sb strings.Builder
			buf := make([]byte, 4096)
			for {
				n, rerr := body.Read(buf)
				sb.Write(buf[:n])
				if rerr != nil {
					break
				}
			}
			rt.mu.Lock()
			rt.requests = append(rt.requests, recorded{url: r.URL.String(), header: r.Header.Clone(), form: sb.String()})
			rt.mu.Unlock()
		}
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestReplayedAssertionsAreRefused(t *testing.T) {
	f := newXAA(t, xaaOptions{})
	rt := &recordingTransport{}
	x, err := exchange.New(exchange.Deps{HTTPClient: &http.Client{Transport: rt, Timeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.Close)
	b := f.backendConfig(map[string]any{"target_token_endpoint": f.ras.TokenEndpoint()})
	inj, err := x.Factories()[exchange.MethodOktaCrossApp](b)
	if err != nil {
		t.Fatal(err)
	}
	c := f.caller(t, "alice")
	if status, _, err := send(t, inj, c, f.backend.URL); err != nil || status != http.StatusOK {
		t.Fatalf("send: %d %v", status, err)
	}
	// A second exchange signs a new client assertion: fresh jti, accepted.
	inj.Invalidate(t.Context(), c)
	if status, _, err := send(t, inj, c, f.backend.URL); err != nil || status != http.StatusOK {
		t.Fatalf("send after Invalidate: %d %v", status, err)
	}
	rt.mu.Lock()
	reqs := append([]recorded(nil), rt.requests...)
	rt.mu.Unlock()
	if len(reqs) != 4 {
		t.Fatalf("recorded %d token requests, want 4 (two exchanges of two steps)", len(reqs))
	}
	first, _ := url.ParseQuery(reqs[0].form)
	second, _ := url.ParseQuery(reqs[2].form)
	if a, b := first.Get("client_assertion"), second.Get("client_assertion"); a == "" || a == b {
		t.Fatal("the two exchanges did not sign distinct client assertions")
	}
	for _, k := range []string{"grant_type", "requested_token_type", "subject_token_type", "audience", "resource", "scope", "client_assertion_type", "client_id"} {
		if first.Get(k) == "" {
			t.Errorf("step 1 sent no %s", k)
		}
	}

	tests := []struct {
		name     string
		req      recorded
		code     string
		contains string
	}{
		{name: "client assertion replayed at the IdP", req: reqs[0], code: "invalid_client", contains: "jti was already used"},
		{name: "ID-JAG replayed at the resource AS", req: reqs[1], code: "invalid_grant", contains: "already used"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, tt.req.url, strings.NewReader(tt.req.form))
			if err != nil {
				t.Fatal(err)
			}
			req.Header = tt.req.header.Clone()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			desc, _ := body["error_description"].(string)
			if body["error"] != tt.code || !strings.Contains(desc, tt.contains) {
				t.Errorf("replay answered %d %v: %s", resp.StatusCode, body["error"], desc)
			}
		})
	}
}

func TestResourceASDown(t *testing.T) {
	tests := []struct {
		name     string
		config   map[string]any
		contains string
	}{
		{name: "token endpoint configured", config: map[string]any{"target_token_endpoint": "RAS_TOKEN"},
			contains: "resource authorization server token request: token endpoint unreachable"},
		{name: "token endpoint discovered", contains: "discovery of the resource authorization server's token endpoint failed: unreachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newXAA(t, xaaOptions{})
			cfg := map[string]any{}
			for k, v := range tt.config {
				if v == "RAS_TOKEN" {
					v = f.ras.TokenEndpoint()
				}
				cfg[k] = v
			}
			inj := f.injector(t, cfg)
			if err := f.ras.Close(); err != nil {
				t.Fatal(err)
			}
			_, _, err := send(t, inj, f.caller(t, "alice"), f.backend.URL)
			ce := credentialError(t, err)
			if ce.Backend != "hr" || ce.Code != "" || !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error = %v (code %q), want backend hr and %q", err, ce.Code, tt.contains)
			}
			if strings.Contains(err.Error(), "127.0.0.1") {
				t.Errorf("error shown to clients names an internal address: %v", err)
			}
			_, _, exchanged := f.metrics.snapshot()
			if exchanged["unreachable"] != 1 {
				t.Errorf("metric outcomes = %v, want one unreachable", exchanged)
			}
		})
	}
}

func TestBackend401RefreshesOnce(t *testing.T) {
	f := newXAA(t, xaaOptions{})
	inj := f.injector(t, nil)
	c := f.caller(t, "alice")
	if status, _, err := send(t, inj, c, f.backend.URL); err != nil || status != http.StatusOK {
		t.Fatalf("priming send: %d %v", status, err)
	}
	tokens, _ := f.backendLog.seen()
	f.backendLog.revoke(tokens[0])

	status, body, err := send(t, inj, c, f.backend.URL)
	if err != nil || status != http.StatusOK || !strings.Contains(body, "Ada Lovelace") {
		t.Fatalf("send after revocation: %d %v %s", status, err, body)
	}
	tokens, statuses := f.backendLog.seen()
	if len(tokens) != 3 || statuses[1] != http.StatusUnauthorized || statuses[2] != http.StatusOK || tokens[2] == tokens[0] {
		t.Fatalf("backend saw statuses %v; fresh token: %v", statuses, len(tokens) == 3 && tokens[2] != tokens[0])
	}
	if idp, ras := f.exchanges(); idp != 2 || ras != 2 {
		t.Errorf("exchanges = %d/%d, want 2/2 (one refresh)", idp, ras)
	}

	// A backend that refuses every token gets exactly one retry, not a loop.
	f.backendLog.refuseAll()
	status, _, err = send(t, inj, c, f.backend.URL)
	if err != nil || status != http.StatusUnauthorized {
		t.Fatalf("send to a refusing backend: %d %v, want its 401 passed on", status, err)
	}
	if idp, _ := f.exchanges(); idp != 3 {
		t.Errorf("exchanges at the IdP = %d, want 3 (one refresh, no loop)", idp)
	}
}

func TestConcurrentColdCallsExchangeOnce(t *testing.T) {
	f := newXAA(t, xaaOptions{})
	inj := f.injector(t, map[string]any{"target_token_endpoint": f.ras.TokenEndpoint()})
	c := f.caller(t, "alice")
	const callers = 100
	start := make(chan struct{})
	headers := make([]string, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			<-start
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, f.backend.URL, nil)
			if err != nil {
				errs[i] = err
				return
			}
			errs[i] = inj.Inject(t.Context(), req, c)
			headers[i] = req.Header.Get("Authorization")
		})
	}
	close(start)
	wg.Wait()
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if headers[i] == "" || headers[i] != headers[0] {
			t.Fatalf("caller %d got a different or empty credential", i)
		}
	}
	if idp, ras := f.exchanges(); idp != 1 || ras != 1 {
		t.Errorf("%d concurrent cold calls made %d/%d exchanges, want exactly 1/1", callers, idp, ras)
	}
}

func TestFailuresAreCachedBriefly(t *testing.T) {
	f := newXAA(t, xaaOptions{cache: exchange.CacheConfig{FailureTTL: 5 * time.Second}})
	inj := f.injector(t, map[string]any{"target_token_endpoint": f.ras.TokenEndpoint()})
	if err := f.ras.Close(); err != nil {
		t.Fatal(err)
	}
	c := f.caller(t, "alice")
	inject := func() error {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, f.backend.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		return inj.Inject(t.Context(), req, c)
	}
	steps := []struct {
		name         string
		before       func()
		wantAttempts int64 // token exchanges seen by the IdP so far
	}{
		{name: "first failure", wantAttempts: 1},
		{name: "served from the failure cache", wantAttempts: 1},
		{name: "still cached just before FailureTTL", before: func() { f.clock.Advance(4 * time.Second) }, wantAttempts: 1},
		{name: "a new subject token tries again", before: func() { c = f.caller(t, "alice") }, wantAttempts: 2},
		{name: "retried after FailureTTL", before: func() { f.clock.Advance(6 * time.Second) }, wantAttempts: 3},
	}
	for _, st := range steps {
		if st.before != nil {
			st.before()
		}
		err := inject()
		ce := credentialError(t, err)
		if ce.Backend != "hr" || !errors.Is(err, ce.Err) {
			t.Errorf("%s: error %v", st.name, err)
		}
		if idp, _ := f.exchanges(); idp != st.wantAttempts {
			t.Errorf("%s: IdP saw %d exchanges, want %d", st.name, idp, st.wantAttempts)
		}
	}
}

func TestCacheLifetime(t *testing.T) {
	tests := []struct {
		name      string
		rasTTL    time.Duration
		cache     exchange.CacheConfig
		userTTL   time.Duration // 0: the user's token lives an hour
		advance   time.Duration
		exchanges int64 // after a second call, advance later
	}{
		{name: "within expires_in minus skew", rasTTL: 2 * time.Minute, cache: exchange.CacheConfig{Skew: 30 * time.Second}, advance: 89 * time.Second, exchanges: 1},
		{name: "past expires_in minus skew", rasTTL: 2 * time.Minute, cache: exchange.CacheConfig{Skew: 30 * time.Second}, advance: 91 * time.Second, exchanges: 2},
		{name: "capped by MaxTTL", rasTTL: time.Hour, cache: exchange.CacheConfig{MaxTTL: 10 * time.Second}, advance: 11 * time.Second, exchanges: 2},
		{name: "within MaxTTL", rasTTL: time.Hour, cache: exchange.CacheConfig{MaxTTL: 10 * time.Second}, advance: 9 * time.Second, exchanges: 1},
		{name: "capped by the user's token expiry", rasTTL: time.Hour, userTTL: 20 * time.Second, advance: 21 * time.Second, exchanges: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newXAA(t, xaaOptions{rasTokenTTL: tt.rasTTL, cache: tt.cache})
			inj := f.injector(t, map[string]any{"target_token_endpoint": f.ras.TokenEndpoint()})
			c := f.caller(t, "alice")
			if tt.userTTL > 0 {
				p := *c.Principal
				p.ExpiresAt = f.clock.Now().Add(tt.userTTL)
				c.Principal = &p
			}
			for i, advance := range []time.Duration{0, tt.advance} {
				f.clock.Advance(advance)
				req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, f.backend.URL, nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := inj.Inject(t.Context(), req, c); err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
			}
			if idp, _ := f.exchanges(); idp != tt.exchanges {
				t.Errorf("exchanges = %d, want %d", idp, tt.exchanges)
			}
		})
	}
}

func TestCacheKey(t *testing.T) {
	f := newXAA(t, xaaOptions{})
	inj := f.injector(t, map[string]any{"target_token_endpoint": f.ras.TokenEndpoint()})
	alice := f.caller(t, "alice")
	if err := inj.Inject(t.Context(), newRequest(t), alice); err != nil {
		t.Fatal(err)
	}
	otherAgent := alice
	otherAgent.Agent.Name, otherAgent.Agent.AgentID = "claude", "claude"

	tests := []struct {
		name   string
		inj    upstream.Injector
		caller upstream.Caller
		new    bool // a new exchange is expected
	}{
		{name: "same user, same agent", inj: inj, caller: alice},
		{name: "same user, fresh token", inj: inj, caller: f.caller(t, "alice")},
		{name: "another user", inj: inj, caller: f.caller(t, "bob"), new: true},
		{name: "another agent", inj: inj, caller: otherAgent, new: true},
		{name: "edited backend settings", inj: f.injector(t, map[string]any{"target_token_endpoint": f.ras.TokenEndpoint(), "target_audience_parameter": "resource"}), caller: alice, new: true},
		{name: "other scopes", inj: f.injector(t, map[string]any{"target_token_endpoint": f.ras.TokenEndpoint(), "scopes": "hr:read hr:write"}), caller: alice, new: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := f.exchanges()
			if err := tt.inj.Inject(t.Context(), newRequest(t), tt.caller); err != nil {
				t.Fatal(err)
			}
			after, _ := f.exchanges()
			if got := after != before; got != tt.new {
				t.Errorf("new exchange = %v, want %v", got, tt.new)
			}
		})
	}
}

func newRequest(t testing.TB) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://127.0.0.1/mcp", nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestWaiterLeavesWithoutFailingOthers(t *testing.T) {
	f := newXAA(t, xaaOptions{})
	inj := f.injector(t, map[string]any{"target_token_endpoint": f.ras.TokenEndpoint()})
	c := f.caller(t, "alice")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := inj.Inject(ctx, newRequest(t), c)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("a caller whose context ended got %v, want context.Canceled", err)
	}
	// Its exchange may have run on; either way the next caller gets a token.
	req := newRequest(t)
	if err := inj.Inject(t.Context(), req, c); err != nil || !strings.HasPrefix(req.Header.Get("Authorization"), "Bearer ") {
		t.Fatalf("next caller: %v", err)
	}
}
