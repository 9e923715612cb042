// Package oauthmeta discovers OAuth 2.0 metadata: an authorization server's
// (RFC 8414, and OpenID Connect Discovery 1.0, which publishes the same
// document) and a protected resource's (RFC 9728).
//
// The document types are mcp-go's (client/transport), already a module of
// this project. The fetching is written here because mcp-go's discovery is
// private to its OAuthHandler and, when every candidate fails, falls back to
// guessed default endpoints and tolerates a trailing-slash issuer mismatch;
// a gateway needs discovery that fails closed and requires the exact issuer.
package oauthmeta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/mark3labs/mcp-go/client/transport"

	"github.com/mcpgw/mcpgw/internal/secrets"
)

// MaxDocumentBytes bounds a metadata document; a longer one is refused.
const MaxDocumentBytes = 1 << 20

// Well-known path suffixes (RFC 8414 §3, OpenID Connect Discovery §4, RFC 9728 §3).
const (
	WellKnownOAuth    = "/.well-known/oauth-authorization-server"
	WellKnownOIDC     = "/.well-known/openid-configuration"
	WellKnownResource = "/.well-known/oauth-protected-resource"
)

// Metadata is authorization server metadata (RFC 8414 §2).
type Metadata = transport.AuthServerMetadata

// ResourceMetadata is protected resource metadata (RFC 9728 §2).
type ResourceMetadata = transport.OAuthProtectedResource

// Field names a metadata endpoint a caller cannot do without.
type Field string

// Endpoints a caller may require of Fetch.
const (
	JWKSURI       Field = "jwks_uri"
	TokenEndpoint Field = "token_endpoint"
	// AuthorizationEndpoint is where a browser logs in (the gateway's OAuth facade sends people there).
	AuthorizationEndpoint Field = "authorization_endpoint"
)

// Fetch discovers the metadata of the authorization server issuer. It tries,
// in this order, stopping at the first usable document:
//
//  1. RFC 8414 §3.1: the well-known path inserted before the issuer's path;
//  2. OpenID Connect Discovery §4: openid-configuration appended to the issuer;
//  3. when the issuer has a path, oauth-authorization-server appended to it
//     (Okta's custom authorization servers publish there).
//
// RFC 8414 comes first as in the MCP authorization spec; every form must
// name issuer exactly (RFC 8414 §3.3, OIDC Discovery §4.3), so the order
// decides only how many requests a server costs, never whom we trust.
// A document is usable when it names issuer, every endpoint it advertises is
// an absolute http(s) URL, and it has every required field; otherwise the
// next form is tried, so an RFC 8414 document without jwks_uri (optional
// there) does not hide an OIDC one with it.
//
// Errors name each URL tried and why it failed; transport failures wrap
// the *url.Error of net/http, so callers can tell unreachable from invalid.
func Fetch(ctx context.Context, httpc *http.Client, issuer string, required ...Field) (*Metadata, error) {
	return discover(ctx, httpc, "authorization server metadata", issuer, metadataURLs,
		func(md *Metadata) error { return checkMetadata(md, issuer, required) })
}

// metadataURLs lists where issuer's metadata may live, in Fetch's order.
func metadataURLs(issuer string) ([]string, error) {
	origin, path, err := splitIdentifier(issuer, "issuer")
	if err != nil {
		return nil, err
	}
	urls := []string{
		origin + WellKnownOAuth + path,
		origin + path + WellKnownOIDC,
	}
	if path != "" {
		urls = append(urls, origin+path+WellKnownOAuth)
	}
	return urls, nil
}

type endpoint struct {
	field Field
	value string
}

func checkMetadata(md *Metadata, issuer string, required []Field) error {
	if md.Issuer != issuer {
		return fmt.Errorf("names issuer %q, not %q", md.Issuer, issuer)
	}
	// The endpoints a gateway may call; documentation links are not checked.
	endpoints := []endpoint{
		{JWKSURI, md.JwksURI},
		{TokenEndpoint, md.TokenEndpoint},
		{"authorization_endpoint", md.AuthorizationEndpoint},
		{"registration_endpoint", md.RegistrationEndpoint},
		{"revocation_endpoint", md.RevocationEndpoint},
		{"introspection_endpoint", md.IntrospectionEndpoint},
	}
	for _, f := range required {
		if !slices.ContainsFunc(endpoints, func(e endpoint) bool { return e.field == f }) {
			return fmt.Errorf("%s is not an endpoint this package reads", f)
		}
	}
	for _, e := range endpoints {
		if e.value == "" {
			if slices.Contains(required, e.field) {
				return fmt.Errorf("%s is missing", e.field)
			}
			continue
		}
		if err := checkEndpointURL(e.value); err != nil {
			return fmt.Errorf("%s: %w", e.field, err)
		}
	}
	return nil
}

