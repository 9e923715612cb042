// Package hydra checks the second step of the identity assertion
// authorization grant (the RFC 7523 jwt-bearer grant) against ORY Hydra, a
// real OAuth server nobody here wrote. It is its own module so that Hydra's
// dependencies (and the replace directive it needs) stay out of mcpgw's.
//
// Hydra is built from ./tool into ./bin/hydra when missing (≈2–4 min cold,
// seconds with a warm build cache); HYDRA_BIN points at another binary.
package hydra

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/demo"
	"github.com/mcpgw/mcpgw/internal/exchange"
	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/testidp"
	"github.com/mcpgw/mcpgw/internal/upstream"
)

const (
	agentClientID = "cursor-app"
	hrResource    = "https://hr.example/mcp"
	getEmployee   = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_employee","arguments":{"id":"e1"}}}`
)

// hydraBinary returns HYDRA_BIN, or bin/hydra built from ./tool.
func hydraBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("HYDRA_BIN"); p != "" {
		return p
	}
	bin, err := filepath.Abs("bin/hydra")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	t.Logf("building Hydra into %s (minutes on a cold cache)", bin)
	cmd := exec.CommandContext(t.Context(), "go", "build", "-tags", "sqlite,sqlite_omit_load_extension", "-o", bin, "github.com/ory/hydra/v2")
	cmd.Dir = "tool"
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build hydra: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// hydra is a running Hydra on loopback with an in-memory store.
type hydra struct {
	public, admin string
}

func (h hydra) tokenURL() string { return h.public + "/oauth2/token" }

