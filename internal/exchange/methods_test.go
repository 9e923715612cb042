package exchange_test

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/demo"
	"github.com/mcpgw/mcpgw/internal/exchange"
	"github.com/mcpgw/mcpgw/internal/testidp"
	"github.com/mcpgw/mcpgw/internal/upstream"
)

// singleAS is one authorization server that both issued the user's token
// and issues the backend's (Keycloak-style), with a demo backend that
// accepts only its tokens for hrResource.
type singleAS struct {
	as         *testidp.Server
	backend    *demo.Backend
	backendLog *backendLog
	x          *exchange.Exchanger
}

func newSingleAS(t *testing.T) *singleAS {
	t.Helper()
	f := &singleAS{backendLog: &backendLog{revoked: map[string]bool{}}}
	f.as = startIdP(t, testidp.Options{Audience: userAudience})
	if err := f.as.RegisterClient(testidp.Client{ID: "gateway", Secret: "gw-secret", Scopes: []string{"hr:read"}}); err != nil {
		t.Fatal(err)
	}
	// The backend trusts the same issuer, but only tokens whose aud is the backend.
	b, err := demo.StartEmployees(demo.Options{Stateless: true, Wrap: f.backendLog.wrap(demo.RequireBearer(newVerifier(t, f.as.Issuer(), hrResource), hrResource))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	f.backend = b
	x, err := exchange.New(exchange.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.Close)
	f.x = x
	return f
}

func (f *singleAS) caller(t *testing.T, sub string, b config.Backend) upstream.Caller {
	t.Helper()
	tok, err := f.as.MintUser(sub, []string{"mcp:read"}, nil, map[string]any{"cid": agentClientID})
	if err != nil {
		t.Fatal(err)
	}
	p, err := newVerifier(t, f.as.Issuer(), userAudience).Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	return upstream.Caller{Principal: p, Token: tok, Agent: config.Agent{Name: "cursor", ClientID: agentClientID}, Backend: b}
}

func TestOtherMethodsEndToEnd(t *testing.T) {
	tests := []struct {
		name   string
		method string
		config func(f *singleAS) map[string]any
		// wantSub is the subject of the backend's token for a call by alice.
		wantSub string
		grant   string
		// perUser: bob's call needs an exchange of its own.
		perUser bool
	}{
		{name: "token-exchange", method: exchange.MethodTokenExchange, grant: testidp.GrantTokenExchange, wantSub: "alice", perUser: true,
			config: func(f *singleAS) map[string]any {
				return map[string]any{"token_endpoint": f.as.TokenEndpoint(), "client_id": "gateway", "client_secret": "gw-secret", "resource": hrResource, "scopes": "hr:read"}
			}},
		{name: "token-exchange, endpoint discovered, client_secret_post", method: exchange.MethodTokenExchange, grant: testidp.GrantTokenExchange, wantSub: "alice", perUser: true,
			config: func(f *singleAS) map[string]any {
				return map[string]any{"authorization_server": f.as.Issuer(), "client_id": "gateway", "client_secret": "gw-secret", "client_auth_method": "client_secret_post", "audience": hrResource}
			}},
		{name: "client-credentials", method: exchange.MethodClientCredentials, grant: testidp.GrantClientCredentials, wantSub: "gateway",
			config: func(f *singleAS) map[string]any {
				return map[string]any{"token_endpoint": f.as.TokenEndpoint(), "client_id": "gateway", "client_secret": "gw-secret", "resource": hrResource, "scopes": []any{"hr:read"}}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newSingleAS(t)
			b := config.Backend{Name: "hr", URL: f.backend.URL, AuthMethod: tt.method, AuthConfig: tt.config(f)}
			inj, err := f.x.Factories()[tt.method](b)
			if err != nil {
				t.Fatal(err)
			}
			alice := f.caller(t, "alice", b)
			status, body, err := send(t, inj, alice, f.backend.URL)
			if err != nil || status != http.StatusOK || !strings.Contains(body, "Ada Lovelace") {
				t.Fatalf("send: %d %v %s", status, err, body)
			}
			tokens, _ := f.backendLog.seen()
			claims := claimsOf(t, tokens[0])
			if claims["sub"] != tt.wantSub || claims["aud"] != hrResource || claims["client_id"] != "gateway" {
				t.Errorf("backend token claims = %v", claims)
			}
			if _, _, err := send(t, inj, f.caller(t, "bob", b), f.backend.URL); err != nil {
				t.Fatal(err)
			}
			want := int64(1)
			if tt.perUser {
				want = 2
			}
			if got := f.as.TokenRequests(tt.grant); got != want {
				t.Errorf("token requests for alice then bob = %d, want %d", got, want)
			}
		})
	}
}

func TestOtherMethodsFailures(t *testing.T) {
	f := newSingleAS(t)
	tests := []struct {
		name, method string
		config       map[string]any
		code         string
		contains     string
	}{
		{name: "token-exchange wrong secret", method: exchange.MethodTokenExchange,
			config: map[string]any{"token_endpoint": f.as.TokenEndpoint(), "client_id": "gateway", "client_secret": "nope"},
			code:   "invalid_client", contains: "token exchange"},
		{name: "token-exchange as an agent without a key", method: exchange.MethodTokenExchange,
			config:   map[string]any{"token_endpoint": f.as.TokenEndpoint()},
			contains: "agents.cursor.private_key: required"},
		{name: "client-credentials scope not allowed", method: exchange.MethodClientCredentials,
			config: map[string]any{"token_endpoint": f.as.TokenEndpoint(), "client_id": "gateway", "client_secret": "gw-secret", "scopes": "admin"},
			code:   "invalid_scope", contains: "client credentials grant"},
		{name: "client-credentials endpoint that is not a token endpoint", method: exchange.MethodClientCredentials,
			config:   map[string]any{"token_endpoint": f.as.JWKSURL(), "client_id": "gateway", "client_secret": "gw-secret"},
			contains: "client credentials grant: token endpoint answered HTTP 405"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := config.Backend{Name: "hr", URL: f.backend.URL, AuthMethod: tt.method, AuthConfig: tt.config}
			inj, err := f.x.Factories()[tt.method](b)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = send(t, inj, f.caller(t, "alice", b), f.backend.URL)
			ce := credentialError(t, err)
			if ce.Backend != "hr" || ce.Code != tt.code || !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error = %v (code %q), want code %q containing %q", err, ce.Code, tt.code, tt.contains)
			}
		})
	}
}

