package exchange_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/exchange"
	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/testidp"
	"github.com/mcpgw/mcpgw/internal/upstream"
)

// destinationRecorder notes the host and path of every request the exchanger
// makes, then sends it on.
type destinationRecorder struct {
	mu   sync.Mutex
	urls []*url.URL
}

func (r *destinationRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.urls = append(r.urls, req.URL)
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

// reached lists the requests that went to host.
func (r *destinationRecorder) reached(host string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, u := range r.urls {
		if u.Host == host {
			out = append(out, u.Path)
		}
	}
	return out
}

// TestIdPTokenEndpointIsChosenByConfiguration: with two issuers trusted, a
// token minted by issuer B (which can name any client id it likes) must never
// carry the agent's client assertion to B, nor be sent to A's token endpoint.
// The IdP of step 1 comes from auth_config idp_issuer / idp_token_endpoint,
// the agent's issuer or the only trusted issuer, never from the caller's iss.
func TestIdPTokenEndpointIsChosenByConfiguration(t *testing.T) {
	f := newXAA(t, xaaOptions{})
	evil := startIdP(t, testidp.Options{Audience: userAudience})
	// B registers the agent's client id with a key of its own choosing, so
	// it would gladly answer an exchange carrying A's agent's assertion.
	if err := evil.RegisterClient(testidp.Client{ID: agentClientID, PublicKey: f.agentKey}); err != nil {
		t.Fatal(err)
	}
	a, b := f.idp.Issuer(), evil.Issuer()
	users, err := identity.NewVerifier(t.Context(), config.Identity{Issuers: []config.Issuer{
		{Issuer: a, Audiences: []string{userAudience}}, {Issuer: b, Audiences: []string{userAudience}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(users.Close)
	caller := func(t *testing.T, idp *testidp.Server, agent config.Agent, backend config.Backend) upstream.Caller {
		t.Helper()
		tok, err := idp.MintUser("alice", []string{"mcp:read"}, []string{"mcp-super-admins"}, map[string]any{"cid": agentClientID})
		if err != nil {
			t.Fatal(err)
		}
		p, err := users.Verify(t.Context(), tok)
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		return upstream.Caller{Principal: p, Token: tok, Agent: agent, Backend: backend}
	}
	agentOf := func(issuer string) config.Agent {
		ag := f.agent
		ag.Issuer = issuer
		return ag
	}
	aHost, bHost := hostOf(t, a), hostOf(t, b)

	tests := []struct {
		name    string
		trusted []string
		from    *testidp.Server
		agent   config.Agent
		config  map[string]any // over f.authConfig; nil values delete
		// wantErr: substrings of the refusal; none: the call must succeed.
		wantErr []string
		// wantIdPPath: when set, the one request to A's host must be this path.
		wantIdPPath string
	}{
		{name: "A's token, agent bound to A", trusted: []string{a, b}, from: f.idp, agent: agentOf(a)},
		{name: "A's token, backend names A", trusted: []string{a, b}, from: f.idp, agent: agentOf(""),
			config: map[string]any{"idp_issuer": a}},
		// testidp answers at an Okta org's token path too, so the derived
		// endpoint is a real one.
		{name: "A's token, only issuer, endpoint derived from the configured issuer", trusted: []string{a}, from: f.idp, agent: agentOf(""),
			config: map[string]any{"idp_token_endpoint": nil}, wantIdPPath: "/oauth2/v1/token"},

		{name: "B's token, agent bound to A, endpoint not configured", trusted: []string{a, b}, from: evil, agent: agentOf(a),
			config: map[string]any{"idp_token_endpoint": nil}, wantErr: []string{"agents.cursor.issuer"}},
		{name: "B's token, agent bound to A, A's endpoint configured", trusted: []string{a, b}, from: evil, agent: agentOf(a),
			wantErr: []string{"agents.cursor.issuer"}},
		{name: "B's token, backend names A", trusted: []string{a, b}, from: evil, agent: agentOf(""),
			config: map[string]any{"idp_issuer": a, "idp_token_endpoint": nil}, wantErr: []string{"another issuer", "auth_config.idp_issuer"}},
		{name: "B's token, nothing names an issuer", trusted: []string{a, b}, from: evil, agent: agentOf(""),
			config: map[string]any{"idp_token_endpoint": nil}, wantErr: []string{"backends.hr.auth_config.idp_issuer: required"}},
		{name: "A's token, nothing names an issuer, two trusted", trusted: []string{a, b}, from: f.idp, agent: agentOf(""),
			wantErr: []string{"backends.hr.auth_config.idp_issuer: required"}},
		{name: "backend and agent name different issuers", trusted: []string{a, b}, from: f.idp, agent: agentOf(a),
			config: map[string]any{"idp_issuer": b}, wantErr: []string{"backends.hr.auth_config.idp_issuer: names another issuer than agents.cursor.issuer"}},
		{name: "B's token, B not trusted at all", trusted: []string{a}, from: evil, agent: agentOf(""),
			config: map[string]any{"idp_token_endpoint": nil}, wantErr: []string{"another issuer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &destinationRecorder{}
			x, err := exchange.New(exchange.Deps{Issuers: tt.trusted, HTTPClient: &http.Client{
				Transport:     rec,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(x.Close)
			backend := f.backendConfig(tt.config)
			inj, err := x.Factories()[exchange.MethodOktaCrossApp](backend)
			if err != nil {
				t.Fatalf("factory: %v", err)
			}
			c := caller(t, tt.from, tt.agent, backend)
			status, body, err := send(t, inj, c, f.backend.URL)

			if got := rec.reached(bHost); len(got) > 0 {
				t.Errorf("the exchange reached issuer B (%v): the caller's token and the agent's assertion left for another issuer", got)
			}
			if tt.from == evil {
				if got := rec.reached(aHost); len(got) > 0 {
					t.Errorf("B's token was sent to A (%v)", got)
				}
			}
			if tt.wantIdPPath != "" {
				if got := rec.reached(aHost); len(got) != 1 || got[0] != tt.wantIdPPath {
					t.Errorf("requests to A = %v, want one to %s", got, tt.wantIdPPath)
				}
			}
			if len(tt.wantErr) == 0 {
				if err != nil || status != http.StatusOK || !strings.Contains(body, "Ada Lovelace") {
					t.Fatalf("send: %d %v %s", status, err, body)
				}
				return
			}
			if err == nil {
				t.Fatalf("send succeeded (%d), want a refusal", status)
			}
			ce := credentialError(t, err)
			for _, w := range tt.wantErr {
				if !strings.Contains(ce.Error(), w) {
					t.Errorf("error %q does not say %q", ce.Error(), w)
				}
			}
		})
	}

	t.Run("idp_issuer must be trusted", func(t *testing.T) {
		x, err := exchange.New(exchange.Deps{Issuers: []string{a}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(x.Close)
		_, err = x.Factories()[exchange.MethodOktaCrossApp](f.backendConfig(map[string]any{"idp_issuer": b}))
		if err == nil || !strings.Contains(err.Error(), "backends.hr.auth_config.idp_issuer: \""+b+"\" is not one of identity.issuers") {
			t.Fatalf("factory = %v", err)
		}
	})
}

func hostOf(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
