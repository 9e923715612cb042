package testidp

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
)

const (
	agentID       = "agent"
	resourceAgent = "agent-at-resource"
	resourceURL   = "https://hr.example/mcp"
)

// startXAA starts an IdP and a resource AS that trusts it, with an agent
// registered at the IdP (private_key_jwt) and at the resource AS (secret).
func startXAA(t *testing.T) (idp, ras *Server, sign func(override map[string]any) string) {
	t.Helper()
	idp = startServer(t, Options{})
	ras = startServer(t, Options{ResourceAS: &ResourceASOptions{TrustedIssuer: idp.Issuer(), Resources: []string{resourceURL}}})
	key := newECKey(t)
	if err := idp.RegisterClient(Client{ID: agentID, PublicKey: key, ResourceClientIDs: map[string]string{ras.Issuer(): resourceAgent}}); err != nil {
		t.Fatal(err)
	}
	if err := idp.RegisterClient(Client{ID: "secret-agent", Secret: "s3cret"}); err != nil {
		t.Fatal(err)
	}
	if err := ras.RegisterClient(Client{ID: resourceAgent, Secret: "ras-secret", Scopes: []string{"hr:read", "hr:write"}}); err != nil {
		t.Fatal(err)
	}
	if err := ras.RegisterClient(Client{ID: "other-client", Secret: "other-secret", Scopes: []string{"hr:read"}}); err != nil {
		t.Fatal(err)
	}
	sign = func(override map[string]any) string {
		return assertion(t, idp, key, jwa.ES256(), agentID, override)
	}
	return idp, ras, sign
}

func idJAGForm(clientAssertion, subject string, extra url.Values) url.Values {
	f := url.Values{
		"grant_type":            {GrantTokenExchange},
		"requested_token_type":  {TokenTypeIDJAG},
		"subject_token":         {subject},
		"subject_token_type":    {TokenTypeAccessToken},
		"client_assertion_type": {ClientAssertionTypeJWT},
		"client_assertion":      {clientAssertion},
	}
	for k, v := range extra {
		if len(v) == 0 {
			delete(f, k)
			continue
		}
		f[k] = v
	}
	return f
}

