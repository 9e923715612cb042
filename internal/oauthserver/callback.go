package oauthserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/secrets"
	"github.com/mcpgw/mcpgw/internal/store"
)

// upstreamTokens are the IdP's tokens of one login, sealed in the grant.
type upstreamTokens struct {
	IDToken      string `json:"id_token,omitempty"`
	AccessToken  string `json:"access_token,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// idpErrors the client may be told as they are; anything else becomes
// access_denied.
var idpErrors = map[string]bool{"access_denied": true, "login_required": true, "consent_required": true,
	"interaction_required": true, "temporarily_unavailable": true, "server_error": true}

func (s *Server) handleCallback(c *fiber.Ctx) error {
	ctx := c.UserContext()
	state := c.Query("state")
	if state == "" {
		return s.errorPage(c, fiber.StatusBadRequest, "The login answer has no state. Start again from your MCP client.", &audit.Record{Reasons: []string{"callback: no state"}})
	}
	p, err := s.st.TakeOAuthPending(ctx, strings.Clone(state), s.now())
	if errors.Is(err, store.ErrNotFound) {
		return s.errorPage(c, fiber.StatusBadRequest, "This login expired or was already used. Start again from your MCP client.", &audit.Record{Reasons: []string{"callback: unknown, used or expired state"}})
	}
	if err != nil {
		return fmt.Errorf("take pending login: %w", err)
	}
	fail := func(code, desc string) error {
		s.record(ctx, c, audit.Record{Action: "refuse", Method: "callback", ObjectName: p.ClientID, Reasons: []string{code + ": " + desc}})
		return c.Redirect(s.clientRedirect(p.RedirectURI, url.Values{"error": {code}, "error_description": {desc}}, p.State), fiber.StatusSeeOther)
	}
	if e := c.Query("error"); e != "" {
		code := "access_denied"
		if idpErrors[e] {
			code = strings.Clone(e)
		}
		return fail(code, "the identity provider refused the login: "+secrets.Foreign(c.Query("error_description"), 200))
	}
	plain, err := s.open(p.Secret, "pending:"+p.ID)
	var sec pendingSecret
	if err != nil || json.Unmarshal(plain, &sec) != nil {
		return fail("server_error", "the pending login cannot be read")
	}
	toks, err := s.idp.redeem(ctx, strings.Clone(c.Query("code")), sec.Verifier)
	if err != nil {
		s.log.Warn("IdP code exchange failed", "err", err)
		return fail("access_denied", "the identity provider did not accept the login")
	}
	who, err := s.idp.verifyIDToken(ctx, toks.IDToken, sec.Nonce)
	if err != nil {
		s.log.Warn("IdP ID token refused", "err", err)
		return fail("access_denied", "the identity provider's ID token was not valid")
	}
	cl, err := s.client(ctx, p.ClientID)
	if err != nil {
		return fail("access_denied", err.Error())
	}
	agent, err := s.clientAgent(cl)
	if err != nil {
		return fail("access_denied", err.Error())
	}
	if p.ConsentID != "" {
		con, err := s.st.GetOAuthConsent(ctx, p.ConsentID, s.now())
		switch {
		case err != nil:
			return fail("access_denied", "the consent for this client expired or was revoked; start again")
		case con.Subject != "" && con.Subject != who.Subject:
			// This browser's consent was given by someone else.
			return fail("access_denied", "the consent for this client belongs to another person; start again")
		case con.Subject == "":
			con.Subject = who.Subject
			if err := s.st.PutOAuthConsent(ctx, con); err != nil {
				return fmt.Errorf("store consent: %w", err)
			}
		}
	}
	now := s.now()
	upstreamJSON, _ := json.Marshal(upstreamTokens{IDToken: toks.IDToken, AccessToken: toks.AccessToken, RefreshToken: toks.RefreshToken})
	profile, _ := json.Marshal(who.Profile)
	g := store.OAuthGrant{ID: randomToken(), ClientID: cl.ID, Agent: agent, Subject: who.Subject, Issuer: who.Issuer,
		Groups: who.Groups, Scopes: s.grantScopes(agent, p.Scope), Resource: p.Resource, Claims: profile,
		CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTokenTTL)}
	if g.Upstream, err = s.seal(upstreamJSON, "grant:"+g.ID); err != nil {
		return err
	}
	code := randomToken()
	if err := s.st.PutOAuthGrant(ctx, g, hashOf("code-seed", code)); err != nil {
		return fmt.Errorf("store grant: %w", err)
	}
	if err := s.st.PutOAuthCode(ctx, store.OAuthCode{Hash: hashOf("code", code), GrantID: g.ID, ClientID: cl.ID,
		RedirectURI: p.RedirectURI, CodeChallenge: p.CodeChallenge, Resource: p.Resource, ExpiresAt: now.Add(codeTTL)}); err != nil {
		return fmt.Errorf("store code: %w", err)
	}
	s.record(ctx, c, audit.Record{Action: "login", Subject: who.Subject, Issuer: who.Issuer, Agent: agent, ObjectName: cl.ID, Allow: true})
	return c.Redirect(s.clientRedirect(p.RedirectURI, url.Values{"code": {code}}, p.State), fiber.StatusSeeOther)
}
