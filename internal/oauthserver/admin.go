package oauthserver

import (
	"encoding/json"

	"context"
	"errors"
	"fmt"
	"github.com/mcpgw/mcpgw/internal/identity"
	"time"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/store"
)

// What the admin API shows and ends (gateway/adminoauth.go serves it
// behind the admin policy).

// Clients lists registered clients and cached metadata documents.
func (s *Server) Clients(ctx context.Context) ([]store.OAuthClient, error) {
	return s.st.ListOAuthClients(ctx)
}

// DeleteClient removes a client with its consents and grants.
func (s *Server) DeleteClient(ctx context.Context, id string, by audit.Record) error {
	cl, err := s.st.GetOAuthClient(ctx, id, time.Time{}) // expired metadata documents too
	if err != nil {
		return err
	}
	grants, err := s.st.ListOAuthGrants(ctx, store.OAuthGrantFilter{ClientID: id})
	if err != nil {
		return fmt.Errorf("list grants: %w", err)
	}
	if err := s.st.DeleteOAuthClient(ctx, id); err != nil {
		return err
	}
	for _, g := range grants {
		s.forgetGrant(g.ID)
	}
	s.adminRecord(ctx, by, "delete_client", cl.ID, cl.Agent)
	return nil
}

// Consents lists remembered consents.
func (s *Server) Consents(ctx context.Context) ([]store.OAuthConsent, error) {
	return s.st.ListOAuthConsents(ctx)
}

// DeleteConsent forgets a consent: the person is asked again.
func (s *Server) DeleteConsent(ctx context.Context, id string, by audit.Record) error {
	if err := s.st.DeleteOAuthConsent(ctx, id); err != nil {
		return err
	}
	s.adminRecord(ctx, by, "delete_consent", "", "")
	return nil
}

// Grants lists token families (without their IdP tokens).
func (s *Server) Grants(ctx context.Context, f store.OAuthGrantFilter) ([]store.OAuthGrant, error) {
	return s.st.ListOAuthGrants(ctx, f)
}

// RevokeGrant ends a token family: its refresh token stops working at
// once, its access tokens within grantCheckTTL on every replica.
func (s *Server) RevokeGrant(ctx context.Context, id string, by audit.Record) error {
	g, err := s.st.GetOAuthGrant(ctx, id)
	if err != nil {
		return err
	}
	if err := s.revoke(ctx, id, "revoked by an administrator"); err != nil {
		return err
	}
	s.adminRecord(ctx, by, "revoke", g.ClientID, g.Agent)
	return nil
}

func (s *Server) adminRecord(ctx context.Context, by audit.Record, action, client, agent string) {
	by.Action = audit.Action(action)
	by.ObjectName = client
	if agent != "" {
		by.Agent = agent
	}
	by.Allow = true
	s.record(ctx, nil, by)
}

// IsNotFound reports a missing client, consent or grant.
func IsNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// LoginIDToken is the IdP's ID token of the login a gateway token speaks
// for: the subject token of Cross App Access (internal/exchange).
func (s *Server) LoginIDToken(ctx context.Context, p *identity.Principal) (string, error) {
	grantID, _ := p.Claims[claimGrant].(string)
	if p.Via != s.issuer || grantID == "" {
		return "", errors.New("not a token of this gateway's authorization server")
	}
	g, err := s.st.GetOAuthGrant(ctx, grantID)
	if err != nil {
		return "", fmt.Errorf("look up the login: %w", err)
	}
	plain, err := s.open(g.Upstream, "grant:"+g.ID)
	if err != nil {
		return "", err
	}
	var ut upstreamTokens
	if err := json.Unmarshal(plain, &ut); err != nil || ut.IDToken == "" {
		return "", errors.New("the login holds no ID token")
	}
	return ut.IDToken, nil
}