func TestTokenExchangeIssuesIDJAG(t *testing.T) {
	idp, ras, sign := startXAA(t)
	other := startServer(t, Options{})
	userToken := func(t *testing.T, extra map[string]any) string {
		t.Helper()
		claims := map[string]any{"cid": agentID}
		for k, v := range extra {
			claims[k] = v
		}
		tok, err := idp.MintUser("alice", []string{"openid"}, nil, claims)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	foreign, err := other.MintUser("alice", nil, nil, map[string]any{"cid": agentID})
	if err != nil {
		t.Fatal(err)
	}
	idToken, err := idp.Mint(map[string]any{"sub": "alice", "aud": agentID})
	if err != nil {
		t.Fatal(err)
	}
	audience := url.Values{"audience": {ras.Issuer()}}
	with := func(kv ...string) url.Values {
		v := url.Values{"audience": {ras.Issuer()}}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				v[kv[i]] = nil
				continue
			}
			v.Set(kv[i], kv[i+1])
		}
		return v
	}

	tests := []struct {
		name      string
		call      tokenCall
		status    int
		errorCode string
		desc      string // substring of error_description
		resource  string
		scope     string
	}{
		{name: "access token subject", call: tokenCall{form: idJAGForm(sign(nil), userToken(t, nil), with("resource", resourceURL, "scope", "hr:write hr:read"))},
			status: 200, resource: resourceURL, scope: "hr:read hr:write"},
		{name: "id token subject", call: tokenCall{form: idJAGForm(sign(nil), idToken, with("subject_token_type", TokenTypeIDToken))}, status: 200},

		{name: "client secret instead of private_key_jwt", call: tokenCall{form: idJAGForm("", userToken(t, map[string]any{"cid": "secret-agent"}), with("client_assertion", "", "client_assertion_type", "")), basicID: "secret-agent", basicSecret: "s3cret"},
			status: 401, errorCode: "invalid_client"},
		{name: "assertion signed by the wrong key", call: tokenCall{form: idJAGForm(assertion(t, idp, newECKey(t), jwa.ES256(), agentID, nil), userToken(t, nil), audience)},
			status: 401, errorCode: "invalid_client"},
		{name: "missing audience", call: tokenCall{form: idJAGForm(sign(nil), userToken(t, nil), nil)}, status: 400, errorCode: "invalid_request"},
		{name: "resource not absolute", call: tokenCall{form: idJAGForm(sign(nil), userToken(t, nil), with("resource", "hr"))}, status: 400, errorCode: "invalid_target"},
		{name: "unsupported requested type", call: tokenCall{form: idJAGForm(sign(nil), userToken(t, nil), with("requested_token_type", "urn:ietf:params:oauth:token-type:saml2"))}, status: 400, errorCode: "invalid_request"},
		{name: "missing subject token type", call: tokenCall{form: idJAGForm(sign(nil), userToken(t, nil), with("subject_token_type", ""))}, status: 400, errorCode: "invalid_request"},
		{name: "missing subject token", call: tokenCall{form: idJAGForm(sign(nil), "", with("subject_token", ""))}, status: 400, errorCode: "invalid_request"},
		{name: "expired subject token", call: tokenCall{form: idJAGForm(sign(nil), userToken(t, map[string]any{"exp": time.Now().Add(-time.Hour)}), audience)}, status: 400, errorCode: "invalid_grant", desc: "expired"},
		{name: "subject token of another issuer", call: tokenCall{form: idJAGForm(sign(nil), foreign, audience)}, status: 400, errorCode: "invalid_grant", desc: "unknown signing key"},
		{name: "subject token of another client", call: tokenCall{form: idJAGForm(sign(nil), userToken(t, map[string]any{"cid": "someone-else"}), audience)}, status: 400, errorCode: "invalid_grant", desc: "not issued to this client"},
		{name: "id token for another client", call: tokenCall{form: idJAGForm(sign(nil), userToken(t, nil), with("subject_token_type", TokenTypeIDToken))}, status: 400, errorCode: "invalid_grant"},
		{name: "subject token garbage", call: tokenCall{form: idJAGForm(sign(nil), "a.b.c", audience)}, status: 400, errorCode: "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := callToken(t, idp, tt.call)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d (%v)", r.status, tt.status, r.body)
			}
			if tt.errorCode != "" {
				if r.body["error"] != tt.errorCode {
					t.Errorf("error = %v, want %s (%v)", r.body["error"], tt.errorCode, r.body["error_description"])
				}
				if d, _ := r.body["error_description"].(string); !strings.Contains(d, tt.desc) {
					t.Errorf("error_description = %q, want it to contain %q", d, tt.desc)
				}
				return
			}
			if r.body["issued_token_type"] != TokenTypeIDJAG || r.body["token_type"] != "N_A" {
				t.Errorf("issued_token_type/token_type = %v/%v", r.body["issued_token_type"], r.body["token_type"])
			}
			grant, _ := r.body["access_token"].(string)
			if typ, _ := headerOf(t, grant).Type(); typ != IDJAGType {
				t.Errorf("typ = %q, want %s", typ, IDJAGType)
			}
			claims := verify(t, idp, grant)
			want := map[string]any{"iss": idp.Issuer(), "sub": "alice", "aud": ras.Issuer(), "client_id": resourceAgent}
			for k, v := range want {
				if claims[k] != v {
					t.Errorf("%s = %v, want %v", k, claims[k], v)
				}
			}
			if got, _ := claims["resource"].(string); got != tt.resource {
				t.Errorf("resource = %q, want %q", got, tt.resource)
			}
			if got, _ := claims["scope"].(string); got != tt.scope {
				t.Errorf("scope = %q, want %q", got, tt.scope)
			}
			exp, _ := claims["exp"].(float64)
			iat, _ := claims["iat"].(float64)
			if exp-iat != IDJAGTTL.Seconds() || claims["jti"] == nil {
				t.Errorf("exp-iat = %v, jti = %v", exp-iat, claims["jti"])
			}
		})
	}
}

