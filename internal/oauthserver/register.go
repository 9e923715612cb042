package oauthserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/secrets"
	"github.com/mcpgw/mcpgw/internal/store"
)

// maxRegistrationBytes bounds a registration document (RFC 7591 sets no
// limit; real ones are well under 2 KiB).
const maxRegistrationBytes = 16 << 10

// clientMetadata is what a client says of itself, in a registration request
// (RFC 7591 §2) or a Client ID Metadata Document.
type clientMetadata struct {
	ClientID                string   `json:"client_id,omitempty"`
	RedirectURIs            []string `json:"redirect_uris"`
	ClientName              string   `json:"client_name,omitempty"`
	ClientURI               string   `json:"client_uri,omitempty"`
	SoftwareID              string   `json:"software_id,omitempty"`
	SoftwareVersion         string   `json:"software_version,omitempty"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method,omitempty"`
	GrantTypes              []string `json:"grant_types,omitempty"`
	ResponseTypes           []string `json:"response_types,omitempty"`
	Scope                   string   `json:"scope,omitempty"`
}

// registrationError is an RFC 7591 §3.2.2 error.
type registrationError struct{ code, desc string }

func (e *registrationError) Error() string { return e.code + ": " + e.desc }

func badMetadata(format string, args ...any) error {
	return &registrationError{"invalid_client_metadata", fmt.Sprintf(format, args...)}
}

func badRedirect(format string, args ...any) error {
	return &registrationError{"invalid_redirect_uri", fmt.Sprintf(format, args...)}
}

// check validates the metadata and fills the defaults RFC 7591 gives.
func (m *clientMetadata) check() error {
	if len(m.RedirectURIs) == 0 {
		return badRedirect("redirect_uris: at least one is required")
	}
	if len(m.RedirectURIs) > 10 {
		return badRedirect("redirect_uris: at most 10")
	}
	for i, u := range m.RedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			return badRedirect("redirect_uris[%d]: %v", i, err)
		}
	}
	switch m.TokenEndpointAuthMethod {
	case "", "none":
		m.TokenEndpointAuthMethod = "none"
	default:
		return badMetadata("token_endpoint_auth_method: %q is not supported; register a public client (none) and use PKCE", secrets.Foreign(m.TokenEndpointAuthMethod, 40))
	}
	if len(m.GrantTypes) == 0 {
		m.GrantTypes = []string{"authorization_code"}
	}
	for _, g := range m.GrantTypes {
		if g != "authorization_code" && g != "refresh_token" {
			return badMetadata("grant_types: %q is not supported (authorization_code, refresh_token)", secrets.Foreign(g, 60))
		}
	}
	if len(m.ResponseTypes) == 0 {
		m.ResponseTypes = []string{"code"}
	}
	for _, r := range m.ResponseTypes {
		if r != "code" {
			return badMetadata("response_types: %q is not supported (code)", secrets.Foreign(r, 40))
		}
	}
	for name, v := range map[string]string{"client_name": m.ClientName, "software_id": m.SoftwareID, "software_version": m.SoftwareVersion} {
		if len(v) > 200 || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return badMetadata("%s: at most 200 characters, no control characters", name)
		}
	}
	return nil
}

// checkRedirectURI accepts https URLs and http loopback URLs (RFC 8252
// §7.3), without fragment or credentials.
func checkRedirectURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return errors.New("must be an absolute URL")
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return errors.New("must not have a fragment")
	}
	if u.User != nil {
		return errors.New("must not carry credentials")
	}
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && config.IsLoopbackHost(u.Hostname()):
		return nil
	}
	return errors.New("must be https, or http on a loopback address (127.0.0.1, [::1], localhost)")
}

