package bridge

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/mcpgw/mcpgw/internal/oauthmeta"
)

// Auth logs the person in through the gateway's OAuth facade and keeps the
// tokens fresh. It is safe for concurrent use: one login or refresh at a
// time, and a request that got 401 with a token already replaced just
// retries with the new one.
type Auth struct {
	// GatewayURL is the MCP URL connect was given.
	GatewayURL string
	// TokenFile is where State is kept.
	TokenFile string
	// ClientName is the registered client's client_name ("mcpgw connect").
	ClientName string
	// Open shows the authorization URL to the person: a browser opener,
	// a login handler (tests), or nothing. nil: print it only.
	Open func(ctx context.Context, authorizeURL string) error
	// HTTP is the client for discovery, registration and tokens.
	HTTP *http.Client
	Log  *slog.Logger
	// LoginTimeout bounds one browser login (default 5 minutes).
	LoginTimeout time.Duration

	mu    sync.Mutex
	state *State
}

// expiryMargin: a token ending this soon is refreshed before it is sent.
const expiryMargin = 2 * time.Second

func (a *Auth) load() error {
	if a.state != nil {
		return nil
	}
	s, err := LoadState(a.TokenFile, a.GatewayURL)
	if err != nil {
		return err
	}
	a.state = s
	return nil
}

// Token returns an access token to send, refreshing an expired one first.
// It returns "" when there is none yet: the request goes without one, and
// the gateway's 401 tells where to log in (Unauthorized).
func (a *Auth) Token(ctx context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.load(); err != nil {
		return "", err
	}
	s := a.state
	if s.AccessToken == "" || !s.Expired(time.Now(), expiryMargin) {
		return s.AccessToken, nil
	}
	if err := a.refreshOrLogin(ctx, ""); err != nil {
		return "", err
	}
	return a.state.AccessToken, nil
}

// Unauthorized handles a 401 answered to a request sent with token sent
// ("" for none): refresh, else log in. challenge is the WWW-Authenticate
// header, whose resource_metadata starts discovery.
func (a *Auth) Unauthorized(ctx context.Context, sent, challenge string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.load(); err != nil {
		return err
	}
	if sent != "" && a.state.AccessToken != sent {
		return nil // another request already replaced it
	}
	if a.state.TokenEndpoint == "" {
		if err := a.discover(ctx, challenge); err != nil {
			return err
		}
	}
	return a.refreshOrLogin(ctx, challenge)
}

func (a *Auth) refreshOrLogin(ctx context.Context, challenge string) error {
	s := a.state
	if s.RefreshToken != "" && s.TokenEndpoint != "" && s.ClientID != "" {
		err := a.refresh(ctx)
		if err == nil {
			return nil
		}
		var te *tokenError
		if !errors.As(err, &te) {
			return err // the gateway cannot be reached: keep the tokens
		}
		a.Log.Warn("refresh refused; logging in again", "error", te.Code, "description", te.Description)
		s.ClearTokens()
		if te.Code == "invalid_client" || te.Code == "unauthorized_client" {
			s.ClientID = ""
		}
		if err := s.Save(a.TokenFile); err != nil {
			return err
		}
	}
	if s.TokenEndpoint == "" {
		if err := a.discover(ctx, challenge); err != nil {
			return err
		}
	}
	return a.login(ctx)
}

// tokenError is an OAuth error answer of the token endpoint: the grant is
// refused (as opposed to the endpoint being unreachable).
type tokenError struct {
	Status      int
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func (e *tokenError) Error() string {
	return fmt.Sprintf("token endpoint: HTTP %d %s: %s", e.Status, e.Code, e.Description)
}

func (a *Auth) refresh(ctx context.Context) error {
	s := a.state
	tr, err := a.tokenRequest(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {s.RefreshToken},
		"client_id": {s.ClientID}, "resource": {s.Resource}})
	if err != nil {
		return err
	}
	s.ApplyRefresh(tr, time.Now())
	a.Log.Info("access token refreshed")
	return s.Save(a.TokenFile)
}