func TestTokenExchangeForAccessToken(t *testing.T) {
	s := startServer(t, Options{})
	if err := s.RegisterClient(Client{ID: "gateway", Secret: "gw-secret", Scopes: []string{"notes:read"}}); err != nil {
		t.Fatal(err)
	}
	user, err := s.MintUser("bob", nil, nil, map[string]any{"cid": "cursor"})
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {GrantTokenExchange}, "subject_token": {user}, "subject_token_type": {TokenTypeAccessToken},
		"resource": {"https://notes.example/mcp"}, "scope": {"notes:read"}}
	r := callToken(t, s, tokenCall{form: form, basicID: "gateway", basicSecret: "gw-secret"})
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %v", r.status, r.body)
	}
	if r.body["issued_token_type"] != TokenTypeAccessToken || r.body["token_type"] != "Bearer" {
		t.Errorf("issued_token_type/token_type = %v/%v", r.body["issued_token_type"], r.body["token_type"])
	}
	claims := verify(t, s, r.body["access_token"].(string))
	act, _ := claims["act"].(map[string]any)
	if claims["sub"] != "bob" || claims["aud"] != "https://notes.example/mcp" || claims["client_id"] != "gateway" || act["sub"] != "gateway" {
		t.Errorf("claims = %v", claims)
	}

	form.Set("scope", "notes:write")
	if r := callToken(t, s, tokenCall{form: form, basicID: "gateway", basicSecret: "gw-secret"}); r.body["error"] != "invalid_scope" {
		t.Errorf("scope beyond the client: %d %v", r.status, r.body)
	}
}

