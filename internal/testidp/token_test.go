package testidp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

type tokenCall struct {
	form        url.Values
	basicID     string // set: client_secret_basic with the raw (already encoded) values
	basicSecret string
	contentType string // default form-urlencoded
	method      string // default POST
}

type tokenReply struct {
	status int
	header http.Header
	body   map[string]any
}

func callToken(t *testing.T, s *Server, c tokenCall) tokenReply {
	t.Helper()
	method := c.method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.TokenEndpoint(), strings.NewReader(c.form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	ct := c.contentType
	if ct == "" {
		ct = "application/x-www-form-urlencoded"
	}
	req.Header.Set("Content-Type", ct)
	if c.basicID != "" {
		req.SetBasicAuth(c.basicID, c.basicSecret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST token: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	reply := tokenReply{status: resp.StatusCode, header: resp.Header}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &reply.body); err != nil {
			t.Fatalf("decode token response: %v (%s)", err, raw)
		}
	}
	return reply
}

func newECKey(t *testing.T) jwk.Key {
	t.Helper()
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwk.Import(raw)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// assertion signs a client assertion for clientID with key.
func assertion(t *testing.T, s *Server, key jwk.Key, alg jwa.SignatureAlgorithm, clientID string, override map[string]any) string {
	t.Helper()
	now := time.Now()
	claims := map[string]any{
		"iss": clientID, "sub": clientID, "aud": s.TokenEndpoint(),
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": rand.Text(),
	}
	for k, v := range override {
		if v == nil {
			delete(claims, k)
			continue
		}
		claims[k] = v
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := jws.Sign(payload, jws.WithKey(alg, key))
	if err != nil {
		t.Fatalf("sign assertion: %v", err)
	}
	return string(signed)
}

func assertionForm(a string, extra url.Values) url.Values {
	f := url.Values{"grant_type": {GrantClientCredentials}, "client_assertion_type": {ClientAssertionTypeJWT}, "client_assertion": {a}}
	for k, v := range extra {
		f[k] = v
	}
	return f
}

func TestClientCredentials(t *testing.T) {
	s := startServer(t, Options{Audience: "api://default"})
	if err := s.RegisterClient(Client{ID: "agent", Secret: "s3cret", Scopes: []string{"mcp:read", "mcp:write"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterClient(Client{ID: "odd id+/", Secret: "p@ss:w%rd", Scopes: []string{"mcp:read"}}); err != nil {
		t.Fatal(err)
	}
	clientKey := newECKey(t)
	if err := s.RegisterClient(Client{ID: "jwt-agent", PublicKey: clientKey, Scopes: []string{"mcp:read"}}); err != nil {
		t.Fatal(err)
	}
	hmacKey, err := jwk.Import([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	otherKey := newECKey(t)
	replayed := assertion(t, s, clientKey, jwa.ES256(), "jwt-agent", nil)
	if r := callToken(t, s, tokenCall{form: assertionForm(replayed, nil)}); r.status != http.StatusOK {
		t.Fatalf("first use of assertion: status %d %v", r.status, r.body)
	}

	cc := url.Values{"grant_type": {GrantClientCredentials}}
	with := func(extra url.Values) url.Values {
		f := url.Values{}
		for k, v := range cc {
			f[k] = v
		}
		for k, v := range extra {
			f[k] = v
		}
		return f
	}

	tests := []struct {
		name      string
		call      tokenCall
		status    int
		errorCode string
		sub       string
		scopes    []string
		aud       string
	}{
		{name: "basic", call: tokenCall{form: cc, basicID: "agent", basicSecret: "s3cret"},
			status: 200, sub: "agent", scopes: []string{"mcp:read", "mcp:write"}, aud: "api://default"},
		{name: "basic with form-encoded credentials", call: tokenCall{form: cc, basicID: url.QueryEscape("odd id+/"), basicSecret: url.QueryEscape("p@ss:w%rd")},
			status: 200, sub: "odd id+/", scopes: []string{"mcp:read"}, aud: "api://default"},
		{name: "post", call: tokenCall{form: with(url.Values{"client_id": {"agent"}, "client_secret": {"s3cret"}, "scope": {"mcp:read"}})},
			status: 200, sub: "agent", scopes: []string{"mcp:read"}, aud: "api://default"},
		{name: "resource becomes aud", call: tokenCall{form: with(url.Values{"resource": {"https://gw.example/employees"}}), basicID: "agent", basicSecret: "s3cret"},
			status: 200, sub: "agent", scopes: []string{"mcp:read", "mcp:write"}, aud: "https://gw.example/employees"},
		{name: "audience parameter", call: tokenCall{form: with(url.Values{"audience": {"api://other"}}), basicID: "agent", basicSecret: "s3cret"},
			status: 200, sub: "agent", scopes: []string{"mcp:read", "mcp:write"}, aud: "api://other"},
		{name: "private_key_jwt", call: tokenCall{form: assertionForm(assertion(t, s, clientKey, jwa.ES256(), "jwt-agent", nil), nil)},
			status: 200, sub: "jwt-agent", scopes: []string{"mcp:read"}, aud: "api://default"},
		{name: "private_key_jwt aud issuer", call: tokenCall{form: assertionForm(assertion(t, s, clientKey, jwa.ES256(), "jwt-agent", map[string]any{"aud": s.Issuer()}), nil)},
			status: 200, sub: "jwt-agent", scopes: []string{"mcp:read"}, aud: "api://default"},

		{name: "wrong secret basic", call: tokenCall{form: cc, basicID: "agent", basicSecret: "nope"}, status: 401, errorCode: "invalid_client"},
		{name: "wrong secret post", call: tokenCall{form: with(url.Values{"client_id": {"agent"}, "client_secret": {"nope"}})}, status: 401, errorCode: "invalid_client"},
		{name: "unknown client", call: tokenCall{form: cc, basicID: "ghost", basicSecret: "s3cret"}, status: 401, errorCode: "invalid_client"},
		{name: "no client authentication", call: tokenCall{form: with(url.Values{"client_id": {"agent"}})}, status: 401, errorCode: "invalid_client"},
		{name: "secret for key-only client", call: tokenCall{form: cc, basicID: "jwt-agent", basicSecret: ""}, status: 401, errorCode: "invalid_client"},
		{name: "two auth methods", call: tokenCall{form: with(url.Values{"client_id": {"agent"}, "client_secret": {"s3cret"}}), basicID: "agent", basicSecret: "s3cret"}, status: 400, errorCode: "invalid_request"},
		{name: "basic and form client_id differ", call: tokenCall{form: with(url.Values{"client_id": {"jwt-agent"}}), basicID: "agent", basicSecret: "s3cret"}, status: 400, errorCode: "invalid_request"},
		{name: "scope not allowed", call: tokenCall{form: with(url.Values{"scope": {"mcp:read admin"}}), basicID: "agent", basicSecret: "s3cret"}, status: 400, errorCode: "invalid_scope"},
		{name: "resource not absolute", call: tokenCall{form: with(url.Values{"resource": {"/employees"}}), basicID: "agent", basicSecret: "s3cret"}, status: 400, errorCode: "invalid_target"},
		{name: "missing grant_type", call: tokenCall{form: url.Values{}, basicID: "agent", basicSecret: "s3cret"}, status: 400, errorCode: "invalid_request"},
		{name: "unsupported grant_type", call: tokenCall{form: url.Values{"grant_type": {"password"}}, basicID: "agent", basicSecret: "s3cret"}, status: 400, errorCode: "unsupported_grant_type"},
		{name: "repeated parameter", call: tokenCall{form: with(url.Values{"scope": {"mcp:read", "mcp:write"}}), basicID: "agent", basicSecret: "s3cret"}, status: 400, errorCode: "invalid_request"},
		{name: "json body", call: tokenCall{form: cc, basicID: "agent", basicSecret: "s3cret", contentType: "application/json"}, status: 400, errorCode: "invalid_request"},
		{name: "GET", call: tokenCall{form: cc, basicID: "agent", basicSecret: "s3cret", method: http.MethodGet}, status: 405},

		{name: "assertion replayed", call: tokenCall{form: assertionForm(replayed, nil)}, status: 401, errorCode: "invalid_client"},
		{name: "assertion by another key", call: tokenCall{form: assertionForm(assertion(t, s, otherKey, jwa.ES256(), "jwt-agent", nil), nil)}, status: 401, errorCode: "invalid_client"},
		{name: "assertion HS256", call: tokenCall{form: assertionForm(assertion(t, s, hmacKey, jwa.HS256(), "jwt-agent", nil), nil)}, status: 401, errorCode: "invalid_client"},
		{name: "assertion expired", call: tokenCall{form: assertionForm(assertion(t, s, clientKey, jwa.ES256(), "jwt-agent", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}), nil)}, status: 401, errorCode: "invalid_client"},
		{name: "assertion wrong aud", call: tokenCall{form: assertionForm(assertion(t, s, clientKey, jwa.ES256(), "jwt-agent", map[string]any{"aud": "https://elsewhere"}), nil)}, status: 401, errorCode: "invalid_client"},
		{name: "assertion iss is not the client", call: tokenCall{form: assertionForm(assertion(t, s, clientKey, jwa.ES256(), "jwt-agent", map[string]any{"iss": "agent"}), nil)}, status: 401, errorCode: "invalid_client"},
		{name: "assertion without jti", call: tokenCall{form: assertionForm(assertion(t, s, clientKey, jwa.ES256(), "jwt-agent", map[string]any{"jti": nil}), nil)}, status: 401, errorCode: "invalid_client"},
		{name: "assertion wrong type", call: tokenCall{form: assertionForm(assertion(t, s, clientKey, jwa.ES256(), "jwt-agent", nil), url.Values{"client_assertion_type": {"urn:other"}})}, status: 401, errorCode: "invalid_client"},
		{name: "assertion garbage", call: tokenCall{form: assertionForm("not.a.jwt", nil)}, status: 401, errorCode: "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := callToken(t, s, tt.call)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d (body %v)", r.status, tt.status, r.body)
			}
			if tt.status == http.StatusMethodNotAllowed {
				return
			}
			if cc := r.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
			if tt.errorCode != "" {
				if r.body["error"] != tt.errorCode {
					t.Errorf("error = %v, want %s (%v)", r.body["error"], tt.errorCode, r.body["error_description"])
				}
				if _, ok := r.body["access_token"]; ok {
					t.Error("error response carries an access_token")
				}
				if tt.status == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				return
			}
			if r.body["token_type"] != "Bearer" || r.body["expires_in"] != float64(3600) {
				t.Errorf("token_type/expires_in = %v/%v", r.body["token_type"], r.body["expires_in"])
			}
			if r.body["scope"] != strings.Join(tt.scopes, " ") {
				t.Errorf("scope = %v, want %q", r.body["scope"], strings.Join(tt.scopes, " "))
			}
			token, _ := r.body["access_token"].(string)
			claims := verify(t, s, token)
			if claims["sub"] != tt.sub || claims["cid"] != tt.sub || claims["client_id"] != tt.sub {
				t.Errorf("sub/cid/client_id = %v/%v/%v, want %s", claims["sub"], claims["cid"], claims["client_id"], tt.sub)
			}
			if claims["aud"] != tt.aud || claims["iss"] != s.Issuer() {
				t.Errorf("aud/iss = %v/%v", claims["aud"], claims["iss"])
			}
			var scp []string
			for _, v := range claims["scp"].([]any) {
				scp = append(scp, v.(string))
			}
			if !slices.Equal(scp, tt.scopes) {
				t.Errorf("scp = %v, want %v", scp, tt.scopes)
			}
		})
	}
}

func TestTokenRequestTooLarge(t *testing.T) {
	s := startServer(t, Options{})
	if err := s.RegisterClient(Client{ID: "agent", Secret: "s3cret"}); err != nil {
		t.Fatal(err)
	}
	big := url.Values{"grant_type": {GrantClientCredentials}, "pad": {strings.Repeat("x", maxTokenRequestBytes)}}
	r := callToken(t, s, tokenCall{form: big, basicID: "agent", basicSecret: "s3cret"})
	if r.status != http.StatusBadRequest || r.body["error"] != "invalid_request" {
		t.Fatalf("status %d body %v, want 400 invalid_request", r.status, r.body)
	}
}

func TestRegisterClient(t *testing.T) {
	s := startServer(t, Options{})
	hmacKey, err := jwk.Import([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		client  Client
		wantErr bool
	}{
		{name: "secret", client: Client{ID: "a", Secret: "x"}},
		{name: "private key reduced to public", client: Client{ID: "b", PublicKey: newECKey(t)}},
		{name: "no id", client: Client{Secret: "x"}, wantErr: true},
		{name: "no credentials", client: Client{ID: "c"}, wantErr: true},
		{name: "symmetric key", client: Client{ID: "d", PublicKey: hmacKey}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.RegisterClient(tt.client)
			if (err != nil) != tt.wantErr {
				t.Fatalf("RegisterClient err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			got, ok := s.clients.get(tt.client.ID)
			if !ok {
				t.Fatal("client not stored")
			}
			if got.PublicKey != nil {
				if _, isPrivate := got.PublicKey.(jwk.ECDSAPrivateKey); isPrivate {
					t.Error("stored key is private")
				}
			}
		})
	}
}
