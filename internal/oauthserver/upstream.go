package oauthserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/exchange"
	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/oauthmeta"
	"github.com/mcpgw/mcpgw/internal/secrets"
)

// maxIdPResponse bounds what the gateway reads of the IdP's token endpoint.
const maxIdPResponse = 1 << 20

func newUpstream(ctx context.Context, cfg config.OAuthUpstream, issuer string, httpc *http.Client, log *slog.Logger) (*upstream, error) {
	u := &upstream{cfg: cfg, httpc: httpc, log: log, redirect: strings.TrimRight(issuer, "/") + PathCallback}
	switch {
	case cfg.PrivateKeyFile != "":
		pem, err := os.ReadFile(cfg.PrivateKeyFile)
		if err != nil {
			return nil, fmt.Errorf("oauth.upstream.private_key_file: %w", err)
		}
		key, err := exchange.ParsePrivateKey(string(pem))
		if err != nil {
			return nil, fmt.Errorf("oauth.upstream.private_key_file %s: %w", cfg.PrivateKeyFile, err)
		}
		u.key = key
	default:
		secret, err := config.ResolveSecret(cfg.ClientSecret, cfg.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("oauth.upstream.client_secret: %w", err)
		}
		if secret == "" {
			return nil, errors.New("oauth.upstream: client_secret, client_secret_file or private_key_file required")
		}
		u.secret = secret
	}
	// ID tokens are issued to the gateway's client: that is their audience.
	// Their typ is JWT or absent (OIDC Core §2).
	v, err := identity.NewVerifier(ctx, config.Identity{Issuers: []config.Issuer{{
		Issuer: cfg.Issuer, Audiences: []string{cfg.ClientID}, GroupsClaim: cfg.GroupsClaim, TokenTypes: []string{"JWT", ""},
	}}}, identity.WithHTTPClient(httpc), identity.WithLogger(log))
	if err != nil {
		return nil, fmt.Errorf("oauth.upstream: ID token verifier: %w", err)
	}
	u.verify = v
	return u, nil
}

func (u *upstream) close() { u.verify.Close() }

// metadata discovers the IdP's endpoints once; a failure is retried on the
// next login.
func (u *upstream) metadata(ctx context.Context) (*oauthmeta.Metadata, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.md != nil {
		return u.md, nil
	}
	md, err := oauthmeta.Fetch(ctx, u.httpc, u.cfg.Issuer, oauthmeta.AuthorizationEndpoint, oauthmeta.TokenEndpoint)
	if err != nil {
		return nil, fmt.Errorf("discover the IdP %s: %w", secrets.URL(u.cfg.Issuer), err)
	}
	u.md = md
	return md, nil
}

// authorizeURL is where the person's browser logs in: the IdP's authorize
// endpoint with the gateway's own client, PKCE and state.
func (u *upstream) authorizeURL(ctx context.Context, state, nonce, challenge string) (string, error) {
	md, err := u.metadata(ctx)
	if err != nil {
		return "", err
	}
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {u.cfg.ClientID},
		"redirect_uri":          {u.redirect},
		"scope":                 {strings.Join(u.cfg.Scopes, " ")},
		"state":                 {state},
		"nonce":                 {nonce},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
	}
	sep := "?"
	if strings.Contains(md.AuthorizationEndpoint, "?") {
		sep = "&"
	}
	return md.AuthorizationEndpoint + sep + q.Encode(), nil
}

// idpTokens is what the IdP's token endpoint answered.
type idpTokens struct {
	IDToken      string `json:"id_token"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope"`
}

// idpError is the IdP's OAuth error, kept apart so a refused refresh (the
// person was disabled) revokes the gateway's grant while an outage does not.
type idpError struct {
	Code, Description string
	Status            int
}

func (e *idpError) Error() string {
	return fmt.Sprintf("IdP token endpoint: HTTP %d %s %s", e.Status, e.Code, e.Description)
}

func (u *upstream) redeem(ctx context.Context, code, verifier string) (idpTokens, error) {
	return u.tokenCall(ctx, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {u.redirect},
		"code_verifier": {verifier},
	})
}

func (u *upstream) refresh(ctx context.Context, refreshToken string) (idpTokens, error) {
	return u.tokenCall(ctx, url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {refreshToken},
		"scope":         {strings.Join(u.cfg.Scopes, " ")},
	})
}

func (u *upstream) tokenCall(ctx context.Context, form url.Values) (idpTokens, error) {
	md, err := u.metadata(ctx)
	if err != nil {
		return idpTokens{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, md.TokenEndpoint, nil)
	if err != nil {
		return idpTokens{}, fmt.Errorf("IdP token request: %w", err)
	}
	if u.key != nil {
		assertion, err := exchange.SignClientAssertion(u.key.(jwk.Key), u.cfg.ClientID, md.TokenEndpoint, time.Now())
		if err != nil {
			return idpTokens{}, fmt.Errorf("client assertion: %w", err)
		}
		form.Set("client_id", u.cfg.ClientID)
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", assertion)
	} else {
		// RFC 6749 §2.3.1: both parts form-encoded before Basic.
		req.SetBasicAuth(url.QueryEscape(u.cfg.ClientID), url.QueryEscape(u.secret))
	}
	body := form.Encode()
	req.Body = io.NopCloser(strings.NewReader(body))
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := u.httpc.Do(req)
	if err != nil {
		return idpTokens{}, fmt.Errorf("IdP token endpoint: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxIdPResponse))
	if err != nil {
		return idpTokens{}, fmt.Errorf("IdP token endpoint: read: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(raw, &e)
		return idpTokens{}, &idpError{Code: secrets.Foreign(e.Error, 64), Description: secrets.Foreign(e.Description, 200), Status: resp.StatusCode}
	}
	var t idpTokens
	if err := json.Unmarshal(raw, &t); err != nil {
		return idpTokens{}, fmt.Errorf("IdP token endpoint: answer is not a token response: %w", err)
	}
	return t, nil
}

// person is who logged in, from a verified ID token.
type person struct {
	Subject, Issuer string
	Groups          []string
	Profile         map[string]any // name, email, preferred_username when given
}

func (u *upstream) verifyIDToken(ctx context.Context, raw, nonce string) (person, error) {
	if raw == "" {
		return person{}, errors.New("the IdP returned no id_token (is openid among oauth.upstream.scopes?)")
	}
	p, err := u.verify.Verify(ctx, raw)
	if err != nil {
		return person{}, fmt.Errorf("ID token: %w", err)
	}
	if p.ClientID != "" && p.ClientID != u.cfg.ClientID {
		return person{}, fmt.Errorf("ID token was issued to client %q, not the gateway's", secrets.Foreign(p.ClientID, 80))
	}
	if nonce != "" {
		if got, _ := p.Claims["nonce"].(string); got != nonce {
			return person{}, errors.New("ID token nonce does not match the login")
		}
	}
	profile := map[string]any{}
	for _, k := range []string{"name", "email", "email_verified", "preferred_username", "given_name", "family_name"} {
		if v, ok := p.Claims[k]; ok {
			profile[k] = v
		}
	}
	return person{Subject: p.Subject, Issuer: p.Issuer, Groups: slices.Clone(p.Groups), Profile: profile}, nil
}