func TestJWTBearerAcceptsIDJAG(t *testing.T) {
	idp, ras, sign := startXAA(t)
	user, err := idp.MintUser("alice", nil, nil, map[string]any{"cid": agentID})
	if err != nil {
		t.Fatal(err)
	}
	// idJAG runs the real exchange at the IdP.
	idJAG := func(t *testing.T, extra url.Values) string {
		t.Helper()
		f := url.Values{"audience": {ras.Issuer()}, "resource": {resourceURL}, "scope": {"hr:read"}}
		for k, v := range extra {
			f[k] = v
		}
		r := callToken(t, idp, tokenCall{form: idJAGForm(sign(nil), user, f)})
		if r.status != http.StatusOK {
			t.Fatalf("ID-JAG exchange: %d %v", r.status, r.body)
		}
		return r.body["access_token"].(string)
	}
	// forge signs claims with the IdP's key, for grants the IdP would not issue.
	forge := func(t *testing.T, s *Server, typ string, override map[string]any) string {
		t.Helper()
		now := time.Now()
		claims := map[string]any{"iss": s.Issuer(), "sub": "alice", "aud": ras.Issuer(), "client_id": resourceAgent,
			"jti": newJTI(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "resource": resourceURL}
		for k, v := range override {
			if v == nil {
				delete(claims, k)
				continue
			}
			claims[k] = v
		}
		tok, err := s.signTyped(claims, typ)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	untrusted := startServer(t, Options{})
	replayed := idJAG(t, nil)
	if r := callToken(t, ras, tokenCall{form: url.Values{"grant_type": {GrantJWTBearer}, "assertion": {replayed}}, basicID: resourceAgent, basicSecret: "ras-secret"}); r.status != http.StatusOK {
		t.Fatalf("first redemption: %d %v", r.status, r.body)
	}

	tests := []struct {
		name            string
		assertion       string
		client, secret  string
		scope           string
		status          int
		errorCode, desc string
		wantScope       string
	}{
		{name: "ID-JAG from the IdP", assertion: idJAG(t, nil), status: 200, wantScope: "hr:read"},
		{name: "narrower scope", assertion: idJAG(t, url.Values{"scope": {"hr:read hr:write"}}), scope: "hr:write", status: 200, wantScope: "hr:write"},

		{name: "replayed", assertion: replayed, status: 400, errorCode: "invalid_grant", desc: "already used"},
		{name: "for another audience", assertion: idJAG(t, url.Values{"audience": {"https://other-as.example"}}), status: 400, errorCode: "invalid_grant", desc: "wrong audience"},
		{name: "redeemed by another client", assertion: idJAG(t, nil), client: "other-client", secret: "other-secret", status: 400, errorCode: "invalid_grant", desc: "client_id"},
		{name: "wider scope", assertion: idJAG(t, nil), scope: "hr:write", status: 400, errorCode: "invalid_scope"},
		{name: "typ JWT", assertion: forge(t, idp, "JWT", nil), status: 400, errorCode: "invalid_grant", desc: "typ"},
		{name: "expired", assertion: forge(t, idp, IDJAGType, map[string]any{"exp": time.Now().Add(-time.Hour).Unix(), "iat": time.Now().Add(-2 * time.Hour).Unix()}), status: 400, errorCode: "invalid_grant", desc: "expired"},
		{name: "without jti", assertion: forge(t, idp, IDJAGType, map[string]any{"jti": nil}), status: 400, errorCode: "invalid_grant", desc: "required claim"},
		{name: "signed by an untrusted server", assertion: forge(t, untrusted, IDJAGType, map[string]any{"iss": idp.Issuer()}), status: 400, errorCode: "invalid_grant", desc: "not signed by a key of the trusted IdP"},
		{name: "issuer not trusted", assertion: forge(t, untrusted, IDJAGType, nil), status: 400, errorCode: "invalid_grant", desc: "trusted IdP"},
		{name: "resource not served", assertion: forge(t, idp, IDJAGType, map[string]any{"resource": "https://payroll.example/mcp"}), status: 400, errorCode: "invalid_target"},
		{name: "no assertion", assertion: "", status: 400, errorCode: "invalid_request"},
		{name: "wrong client secret", assertion: idJAG(t, nil), secret: "nope", status: 401, errorCode: "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, secret := resourceAgent, "ras-secret"
			if tt.client != "" {
				client = tt.client
			}
			if tt.secret != "" {
				secret = tt.secret
			}
			form := url.Values{"grant_type": {GrantJWTBearer}}
			if tt.assertion != "" {
				form.Set("assertion", tt.assertion)
			}
			if tt.scope != "" {
				form.Set("scope", tt.scope)
			}
			r := callToken(t, ras, tokenCall{form: form, basicID: client, basicSecret: secret})
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d (%v)", r.status, tt.status, r.body)
			}
			if tt.errorCode != "" {
				if r.body["error"] != tt.errorCode {
					t.Errorf("error = %v, want %s (%v)", r.body["error"], tt.errorCode, r.body["error_description"])
				}
				if d, _ := r.body["error_description"].(string); !strings.Contains(d, tt.desc) {
					t.Errorf("error_description = %q, want it to contain %q", d, tt.desc)
				}
				return
			}
			claims := verify(t, ras, r.body["access_token"].(string))
			if claims["iss"] != ras.Issuer() || claims["aud"] != resourceURL || claims["sub"] != "alice" || claims["client_id"] != resourceAgent || claims["idp"] != idp.Issuer() {
				t.Errorf("claims = %v", claims)
			}
			if r.body["scope"] != tt.wantScope {
				t.Errorf("scope = %v, want %s", r.body["scope"], tt.wantScope)
			}
		})
	}
}

func TestTokenRequestsCounted(t *testing.T) {
	idp, ras, _ := startXAA(t)
	for range 3 {
		callToken(t, ras, tokenCall{form: url.Values{"grant_type": {GrantJWTBearer}, "assertion": {"x"}}, basicID: resourceAgent, basicSecret: "wrong"})
	}
	callToken(t, idp, tokenCall{form: url.Values{"grant_type": {GrantTokenExchange}}})
	checks := []struct {
		s     *Server
		grant string
		want  int64
	}{
		{ras, GrantJWTBearer, 3},
		{ras, GrantTokenExchange, 0},
		{idp, GrantTokenExchange, 1},
		{idp, GrantJWTBearer, 0}, // not registered at a plain IdP
		{idp, "password", 0},
	}
	for _, c := range checks {
		if got := c.s.TokenRequests(c.grant); got != c.want {
			t.Errorf("TokenRequests(%s) = %d, want %d", c.grant, got, c.want)
		}
	}
	if _, err := Start(t.Context(), Options{ResourceAS: &ResourceASOptions{TrustedIssuer: "not a url"}}); err == nil {
		t.Error("Start accepted a relative TrustedIssuer")
	}
}