func (a *Auth) tokenRequest(ctx context.Context, form url.Values) (TokenResponse, error) {
	if form.Get("resource") == "" {
		form.Del("resource")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.state.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return TokenResponse{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := a.HTTP.Do(req)
	if err != nil {
		return TokenResponse{}, fmt.Errorf("token endpoint: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return TokenResponse{}, fmt.Errorf("token endpoint: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		te := &tokenError{Status: resp.StatusCode}
		if json.Unmarshal(body, te) != nil || te.Code == "" || resp.StatusCode >= 500 {
			return TokenResponse{}, fmt.Errorf("token endpoint: HTTP %d", resp.StatusCode)
		}
		return TokenResponse{}, te
	}
	var tr TokenResponse
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return TokenResponse{}, fmt.Errorf("token endpoint: an answer without an access token")
	}
	return tr, nil
}

// discover follows the 401's resource_metadata (RFC 9728) to the
// authorization server's metadata (RFC 8414).
func (a *Auth) discover(ctx context.Context, challenge string) error {
	// The challenge's resource_metadata, else the well-known places; either
	// way the document must describe the gateway URL the bridge was given.
	var prm *oauthmeta.ResourceMetadata
	var err error
	if metaURL := challengeParam(challenge, "resource_metadata"); metaURL != "" {
		prm, err = oauthmeta.FetchResourceAt(ctx, a.HTTP, a.GatewayURL, metaURL)
	} else {
		prm, err = oauthmeta.FetchResource(ctx, a.HTTP, a.GatewayURL)
	}
	if err != nil {
		return err
	}
	issuer := prm.AuthorizationServers[0]
	// oauthmeta tries every place RFC 8414 and OIDC discovery allow and
	// checks the document names issuer exactly.
	asm, err := oauthmeta.Fetch(ctx, a.HTTP, issuer, oauthmeta.AuthorizationEndpoint, oauthmeta.TokenEndpoint)
	if err != nil {
		return fmt.Errorf("authorization server metadata: %w", err)
	}
	s := a.state
	if s.Issuer != "" && s.Issuer != asm.Issuer {
		s.ClientID = "" // another authorization server: register there
	}
	s.Resource, s.Issuer = prm.Resource, asm.Issuer
	s.AuthorizationEndpoint, s.TokenEndpoint, s.RegistrationEndpoint = asm.AuthorizationEndpoint, asm.TokenEndpoint, asm.RegistrationEndpoint
	return nil
}

// challengeParam reads one auth-param of a Bearer challenge.
func challengeParam(challenge, name string) string {
	i := strings.Index(challenge, name+"=")
	if i < 0 {
		return ""
	}
	v := challenge[i+len(name)+1:]
	if strings.HasPrefix(v, `"`) {
		if end := strings.IndexByte(v[1:], '"'); end >= 0 {
			return v[1 : end+1]
		}
		return ""
	}
	if end := strings.IndexAny(v, ", "); end >= 0 {
		v = v[:end]
	}
	return v
}

// login is one browser login: a loopback listener for the redirect, the
// client registered once, PKCE S256, the code redeemed.
func (a *Auth) login(ctx context.Context) error {
	timeout := a.LoginTimeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen for the login's redirect: %w", err)
	}
	defer ln.Close()
	redirectURI := "http://" + ln.Addr().String() + "/callback"
	s := a.state
	if s.ClientID == "" {
		if err := a.register(ctx, redirectURI); err != nil {
			return err
		}
		if err := s.Save(a.TokenFile); err != nil {
			return err
		}
	}

	verifier := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	state := rand.Text()
	q := url.Values{"response_type": {"code"}, "client_id": {s.ClientID}, "redirect_uri": {redirectURI}, "state": {state},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	if s.Resource != "" {
		q.Set("resource", s.Resource)
	}
	authorizeURL := s.AuthorizationEndpoint
	if strings.Contains(authorizeURL, "?") {
		authorizeURL += "&" + q.Encode()
	} else {
		authorizeURL += "?" + q.Encode()
	}

	type result struct {
		code string
		err  error
	}
	got := make(chan result, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		p := r.URL.Query()
		var res result
		switch {
		case p.Get("state") != state:
			http.Error(w, "This login link is not the one mcpgw connect is waiting for.", http.StatusBadRequest)
			return
		case p.Get("iss") != "" && p.Get("iss") != s.Issuer:
			res.err = fmt.Errorf("the redirect names issuer %q, not %q", p.Get("iss"), s.Issuer)
		case p.Get("error") != "":
			res.err = fmt.Errorf("login refused: %s: %s", p.Get("error"), p.Get("error_description"))
		case p.Get("code") == "":
			res.err = errors.New("the redirect carries no code")
		default:
			res.code = p.Get("code")
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if res.err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, "<!doctype html><title>mcpgw connect</title><p>The login failed; see mcpgw connect's log.</p>\n")
		} else {
			_, _ = io.WriteString(w, "<!doctype html><title>mcpgw connect</title><p id=\"signed-in\">Signed in. You can close this window.</p>\n")
		}
		select {
		case got <- res:
		default:
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
	}()

	a.Log.Info("log in through the gateway in your browser", "url", authorizeURL)
	openErr := make(chan error, 1)
	opening := a.Open != nil
	if opening {
		go func() { openErr <- a.Open(ctx, authorizeURL) }()
	}
	var res result
	for waiting := true; waiting; {
		select {
		case res = <-got:
			waiting = false
		case err := <-openErr:
			opening = false
			if err != nil {
				a.Log.Warn("could not open the browser; open the URL yourself", "error", err, "url", authorizeURL)
			}
		case <-ctx.Done():
			return fmt.Errorf("no login within %s: %w", timeout, ctx.Err())
		}
	}
	if opening {
		// A login handler still running (it lets the browser show the
		// redirect's page, then closes it) gets a moment to end on its own
		// rather than being killed with its browser left behind.
		select {
		case <-openErr:
		case <-time.After(30 * time.Second):
		}
	}
	if res.err != nil {
		return res.err
	}
	tr, err := a.tokenRequest(ctx, url.Values{"grant_type": {"authorization_code"}, "code": {res.code},
		"redirect_uri": {redirectURI}, "client_id": {s.ClientID}, "code_verifier": {verifier}, "resource": {s.Resource}})
	if err != nil {
		return err
	}
	s.ApplyLogin(tr, time.Now())
	a.Log.Info("logged in")
	return s.Save(a.TokenFile)
}

// register is RFC 7591 dynamic registration of a public client.
func (a *Auth) register(ctx context.Context, redirectURI string) error {
	s := a.state
	if s.RegistrationEndpoint == "" {
		return errors.New("the authorization server offers no registration endpoint")
	}
	body, _ := json.Marshal(map[string]any{"client_name": a.ClientName, "redirect_uris": []string{redirectURI},
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
		"token_endpoint_auth_method": "none", "software_id": "mcpgw-connect"})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.RegistrationEndpoint, strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := a.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	defer resp.Body.Close()
	var out struct {
		ClientID    string `json:"client_id"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK || out.ClientID == "" {
		return fmt.Errorf("register: HTTP %d %s: %s", resp.StatusCode, out.Error, out.Description)
	}
	s.ClientID = out.ClientID
	a.Log.Info("registered at the gateway", "client_name", a.ClientName)
	return nil
}

// BrowserOpener opens a URL with the system's opener (xdg-open, open,
// rundll32), or returns an error when there is none.
func BrowserOpener(ctx context.Context, target string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.CommandContext(ctx, "open", target)
	case "windows":
		cmd = exec.CommandContext(ctx, "rundll32", "url.dll,FileProtocolHandler", target)
	default:
		cmd = exec.CommandContext(ctx, "xdg-open", target)
	}
	return cmd.Run()
}

// HandlerOpener runs a login handler: the command line (split on spaces,
// no quoting) with the authorization URL as its last argument. Its output
// goes to w (stderr: stdout is the protocol).
func HandlerOpener(command string, w io.Writer) func(ctx context.Context, target string) error {
	fields := strings.Fields(command)
	return func(ctx context.Context, target string) error {
		if len(fields) == 0 {
			return errors.New("empty login handler")
		}
		cmd := exec.CommandContext(ctx, fields[0], append(fields[1:], target)...)
		cmd.Stdout, cmd.Stderr = w, w
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("login handler: %w", err)
		}
		return nil
	}
}
