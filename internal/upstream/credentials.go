package upstream

import (
	"context"
	"fmt"
	"net/http"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/secrets"
)

// Caller is who a backend credential is obtained for.
type Caller struct {
	Principal *identity.Principal
	// Token is the caller's verified bearer token: a subject token for
	// exchanges, never forwarded itself (MCP forbids token passthrough).
	Token   string
	Agent   config.Agent
	Backend config.Backend
	// IDToken, set when the caller's token came from the gateway's own
	// authorization server (Principal.Via), returns the IdP's ID token of
	// that login: the subject token of Cross App Access, since the
	// gateway's token means nothing to the IdP.
	IDToken func(ctx context.Context) (string, error)
}

// Injector puts a backend's own credential on an upstream request.
type Injector interface {
	Inject(ctx context.Context, req *http.Request, c Caller) error
	// Invalidate drops any cached credential for c after the backend
	// refused it (HTTP 401), so a retry obtains a fresh one.
	Invalidate(ctx context.Context, c Caller)
}

// InjectorFactory builds the injector of one backend from its auth_config.
type InjectorFactory func(b config.Backend) (Injector, error)

// CredentialError is a failure to obtain a backend credential. Its message
// names the backend and, for OAuth failures, the error code, never a token.
type CredentialError struct {
	Backend string
	// Code is the OAuth error code when the authorization server sent one.
	Code string
	Err  error
}

func (e *CredentialError) Error() string {
	// Token endpoint URLs in the cause may carry secrets in their query or
	// userinfo; this text reaches callers' 502 bodies (secrets.Text).
	if e.Code != "" {
		return secrets.Text(fmt.Sprintf("credential for backend %s: %s: %v", e.Backend, e.Code, e.Err))
	}
	return secrets.Text(fmt.Sprintf("credential for backend %s: %v", e.Backend, e.Err))
}

func (e *CredentialError) Unwrap() error { return e.Err }

// BasicFactories are the injectors that need no token service.
func BasicFactories() map[string]InjectorFactory {
	return map[string]InjectorFactory{
		"none":            func(config.Backend) (Injector, error) { return noCredential{}, nil },
		"pre-shared-key":  newPreSharedKey,
		"static-key":      newPreSharedKey,
		"service-account": newServiceAccount,
	}
}

type noCredential struct{}

func (noCredential) Inject(context.Context, *http.Request, Caller) error { return nil }
func (noCredential) Invalidate(context.Context, Caller)                  {}

type preSharedKey struct {
	header, key string
}

func newPreSharedKey(b config.Backend) (Injector, error) {
	key, err := authSecret(b, "api_key", "key")
	if err != nil {
		return nil, err
	}
	header := authString(b, "header_name")
	if header == "" {
		header = "X-API-Key"
	}
	return preSharedKey{header: http.CanonicalHeaderKey(header), key: key}, nil
}

func (p preSharedKey) Inject(_ context.Context, req *http.Request, _ Caller) error {
	req.Header.Set(p.header, p.key)
	return nil
}

func (preSharedKey) Invalidate(context.Context, Caller) {}

type serviceAccount struct {
	username, password string
}

func newServiceAccount(b config.Backend) (Injector, error) {
	user := authString(b, "username")
	if user == "" {
		return nil, fmt.Errorf("backends.%s.auth_config.username: required for service-account", b.Name)
	}
	pass, err := authSecret(b, "password")
	if err != nil {
		return nil, err
	}
	return serviceAccount{username: user, password: pass}, nil
}

func (s serviceAccount) Inject(_ context.Context, req *http.Request, _ Caller) error {
	req.SetBasicAuth(s.username, s.password)
	return nil
}

func (serviceAccount) Invalidate(context.Context, Caller) {}

func authString(b config.Backend, key string) string {
	if v, ok := b.AuthConfig[key].(string); ok {
		return v
	}
	return ""
}

// authSecret reads the first of keys (or its *_file twin) from auth_config,
// resolving ${ENV} and file references.
func authSecret(b config.Backend, keys ...string) (string, error) {
	for _, k := range keys {
		v, f := authString(b, k), authString(b, k+"_file")
		if v == "" && f == "" {
			continue
		}
		s, err := config.ResolveSecret(v, f)
		if err != nil {
			return "", fmt.Errorf("backends.%s.auth_config.%s: %w", b.Name, k, err)
		}
		return s, nil
	}
	return "", fmt.Errorf("backends.%s.auth_config.%s: required for %s", b.Name, keys[0], b.AuthMethod)
}
