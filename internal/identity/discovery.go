package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxMetadataBytes bounds a discovery document.
const maxMetadataBytes = 1 << 20

// discoverJWKSURL reads jwks_uri from the issuer's OpenID Connect discovery
// document, falling back to RFC 8414 authorization server metadata.
//
// Hand-written because only jwks_uri (and the issuer check) is needed and no
// OIDC client library is among the project's modules.
func discoverJWKSURL(ctx context.Context, httpc *http.Client, issuer string) (string, error) {
	var errs []error
	for _, u := range metadataURLs(issuer) {
		jwksURL, err := readJWKSURI(ctx, httpc, u, issuer)
		if err == nil {
			return jwksURL, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return "", fmt.Errorf("discover jwks_uri: %w", errors.Join(errs...))
}

// metadataURLs lists where the issuer's metadata may live: OIDC Discovery
// §4 appends the well-known path; RFC 8414 §3.1 inserts it before the path
// (Okta's custom authorization servers also answer the appended form).
func metadataURLs(issuer string) []string {
	trimmed := strings.TrimSuffix(issuer, "/")
	urls := []string{trimmed + "/.well-known/openid-configuration"}
	u, err := url.Parse(trimmed)
	if err != nil {
		return urls
	}
	path := u.Path
	u.Path = "/.well-known/oauth-authorization-server" + path
	u.RawPath = ""
	urls = append(urls, u.String())
	if path != "" {
		urls = append(urls, trimmed+"/.well-known/oauth-authorization-server")
	}
	return urls
}

func readJWKSURI(ctx context.Context, httpc *http.Client, metadataURL, issuer string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metadataURL, nil)
	if err != nil {
		return "", fmt.Errorf("%s: %w", metadataURL, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := httpc.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s: %w", metadataURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: status %d", metadataURL, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBytes+1))
	if err != nil {
		return "", fmt.Errorf("%s: read: %w", metadataURL, err)
	}
	if len(body) > maxMetadataBytes {
		return "", fmt.Errorf("%s: document exceeds %d bytes", metadataURL, maxMetadataBytes)
	}
	var md struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &md); err != nil {
		return "", fmt.Errorf("%s: decode: %w", metadataURL, err)
	}
	// OIDC Discovery §4.3 and RFC 8414 §3.3: the document must name the
	// issuer it was fetched for, or another issuer could hand us its keys.
	if md.Issuer != issuer {
		return "", fmt.Errorf("%s: issuer %q does not match %q", metadataURL, md.Issuer, issuer)
	}
	if err := checkHTTPURL(md.JWKSURI); err != nil {
		return "", fmt.Errorf("%s: jwks_uri: %w", metadataURL, err)
	}
	return md.JWKSURI, nil
}

// checkHTTPURL accepts an absolute http or https URL with a host.
func checkHTTPURL(s string) error {
	if s == "" {
		return errors.New("is empty")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("is not a URL: %w", err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}