// redirectMatches compares a requested redirect URI with a registered one:
// exactly, except that a loopback URI's port may differ (RFC 8252 §7.3:
// native apps take whatever port is free).
func redirectMatches(registered, requested string) bool {
	if registered == requested {
		return true
	}
	ru, err1 := url.Parse(registered)
	qu, err2 := url.Parse(requested)
	if err1 != nil || err2 != nil || ru.Scheme != "http" || qu.Scheme != "http" || !config.IsLoopbackHost(ru.Hostname()) {
		return false
	}
	return ru.Hostname() == qu.Hostname() && ru.EscapedPath() == qu.EscapedPath() && ru.RawQuery == qu.RawQuery &&
		qu.User == nil && qu.Fragment == ""
}

// agentFor picks the pre-configured agent a client becomes: the agent
// header of the Okta adapter's registration facade, else the first rule
// that matches, else the default agent.
func (s *Server) agentFor(m clientMetadata, header string) (string, error) {
	name := ""
	switch {
	case header != "":
		name = header
	default:
		for _, r := range s.cfg.Registration.Rules {
			if globMatch(r.ClientName, m.ClientName) && globMatch(r.SoftwareID, m.SoftwareID) {
				name = r.Agent
				break
			}
		}
		if name == "" {
			name = s.cfg.Registration.DefaultAgent
		}
	}
	if name == "" {
		return "", &registrationError{"invalid_client_metadata", fmt.Sprintf(
			"no oauth.registration rule matches client_name %q, software_id %q, and there is no default_agent", secrets.Foreign(m.ClientName, 80), secrets.Foreign(m.SoftwareID, 80))}
	}
	if _, ok := s.agent(name); !ok {
		return "", &registrationError{"invalid_client_metadata", fmt.Sprintf("agent %q does not exist or is disabled", secrets.Foreign(name, 80))}
	}
	return name, nil
}

// globMatch: an empty pattern matches anything.
func globMatch(pattern, value string) bool {
	if pattern == "" {
		return true
	}
	ok, err := path.Match(pattern, value)
	return err == nil && ok
}

func (s *Server) handleRegister(c *fiber.Ctx) error {
	s.cors(c)
	ctx := c.UserContext()
	agentHeader := ""
	if c.Path() == PathCompatRegistr {
		agentHeader = strings.Clone(strings.TrimSpace(c.Get("X-MCP-Agent")))
	}
	if s.regLimit != nil {
		ok, retry, err := s.regLimit(ctx, strings.Clone(c.IP()), s.cfg.Registration.PerMinute)
		if err != nil {
			s.log.Error("count a registration", "err", err)
			return s.refuseRegistration(c, fiber.StatusServiceUnavailable, &registrationError{"temporarily_unavailable", "registrations cannot be counted right now; try again shortly"}, nil)
		}
		if !ok {
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(max(int(retry.Seconds()+0.999), 1)))
			return s.refuseRegistration(c, fiber.StatusTooManyRequests, &registrationError{"temporarily_unavailable",
				fmt.Sprintf("too many registrations from this address (oauth.registration.per_minute is %d); retry later", s.cfg.Registration.PerMinute)}, nil)
		}
	}
	body := c.Body()
	if len(body) > maxRegistrationBytes {
		return s.refuseRegistration(c, fiber.StatusRequestEntityTooLarge, &registrationError{"invalid_client_metadata", "registration document larger than 16 KiB"}, nil)
	}
	var m clientMetadata
	dec := json.NewDecoder(strings.NewReader(string(body)))
	if err := dec.Decode(&m); err != nil || dec.More() {
		return s.refuseRegistration(c, fiber.StatusBadRequest, badMetadata("body must be one JSON object of client metadata (RFC 7591)"), nil)
	}
	if m.ClientID != "" {
		return s.refuseRegistration(c, fiber.StatusBadRequest, badMetadata("client_id is assigned by the server"), &m)
	}
	if err := m.check(); err != nil {
		return s.refuseRegistration(c, fiber.StatusBadRequest, err, &m)
	}
	agent, err := s.agentFor(m, agentHeader)
	if err != nil {
		return s.refuseRegistration(c, fiber.StatusBadRequest, err, &m)
	}
	existing, err := s.st.ListOAuthClients(ctx)
	if err != nil {
		return fmt.Errorf("count clients: %w", err)
	}
	registered := 0
	for _, e := range existing {
		if !e.CIMD {
			registered++
		}
	}
	if registered >= s.cfg.Registration.MaxClients {
		return s.refuseRegistration(c, fiber.StatusServiceUnavailable, &registrationError{"temporarily_unavailable",
			"the gateway holds oauth.registration.max_clients clients; an administrator must delete some"}, &m)
	}
	now := s.now()
	doc, _ := json.Marshal(m)
	cl := store.OAuthClient{
		ID: "mcpgw-" + randomToken()[:32], Name: m.ClientName, SoftwareID: m.SoftwareID, SoftwareVersion: m.SoftwareVersion,
		RedirectURIs: m.RedirectURIs, Agent: agent, Metadata: doc, CreatedAt: now,
	}
	if err := s.st.PutOAuthClient(ctx, cl); err != nil {
		return fmt.Errorf("store client: %w", err)
	}
	s.record(ctx, c, audit.Record{Action: "register", Agent: agent, ObjectName: cl.ID, Allow: true, After: doc})
	resp := map[string]any{
		"client_id":                  cl.ID,
		"client_id_issued_at":        now.Unix(),
		"redirect_uris":              m.RedirectURIs,
		"token_endpoint_auth_method": m.TokenEndpointAuthMethod,
		"grant_types":                m.GrantTypes,
		"response_types":             m.ResponseTypes,
	}
	for k, v := range map[string]string{"client_name": m.ClientName, "software_id": m.SoftwareID, "software_version": m.SoftwareVersion, "client_uri": m.ClientURI, "scope": m.Scope} {
		if v != "" {
			resp[k] = v
		}
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(fiber.StatusCreated).JSON(resp)
}