// TestDynamicMode discovers the resource AS and the resource from the
// backend's RFC 9728 metadata, as the Okta adapter's id_jag_mode dynamic does.
func TestDynamicMode(t *testing.T) {
	f := newXAA(t, xaaOptions{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	resource := "http://" + ln.Addr().String() + "/mcp"
	mux := http.NewServeMux()
	metadata := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"resource": resource, "authorization_servers": []string{f.ras.Issuer()}})
	}
	// The root document describes /mcp too, so the root fallback for
	// another path finds metadata of the wrong resource.
	mux.HandleFunc("GET /.well-known/oauth-protected-resource/mcp", metadata)
	mux.HandleFunc("GET /.well-known/oauth-protected-resource", metadata)
	mux.Handle("/mcp", demo.RequireBearer(newVerifier(t, f.ras.Issuer(), resource), resource)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := demo.BearerPrincipal(r.Context())
		_, _ = w.Write([]byte("hello " + p.Subject))
	})))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	b := config.Backend{Name: "hr", URL: resource, AuthMethod: exchange.MethodOktaCrossApp, AuthConfig: map[string]any{
		"id_jag_mode": "dynamic", "target_client_id": resourceClientID, "target_client_secret": resourceSecret, "idp_token_endpoint": f.idp.TokenEndpoint(),
	}}
	inj, err := f.x.Factories()[b.AuthMethod](b)
	if err != nil {
		t.Fatal(err)
	}
	c := f.caller(t, "alice")
	status, body, err := send(t, inj, c, resource)
	if err != nil || status != http.StatusOK || body != "hello alice" {
		t.Fatalf("send: %d %v %q", status, err, body)
	}

	// Metadata that describes another resource is refused (RFC 9728 §3.3).
	b.URL = "http://" + ln.Addr().String() + "/mcp/other"
	inj, err = f.x.Factories()[b.AuthMethod](b)
	if err != nil {
		t.Fatal(err)
	}
	err = inj.Inject(t.Context(), newRequest(t), f.caller(t, "bob"))
	if ce := credentialError(t, err); !strings.Contains(ce.Error(), "protected resource metadata") {
		t.Errorf("error = %v", err)
	}
	if !strings.Contains(f.logs.String(), "describes resource") {
		t.Errorf("the log does not say why the metadata was refused:\n%s", f.logs.String())
	}
}
