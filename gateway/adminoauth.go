package gateway

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/oauthserver"
	"github.com/mcpgw/mcpgw/internal/store"
)

// /admin/v1/oauth: the clients the authorization server knows, the consents
// people gave and the grants (token families) they hold; each can be ended.
// Authorized by the admin policy like every admin call (kinds oauth_clients,
// oauth_consents, oauth_grants; actions list, delete, revoke).
func (a *adminAPI) mountOAuth(r fiber.Router, o *oauthserver.Server) {
	if o == nil {
		return
	}
	a.oauth = o
	r.Get("/oauth/clients", a.handleOAuthClients)
	r.Delete("/oauth/clients/:id", a.handleOAuthDeleteClient)
	r.Get("/oauth/consents", a.handleOAuthConsents)
	r.Delete("/oauth/consents/:id", a.handleOAuthDeleteConsent)
	r.Get("/oauth/grants", a.handleOAuthGrants)
	r.Delete("/oauth/grants/:id", a.handleOAuthRevokeGrant)
}

type oauthClientView struct {
	ClientID        string          `json:"client_id"`
	ClientName      string          `json:"client_name,omitempty"`
	SoftwareID      string          `json:"software_id,omitempty"`
	SoftwareVersion string          `json:"software_version,omitempty"`
	RedirectURIs    []string        `json:"redirect_uris"`
	Agent           string          `json:"agent"`
	MetadataDoc     bool            `json:"client_id_metadata_document"`
	CreatedAt       time.Time       `json:"created_at"`
	ExpiresAt       *time.Time      `json:"expires_at,omitempty"`
	Metadata        json.RawMessage `json:"metadata,omitempty"`
}

type oauthGrantView struct {
	ID        string     `json:"id"`
	ClientID  string     `json:"client_id"`
	Agent     string     `json:"agent"`
	Subject   string     `json:"subject"`
	Issuer    string     `json:"issuer"`
	Groups    []string   `json:"groups"`
	Scopes    []string   `json:"scopes"`
	Resource  string     `json:"resource"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	Reason    string     `json:"revoked_reason,omitempty"`
}

func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// oauthCall authenticates and authorizes one call; name is the URL's id.
func (a *adminAPI) oauthCall(c *fiber.Ctx, action, kind string) (audit.Record, string, bool) {
	p, ok := a.authenticate(c)
	if !ok {
		return audit.Record{}, "", false
	}
	name := ""
	if raw := c.Params("id"); raw != "" {
		var err error
		// Client ids of metadata documents are URLs: sent escaped.
		if name, err = url.PathUnescape(raw); err != nil {
			_ = adminJSON(c, fiber.StatusBadRequest, fiber.Map{"error": "invalid_request", "error_description": "id is not a valid escaped path segment"})
			return audit.Record{}, "", false
		}
		name = strings.Clone(name)
	}
	d, ok := a.authorize(c, p, action, kind, name, nil)
	if !ok {
		return audit.Record{}, "", false
	}
	return audit.Record{Subject: p.Subject, Issuer: p.Issuer, DecisionID: d.ID, Revision: d.Revision, RequestID: requestID(c)}, name, true
}

func (a *adminAPI) handleOAuthClients(c *fiber.Ctx) error {
	if _, _, ok := a.oauthCall(c, actionList, "oauth_clients"); !ok {
		return nil
	}
	cls, err := a.oauth.Clients(c.UserContext())
	if err != nil {
		return a.internal(c, "list oauth clients", err)
	}
	out := make([]oauthClientView, 0, len(cls))
	for _, cl := range cls {
		out = append(out, oauthClientView{ClientID: cl.ID, ClientName: cl.Name, SoftwareID: cl.SoftwareID, SoftwareVersion: cl.SoftwareVersion,
			RedirectURIs: cl.RedirectURIs, Agent: cl.Agent, MetadataDoc: cl.CIMD, CreatedAt: cl.CreatedAt, ExpiresAt: optionalTime(cl.ExpiresAt),
			Metadata: cl.Metadata})
	}
	return adminJSON(c, fiber.StatusOK, fiber.Map{"clients": out})
}

func (a *adminAPI) handleOAuthDeleteClient(c *fiber.Ctx) error {
	by, id, ok := a.oauthCall(c, actionDelete, "oauth_clients")
	if !ok {
		return nil
	}
	return a.oauthEnded(c, "oauth client", id, a.oauth.DeleteClient(c.UserContext(), id, by))
}

func (a *adminAPI) handleOAuthConsents(c *fiber.Ctx) error {
	if _, _, ok := a.oauthCall(c, actionList, "oauth_consents"); !ok {
		return nil
	}
	cons, err := a.oauth.Consents(c.UserContext())
	if err != nil {
		return a.internal(c, "list oauth consents", err)
	}
	out := make([]fiber.Map, 0, len(cons))
	for _, con := range cons {
		out = append(out, fiber.Map{"id": con.ID, "client_id": con.ClientID, "subject": con.Subject, "created_at": con.CreatedAt, "expires_at": con.ExpiresAt})
	}
	return adminJSON(c, fiber.StatusOK, fiber.Map{"consents": out})
}

func (a *adminAPI) handleOAuthDeleteConsent(c *fiber.Ctx) error {
	by, id, ok := a.oauthCall(c, actionDelete, "oauth_consents")
	if !ok {
		return nil
	}
	return a.oauthEnded(c, "oauth consent", id, a.oauth.DeleteConsent(c.UserContext(), id, by))
}

func (a *adminAPI) handleOAuthGrants(c *fiber.Ctx) error {
	if _, _, ok := a.oauthCall(c, actionList, "oauth_grants"); !ok {
		return nil
	}
	gs, err := a.oauth.Grants(c.UserContext(), store.OAuthGrantFilter{ClientID: strings.Clone(c.Query("client_id")), Subject: strings.Clone(c.Query("subject"))})
	if err != nil {
		return a.internal(c, "list oauth grants", err)
	}
	out := make([]oauthGrantView, 0, len(gs))
	for _, g := range gs {
		out = append(out, oauthGrantView{ID: g.ID, ClientID: g.ClientID, Agent: g.Agent, Subject: g.Subject, Issuer: g.Issuer, Groups: g.Groups,
			Scopes: g.Scopes, Resource: g.Resource, CreatedAt: g.CreatedAt, UpdatedAt: g.UpdatedAt, ExpiresAt: g.ExpiresAt,
			RevokedAt: optionalTime(g.RevokedAt), Reason: g.RevokedReason})
	}
	return adminJSON(c, fiber.StatusOK, fiber.Map{"grants": out})
}

func (a *adminAPI) handleOAuthRevokeGrant(c *fiber.Ctx) error {
	by, id, ok := a.oauthCall(c, actionRevoke, "oauth_grants")
	if !ok {
		return nil
	}
	return a.oauthEnded(c, "oauth grant", id, a.oauth.RevokeGrant(c.UserContext(), id, by))
}

func (a *adminAPI) oauthEnded(c *fiber.Ctx, what, id string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return adminJSON(c, fiber.StatusNotFound, fiber.Map{"error": "not_found", "error_description": what + " " + id + " does not exist"})
	case err != nil:
		return a.internal(c, "end "+what, err)
	}
	return c.SendStatus(fiber.StatusNoContent)
}