func (s *Server) refuseRegistration(c *fiber.Ctx, status int, err error, m *clientMetadata) error {
	var re *registrationError
	if !errors.As(err, &re) {
		re = &registrationError{"invalid_client_metadata", err.Error()}
	}
	rec := audit.Record{Action: "refuse", Method: "register", Reasons: []string{re.code + ": " + re.desc}}
	if m != nil {
		rec.After, _ = json.Marshal(m)
	}
	s.record(c.UserContext(), c, rec)
	return oauthError(c, status, re.code, re.desc)
}

// record writes an audit record of kind oauth.
func (s *Server) record(ctx context.Context, c *fiber.Ctx, r audit.Record) {
	r.Kind = audit.KindOAuth
	if r.ObjectName != "" {
		r.ObjectKind = audit.ObjectOAuthClient
	}
	if r.Time.IsZero() {
		r.Time = s.now()
	}
	if c != nil && r.RequestID == "" {
		if id, ok := c.Locals("requestid").(string); ok {
			r.RequestID = id
		}
	}
	s.audit(ctx, r)
}

// client finds a client by id: registered here, or (an https URL) by its
// metadata document.
func (s *Server) client(ctx context.Context, id string) (store.OAuthClient, error) {
	if strings.HasPrefix(id, "https://") {
		if s.cfg.CIMD.Disabled {
			return store.OAuthClient{}, errors.New("client_id metadata documents are disabled (oauth.client_metadata_documents.disabled)")
		}
		return s.cimdClient(ctx, id)
	}
	cl, err := s.st.GetOAuthClient(ctx, id, s.now())
	if errors.Is(err, store.ErrNotFound) {
		return cl, fmt.Errorf("client_id %q is not registered here", secrets.Foreign(id, 80))
	}
	if err != nil {
		return cl, fmt.Errorf("look up client: %w", err)
	}
	if !cl.ExpiresAt.IsZero() && !s.now().Before(cl.ExpiresAt) {
		return cl, fmt.Errorf("client_id %q expired", secrets.Foreign(id, 80))
	}
	return cl, nil
}

// clientAgent is the client's agent if it still exists and is enabled.
func (s *Server) clientAgent(cl store.OAuthClient) (string, error) {
	if _, ok := s.agent(cl.Agent); !ok {
		return "", fmt.Errorf("the client's agent %q no longer exists or is disabled", cl.Agent)
	}
	return cl.Agent, nil
}
