package testidp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Grant types (RFC 6749, RFC 8693, RFC 7523).
const (
	GrantClientCredentials = "client_credentials"
	GrantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
	GrantJWTBearer         = "urn:ietf:params:oauth:grant-type:jwt-bearer"
)

// maxTokenRequestBytes bounds a token request body.
const maxTokenRequestBytes = 64 << 10

// grantHandler serves one grant_type. It runs after client authentication:
// req.Client is the authenticated client, or nil when the request carried
// no client credentials and the grant allows that.
type grantHandler struct {
	// requireClient makes the token endpoint reject requests without client
	// authentication before handle runs (invalid_client).
	requireClient bool
	handle        func(ctx context.Context, req *tokenRequest) (*TokenResponse, *OAuthError)
}

// registerGrants is the one place grant types are wired in; each grant lives
// in its own file. Discovery advertises exactly these.
func (s *Server) registerGrants() map[string]grantHandler {
	grants := map[string]grantHandler{
		GrantClientCredentials: {requireClient: true, handle: s.clientCredentials},
		GrantTokenExchange:     {requireClient: true, handle: s.tokenExchange},
		GrantAuthorizationCode: {requireClient: true, handle: s.authorizationCode},
		GrantRefreshToken:      {requireClient: true, handle: s.refreshToken},
	}
	if s.resourceAS != nil {
		grants[GrantJWTBearer] = grantHandler{requireClient: true, handle: s.resourceAS.jwtBearer}
	}
	s.grantRequests = newGrantCounters(grants)
	return grants
}

// tokenRequest is a parsed token request.
type tokenRequest struct {
	GrantType string
	Form      url.Values
	// Client is the authenticated client (nil when none authenticated).
	Client *Client
}

// TokenResponse is a successful token response (RFC 6749 §5.1, RFC 8693 §2.2.1).
type TokenResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type,omitempty"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in,omitempty"`
	Scope           string `json:"scope,omitempty"`
	// IDToken and RefreshToken come from the authorization code and
	// refresh grants.
	IDToken      string `json:"id_token,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// OAuthError is an error response of the token endpoint (RFC 6749 §5.2).
type OAuthError struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
	// Status is the HTTP status; 400 unless the error is invalid_client.
	Status int `json:"-"`
}

func (e *OAuthError) Error() string { return e.Code + ": " + e.Description }

func invalidRequest(format string, args ...any) *OAuthError {
	return &OAuthError{Code: "invalid_request", Description: fmt.Sprintf(format, args...), Status: http.StatusBadRequest}
}

func invalidClient(format string, args ...any) *OAuthError {
	return &OAuthError{Code: "invalid_client", Description: fmt.Sprintf(format, args...), Status: http.StatusUnauthorized}
}

func invalidScope(format string, args ...any) *OAuthError {
	return &OAuthError{Code: "invalid_scope", Description: fmt.Sprintf(format, args...), Status: http.StatusBadRequest}
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	resp, oerr := s.token(r)
	if oerr != nil {
		s.log.Info("token request refused", "grant_type", r.PostForm.Get("grant_type"), "error", oerr.Code, "description", oerr.Description)
		writeOAuthError(w, oerr)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) token(r *http.Request) (*TokenResponse, *OAuthError) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return nil, invalidRequest("content type must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxTokenRequestBytes)
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, invalidRequest("request body exceeds %d bytes", maxTokenRequestBytes)
		}
		return nil, invalidRequest("malformed form body")
	}
	// RFC 6749 §3.2: request parameters must not be repeated.
	for name, values := range r.PostForm {
		if len(values) > 1 {
			return nil, invalidRequest("parameter %s is repeated", name)
		}
	}

	grantType := r.PostForm.Get("grant_type")
	if grantType == "" {
		return nil, invalidRequest("grant_type is required")
	}
	grant, ok := s.grants[grantType]
	if !ok {
		return nil, &OAuthError{Code: "unsupported_grant_type", Description: "grant_type " + grantType + " is not supported", Status: http.StatusBadRequest}
	}
	s.grantRequests[grantType].Add(1)

	client, oerr := s.authenticateClient(r)
	if oerr != nil {
		return nil, oerr
	}
	if client == nil && grant.requireClient {
		return nil, invalidClient("client authentication is required")
	}
	req := &tokenRequest{GrantType: grantType, Form: r.PostForm, Client: client}
	resp, oerr := grant.handle(r.Context(), req)
	if oerr != nil {
		return nil, oerr
	}
	clientID := ""
	if client != nil {
		clientID = client.ID
	}
	s.log.Info("token issued", "grant_type", grantType, "client_id", clientID, "scope", resp.Scope)
	return resp, nil
}

func writeOAuthError(w http.ResponseWriter, e *OAuthError) {
	status := e.Status
	if status == 0 {
		status = http.StatusBadRequest
	}
	// RFC 6749 §5.2: a 401 for a client that used the Authorization header
	// must name the scheme it should use.
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="testidp"`)
	}
	writeJSON(w, status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	// RFC 6749 §5.1: token responses must not be cached.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