// FetchResource discovers the metadata of the protected resource at
// resource (RFC 9728 §3.1): the well-known path inserted before the
// resource's path, then at the root of its host. The document must describe
// resource (RFC 9728 §3.3; a final "/" is ignored on both sides, since a
// backend URL is configured with or without one) and list at least one
// authorization server, each an absolute http(s) URL.
func FetchResource(ctx context.Context, httpc *http.Client, resource string) (*ResourceMetadata, error) {
	return discover(ctx, httpc, "protected resource metadata", resource, resourceMetadataURLs,
		func(md *ResourceMetadata) error { return checkResourceMetadata(md, resource) })
}

// FetchResourceAt reads the protected resource metadata at metadataURL, the
// resource_metadata a 401's WWW-Authenticate named (RFC 9728 §5.1), and
// checks it as FetchResource does: it must describe resource, the URL the
// client asked, or a server could send the client to another resource's
// authorization server (RFC 9728 §3.3, §7.3).
func FetchResourceAt(ctx context.Context, httpc *http.Client, resource, metadataURL string) (*ResourceMetadata, error) {
	return discover(ctx, httpc, "protected resource metadata", resource,
		func(string) ([]string, error) {
			if err := checkEndpointURL(metadataURL); err != nil {
				return nil, fmt.Errorf("resource_metadata: %w", err)
			}
			return []string{metadataURL}, nil
		},
		func(md *ResourceMetadata) error { return checkResourceMetadata(md, resource) })
}

// resourceMetadataURLs lists where resource's metadata may live, in FetchResource's order.
func resourceMetadataURLs(resource string) ([]string, error) {
	origin, path, err := splitIdentifier(resource, "resource")
	if err != nil {
		return nil, err
	}
	if path == "" {
		return []string{origin + WellKnownResource}, nil
	}
	return []string{origin + WellKnownResource + path, origin + WellKnownResource}, nil
}

func checkResourceMetadata(md *ResourceMetadata, resource string) error {
	if strings.TrimSuffix(md.Resource, "/") != strings.TrimSuffix(resource, "/") {
		return fmt.Errorf("describes resource %q, not %q", md.Resource, resource)
	}
	if len(md.AuthorizationServers) == 0 {
		return errors.New("lists no authorization_servers")
	}
	for i, as := range md.AuthorizationServers {
		if err := checkEndpointURL(as); err != nil {
			return fmt.Errorf("authorization_servers[%d]: %w", i, err)
		}
	}
	return nil
}

// splitIdentifier splits an issuer or resource identifier into its origin and
// its path without a final "/" (RFC 8414 §3.1). Identifiers carry no query
// or fragment (RFC 8414 §2, RFC 9728 §1.2), and user info would end up in
// errors and logs, so all three are refused; the identifier is not echoed
// in that error, since it may hold a password.
func splitIdentifier(id, name string) (origin, path string, err error) {
	u, err := url.Parse(id)
	if err != nil {
		return "", "", fmt.Errorf("%s is not a URL", name)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", "", fmt.Errorf("%s %q is not an absolute http(s) URL", name, secrets.URL(id))
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", "", fmt.Errorf("%s must not carry user info, a query or a fragment", name)
	}
	return u.Scheme + "://" + u.Host, strings.TrimSuffix(u.EscapedPath(), "/"), nil
}

// checkEndpointURL accepts an absolute http or https URL with a host and
// without user info or fragment (RFC 6749 §3.1, §3.2: endpoints have no
// fragment; credentials in a URL would reach logs).
func checkEndpointURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("is not a URL")
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", secrets.URL(s))
	}
	if u.User != nil || u.Fragment != "" {
		return fmt.Errorf("%q must not carry user info or a fragment", secrets.URL(s))
	}
	return nil
}

// discover returns the first of the candidate documents for id that reads
// as a T and passes check; failing that, an error naming what was sought,
// id and every candidate's failure. It stops early once ctx ends.
func discover[T any](ctx context.Context, httpc *http.Client, what, id string, urls func(string) ([]string, error), check func(*T) error) (*T, error) {
	if httpc == nil {
		return nil, fmt.Errorf("%s: no HTTP client", what)
	}
	candidates, err := urls(id)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var errs []error
	for _, doc := range candidates {
		md := new(T)
		if err := getJSON(ctx, httpc, doc, md); err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if err := check(md); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", doc, err))
			continue
		}
		return md, nil
	}
	return nil, fmt.Errorf("%s of %s: %w", what, id, errors.Join(errs...))
}

// getJSON reads one metadata document into dst. Its errors name target.
// Transport failures come back as net/http's *url.Error, which names the
// URL itself, so callers can tell unreachable from invalid with errors.As.
func getJSON(ctx context.Context, httpc *http.Client, target string, dst any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", target, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("GET %s: HTTP %d", target, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxDocumentBytes+1))
	if err != nil {
		return fmt.Errorf("GET %s: read: %w", target, err)
	}
	if len(body) > MaxDocumentBytes {
		return fmt.Errorf("GET %s: document exceeds %d bytes", target, MaxDocumentBytes)
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return fmt.Errorf("GET %s: not a JSON document: %w", target, err)
	}
	return nil
}