func startHydra(t *testing.T) hydra {
	t.Helper()
	bin := hydraBinary(t)
	pub, adm := freePort(t), freePort(t)
	h := hydra{public: "http://127.0.0.1:" + pub, admin: "http://127.0.0.1:" + adm}
	var logs bytes.Buffer
	cmd := exec.Command(bin, "serve", "all", "--dev", "--sqa-opt-out")
	cmd.Env = append(os.Environ(),
		"DSN=memory",
		"SECRETS_SYSTEM="+rand.Text(),
		"SERVE_PUBLIC_HOST=127.0.0.1", "SERVE_PUBLIC_PORT="+pub,
		"SERVE_ADMIN_HOST=127.0.0.1", "SERVE_ADMIN_PORT="+adm,
		"URLS_SELF_ISSUER="+h.public,
		// JWT access tokens, so the demo backend can verify them offline.
		"STRATEGIES_ACCESS_TOKEN=jwt",
		"LOG_LEVEL=warn",
	)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start hydra: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("hydra output:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(h.admin + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return h
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("hydra not ready after 30 s: %v\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// adminPost calls Hydra's admin API and decodes its answer into out.
func (h hydra) adminPost(t *testing.T, path string, in, out any) {
	t.Helper()
	body, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.admin+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
	}
}

// trust registers the IdP's signing key as a jwt-bearer issuer at Hydra
// (Hydra has no JWKS URL trust, only keys).
func (h hydra) trust(t *testing.T, idp *testidp.Server, scopes []string) {
	t.Helper()
	pub, err := jwk.PublicKeyOf(idp.SigningKey())
	if err != nil {
		t.Fatal(err)
	}
	h.adminPost(t, "/admin/trust/grants/jwt-bearer/issuers", map[string]any{
		"issuer":            idp.Issuer(),
		"allow_any_subject": true,
		"scope":             scopes,
		"jwk":               pub,
		"expires_at":        time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
	}, nil)
}

type chain struct {
	idp     *testidp.Server
	hydra   hydra
	client  struct{ ID, Secret string }
	agent   config.Agent
	backend *demo.Backend
	users   *identity.Verifier
	// seen is the principal of the last token the backend accepted.
	seen chan *identity.Principal
}

func newChain(t *testing.T) *chain {
	t.Helper()
	c := &chain{}
	var err error
	c.idp, err = testidp.Start(t.Context(), testidp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.idp.Close() })
	c.hydra = startHydra(t)

	var created struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	c.hydra.adminPost(t, "/admin/clients", map[string]any{
		"grant_types":                []string{"urn:ietf:params:oauth:grant-type:jwt-bearer"},
		"token_endpoint_auth_method": "client_secret_basic",
		"scope":                      "hr:read",
		"audience":                   []string{hrResource},
	}, &created)
	c.client.ID, c.client.Secret = created.ClientID, created.ClientSecret
	c.hydra.trust(t, c.idp, []string{"hr:read"})

	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := jwk.Import(raw)
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(key)
	if err != nil {
		t.Fatal(err)
	}
	// Hydra checks that the assertion's aud names its token endpoint
	// (fosite rfc7523 audienceMatchesTokenURLs), not its issuer as the
	// ID-JAG draft has it, so the token URL is the ID-JAG audience here.
	if err := c.idp.RegisterClient(testidp.Client{ID: agentClientID, PublicKey: key, ResourceClientIDs: map[string]string{c.hydra.tokenURL(): c.client.ID}}); err != nil {
		t.Fatal(err)
	}
	c.agent = config.Agent{Name: "cursor", ClientID: agentClientID, PrivateKey: string(js)}

	backendTokens, err := identity.NewVerifier(t.Context(), config.Identity{Issuers: []config.Issuer{{Issuer: c.hydra.public, Audiences: []string{hrResource}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(backendTokens.Close)
	c.seen = make(chan *identity.Principal, 16)
	observe := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p, ok := demo.BearerPrincipal(r.Context()); ok {
				c.seen <- p
			}
			next.ServeHTTP(w, r)
		})
	}
	c.backend, err = demo.StartEmployees(demo.Options{Stateless: true, Wrap: func(h http.Handler) http.Handler {
		return demo.RequireBearer(backendTokens, hrResource)(observe(h))
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.backend.Close() })
	c.users, err = identity.NewVerifier(t.Context(), config.Identity{Issuers: []config.Issuer{{Issuer: c.idp.Issuer(), Audiences: []string{c.idp.Audience()}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.users.Close)
	return c
}

func (c *chain) backendConfig() config.Backend {
	return config.Backend{Name: "hr", URL: c.backend.URL, AuthMethod: exchange.MethodOktaCrossApp, AuthConfig: map[string]any{
		"target_authorization_server": c.hydra.tokenURL(),
		"target_token_endpoint":       c.hydra.tokenURL(),
		"target_audience":             hrResource,
		// Hydra ignores RFC 8707 resource; it grants audience.
		"target_audience_parameter": "audience",
		"target_client_id":          c.client.ID,
		"target_client_secret":      c.client.Secret,
		"idp_token_endpoint":        c.idp.TokenEndpoint(),
		"scopes":                    "hr:read",
	}}
}

func (c *chain) caller(t *testing.T, sub string) upstream.Caller {
	t.Helper()
	tok, err := c.idp.MintUser(sub, []string{"mcp:read"}, nil, map[string]any{"cid": agentClientID})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.users.Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	return upstream.Caller{Principal: p, Token: tok, Agent: c.agent, Backend: c.backendConfig()}
}

func send(ctx context.Context, inj upstream.Injector, caller upstream.Caller, url string) (int, string, error) {
	resp, err := upstream.NewClient().Send(ctx, inj, caller, upstream.Request{
		Method: http.MethodPost, URL: url,
		Header: http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json, text/event-stream"}},
		Body:   []byte(getEmployee),
	})
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// TestIDJAGRedeemedAtHydra runs both steps: the testidp issues the ID-JAG,
// Hydra redeems it with its jwt-bearer grant and issues a JWT access token
// that the demo backend verifies against Hydra's JWKS.
func TestIDJAGRedeemedAtHydra(t *testing.T) {
	c := newChain(t)
	x, err := exchange.New(exchange.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.Close)
	inj, err := x.Factories()[exchange.MethodOktaCrossApp](c.backendConfig())
	if err != nil {
		t.Fatal(err)
	}
	// A fresh Hydra makes its access-token signing keys on first use, and
	// on a busy machine requests racing that can replace the key a first
	// token was signed with: the backend then refuses it and the client
	// rightly exchanges again. One call for another user first lets the
	// keys settle, so the call measured below shows what one call costs.
	if status, body, err := send(t.Context(), inj, c.caller(t, "bob"), c.backend.URL); err != nil || status != http.StatusOK {
		t.Fatalf("first send through Hydra: %d %v %s", status, err, body)
	}
	for drained := false; !drained; {
		select {
		case <-c.seen:
		default:
			drained = true
		}
	}
	before := c.idp.TokenRequests(testidp.GrantTokenExchange)
	status, body, err := send(t.Context(), inj, c.caller(t, "alice"), c.backend.URL)
	if err != nil || status != http.StatusOK || !strings.Contains(body, "Ada Lovelace") {
		t.Fatalf("send through Hydra: %d %v %s", status, err, body)
	}
	if n := c.idp.TokenRequests(testidp.GrantTokenExchange) - before; n != 1 {
		t.Errorf("ID-JAG exchanges for one call = %d, want 1", n)
	}
	select {
	case p := <-c.seen:
		// The backend accepted a token Hydra issued for alice, for the backend.
		if p.Issuer != c.hydra.public || p.Subject != "alice" || !slices.Contains(p.Audience, hrResource) {
			t.Errorf("backend token: iss %s sub %s aud %v", p.Issuer, p.Subject, p.Audience)
		}
	default:
		t.Error("the backend saw no verified token")
	}
}

func TestHydraRefusals(t *testing.T) {
	c := newChain(t)
	untrusted, err := testidp.Start(t.Context(), testidp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = untrusted.Close() })

	form := func(assertion string) string {
		return url.Values{"grant_type": {exchange.GrantJWTBearer}, "assertion": {assertion}, "scope": {"hr:read"}}.Encode()
	}
	redeem := func(t *testing.T, assertion string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, c.hydra.tokenURL(), strings.NewReader(form(assertion)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(c.client.ID, c.client.Secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	// idJAG mints an assertion shaped like an ID-JAG with s's key, varying
	// one claim at a time (Hydra does not look at typ).
	idJAG := func(t *testing.T, s *testidp.Server, claims map[string]any) string {
		t.Helper()
		now := time.Now()
		base := map[string]any{"sub": "alice", "aud": c.hydra.tokenURL(), "client_id": c.client.ID,
			"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "resource": hrResource, "scope": "hr:read"}
		for k, v := range claims {
			base[k] = v
		}
		tok, err := s.Mint(base)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	replayed := idJAG(t, c.idp, nil)
	if status, body := redeem(t, replayed); status != http.StatusOK {
		t.Fatalf("first redemption: %d %v", status, body)
	}

	tests := []struct {
		name      string
		assertion string
		code      string
	}{
		{name: "replayed (jti known)", assertion: replayed, code: "jti_known"},
		{name: "issuer Hydra does not trust", assertion: idJAG(t, untrusted, nil), code: "invalid_grant"},
		{name: "audience is Hydra's issuer, not its token URL", assertion: idJAG(t, c.idp, map[string]any{"aud": c.hydra.public}), code: "invalid_grant"},
		{name: "expired", assertion: idJAG(t, c.idp, map[string]any{"exp": time.Now().Add(-time.Minute).Unix(), "iat": time.Now().Add(-10 * time.Minute).Unix()}), code: "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := redeem(t, tt.assertion)
			if status != http.StatusBadRequest || body["error"] != tt.code {
				t.Errorf("Hydra answered %d %v (%v)", status, body["error"], body["error_description"])
			}
		})
	}

	// Through the exchanger, a Hydra refusal reaches the client as a
	// CredentialError naming the backend and Hydra's code.
	b := c.backendConfig()
	b.AuthConfig["target_client_secret"] = "wrong"
	x, err := exchange.New(exchange.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.Close)
	inj, err := x.Factories()[exchange.MethodOktaCrossApp](b)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = send(t.Context(), inj, c.caller(t, "bob"), c.backend.URL)
	if err == nil || !strings.Contains(err.Error(), "backend hr: invalid_client") {
		t.Errorf("wrong client secret at Hydra: %v", err)
	}
}
