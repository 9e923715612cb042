package testidp

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
)

// Metadata is the authorization server metadata (RFC 8414), served at both
// the OIDC and the OAuth well-known paths.
type Metadata struct {
	Issuer                                string   `json:"issuer"`
	JWKSURI                               string   `json:"jwks_uri"`
	TokenEndpoint                         string   `json:"token_endpoint"`
	AuthorizationEndpoint                 string   `json:"authorization_endpoint"`
	UserinfoEndpoint                      string   `json:"userinfo_endpoint"`
	GrantTypesSupported                   []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported     []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgsSupported []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	ResponseTypesSupported                []string `json:"response_types_supported"`
	ResponseModesSupported                []string `json:"response_modes_supported"`
	CodeChallengeMethodsSupported         []string `json:"code_challenge_methods_supported"`
	// AuthorizationResponseISSParameterSupported: redirects carry iss (RFC 9207).
	AuthorizationResponseISSParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
	SubjectTypesSupported                      []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported           []string `json:"id_token_signing_alg_values_supported"`
	ScopesSupported                            []string `json:"scopes_supported,omitempty"`
	ClaimsSupported                            []string `json:"claims_supported"`
}

// Metadata describes this server as its discovery endpoints do.
func (s *Server) Metadata() Metadata {
	return Metadata{
		Issuer:                                s.issuer,
		JWKSURI:                               s.JWKSURL(),
		TokenEndpoint:                         s.TokenEndpoint(),
		AuthorizationEndpoint:                 s.AuthorizationEndpoint(),
		UserinfoEndpoint:                      s.UserinfoEndpoint(),
		GrantTypesSupported:                   slices.Sorted(maps.Keys(s.grants)),
		TokenEndpointAuthMethodsSupported:     []string{authClientSecretBasic, authClientSecretPost, authPrivateKeyJWT},
		TokenEndpointAuthSigningAlgsSupported: assertionAlgNames(),
		// The authorization endpoint takes only the code flow with PKCE S256.
		ResponseTypesSupported:                     []string{"code"},
		ResponseModesSupported:                     []string{"query"},
		CodeChallengeMethodsSupported:              []string{"S256"},
		AuthorizationResponseISSParameterSupported: true,
		SubjectTypesSupported:                      []string{"public"},
		IDTokenSigningAlgValuesSupported:           []string{"RS256"},
		ScopesSupported:                            s.scopesSupported(),
		ClaimsSupported: []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "scp", "groups", "cid", "client_id",
			"azp", "auth_time", "nonce", "email", "name", "preferred_username"},
	}
}

// scopesSupported is the OIDC scopes the authorization endpoint takes from
// any client plus every client's own.
func (s *Server) scopesSupported() []string {
	all := append(slices.Clone(oidcScopes), s.clients.scopes()...)
	slices.Sort(all)
	return slices.Compact(all)
}

func (s *Server) handleMetadata(w http.ResponseWriter, _ *http.Request) {
	body, err := json.Marshal(s.Metadata())
	if err != nil {
		s.log.Error("metadata: marshal", "err", err)
		http.Error(w, "metadata unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}
