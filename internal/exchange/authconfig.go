package exchange

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/mcpgw/mcpgw/internal/config"
)

// authConfig reads one backend's auth_config, naming the field at fault in
// every error (backends.<name>.auth_config.<key>).
type authConfig struct {
	b    config.Backend
	errs []error
}

func newAuthConfig(b config.Backend) *authConfig { return &authConfig{b: b} }

func (a *authConfig) path(key string) string {
	return fmt.Sprintf("backends.%s.auth_config.%s", a.b.Name, key)
}

func (a *authConfig) fail(key, format string, args ...any) {
	a.errs = append(a.errs, fmt.Errorf("%s: %s", a.path(key), fmt.Sprintf(format, args...)))
}

// err joins every problem found, so one start reports them all.
func (a *authConfig) err() error { return errors.Join(a.errs...) }

// str is a string value; any other type is reported.
func (a *authConfig) str(key string) string {
	v, ok := a.b.AuthConfig[key]
	if !ok || v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		a.fail(key, "must be a string, not %T", v)
		return ""
	}
	return strings.TrimSpace(s)
}

// oneOf is str restricted to allowed values; def when unset.
func (a *authConfig) oneOf(key, def string, allowed ...string) string {
	s := a.str(key)
	if s == "" {
		return def
	}
	if !slices.Contains(allowed, s) {
		a.fail(key, "%q is not one of %s", s, strings.Join(allowed, ", "))
		return def
	}
	return s
}

// httpURL is str that, when set, must be an absolute http(s) URL.
func (a *authConfig) httpURL(key string) string {
	s := a.str(key)
	if s == "" {
		return ""
	}
	if err := checkHTTPURL(s); err != nil {
		a.fail(key, "%v", err)
		return ""
	}
	return s
}

// secret is a secret given inline (${ENV} resolved) or as key_file.
// config.Load already resolves both; records from the store or the admin
// API arrive unresolved, hence the second pass here.
func (a *authConfig) secret(key string) string {
	v, f := a.str(key), a.str(key+"_file")
	if v == "" && f == "" {
		return ""
	}
	s, err := config.ResolveSecret(v, f)
	if err != nil {
		field := key
		if f != "" {
			field = key + "_file"
		}
		a.fail(field, "%v", err)
		return ""
	}
	return s
}

// scopes accepts a YAML list or a space- or comma-separated string, and
// returns them sorted and unique so that equal sets share a cache key.
func (a *authConfig) scopes(key string) []string {
	var out []string
	switch v := a.b.AuthConfig[key].(type) {
	case nil:
	case string:
		out = strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' })
	case []string:
		out = slices.Clone(v)
	case []any:
		for i, item := range v {
			s, ok := item.(string)
			if !ok {
				a.fail(fmt.Sprintf("%s[%d]", key, i), "must be a string, not %T", item)
				continue
			}
			out = append(out, strings.TrimSpace(s))
		}
	default:
		a.fail(key, "must be a list of strings or a space-separated string, not %T", v)
	}
	out = slices.DeleteFunc(out, func(s string) bool { return s == "" })
	for _, s := range out {
		// RFC 6749 §3.3: scope tokens are printable ASCII without space, " or \.
		if strings.ContainsFunc(s, func(r rune) bool { return r < 0x21 || r > 0x7e || r == '"' || r == '\\' }) {
			a.fail(key, "scope %q contains a character RFC 6749 forbids", s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// tokenType accepts a short name (access_token, id_token, jwt) or the full
// RFC 8693 URN.
func (a *authConfig) tokenType(key, def string) string {
	s := a.str(key)
	if s == "" {
		return def
	}
	if !strings.HasPrefix(s, tokenTypePrefix) {
		s = tokenTypePrefix + s
	}
	if !slices.Contains([]string{TokenTypeAccessToken, TokenTypeIDToken, TokenTypeJWT}, s) {
		a.fail(key, "must be access_token, id_token or jwt (or their urn:ietf:params:oauth:token-type: URNs)")
		return def
	}
	return s
}

func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a URL")
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("must be an absolute http(s) URL")
	}
	if u.Fragment != "" || u.User != nil {
		return errors.New("must not carry a fragment or user info")
	}
	return nil
}

// clientConfig is how the gateway authenticates to a token endpoint, from
// <prefix>client_id, <prefix>client_secret (or _file),
// <prefix>client_auth_method and <prefix>private_key (or _file).
type clientConfig struct {
	method string
	// clientID empty: the calling agent's client_id.
	clientID string
	secret   string
	// key nil: the calling agent's private key.
	key jwk.Key
}

// clientAuth reads a clientConfig. The method defaults to
// client_secret_basic when a secret is set, else private_key_jwt.
func (a *authConfig) clientAuth(prefix string) clientConfig {
	cc := clientConfig{clientID: a.str(prefix + "client_id"), secret: a.secret(prefix + "client_secret")}
	def := authPrivateKey
	if cc.secret != "" {
		def = authSecretBasic
	}
	cc.method = a.oneOf(prefix+"client_auth_method", def, authSecretBasic, authSecretPost, authPrivateKey)
	if cc.method != authPrivateKey && cc.secret == "" {
		a.fail(prefix+"client_secret", "required for %s", cc.method)
	}
	if material := a.secret(prefix + "private_key"); material != "" {
		key, err := parsePrivateKey(material)
		if err != nil {
			a.fail(prefix+"private_key", "%v", err)
		}
		cc.key = key
	}
	return cc
}

// forAgent fills what the config left to the calling agent.
func (cc clientConfig) forAgent(agent config.Agent, agentKey func() (jwk.Key, error)) (clientAuth, error) {
	out := clientAuth(cc)
	if out.clientID == "" {
		if agent.ClientID == "" {
			return clientAuth{}, fmt.Errorf("agents.%s.client_id: required to authenticate as the agent", agent.Name)
		}
		out.clientID = agent.ClientID
	}
	if out.method == authPrivateKey && out.key == nil {
		key, err := agentKey()
		if err != nil {
			return clientAuth{}, err
		}
		out.key = key
	}
	return out, nil
}
