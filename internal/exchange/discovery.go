package exchange

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

// maxMetadataBytes bounds a metadata document.
const maxMetadataBytes = 1 << 20

// asMetadata is the part of RFC 8414 / OIDC discovery metadata used here.
type asMetadata struct {
	Issuer        string `json:"issuer"`
	TokenEndpoint string `json:"token_endpoint"`
}

// resourceMetadata is the part of RFC 9728 protected resource metadata used here.
type resourceMetadata struct {
	Resource             string   `json:"resource"`
	AuthorizationServers []string `json:"authorization_servers"`
}

// discoverTokenEndpoint reads issuer's metadata: RFC 8414 first (the
// well-known path inserted before the issuer's path), then OpenID Connect
// discovery, then the RFC 8414 path appended to the issuer (Okta custom
// authorization servers publish there). The document must name issuer
// exactly (RFC 8414 §3.3), or a compromised or mistaken metadata host could
// redirect the exchange.
func (x *Exchanger) discoverTokenEndpoint(ctx context.Context, issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return "", errors.New("issuer is not an absolute URL")
	}
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	candidates := []string{
		u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + path,
		strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration",
	}
	if path != "" {
		candidates = append(candidates, strings.TrimSuffix(issuer, "/")+"/.well-known/oauth-authorization-server")
	}
	var errs []error
	for _, doc := range candidates {
		var md asMetadata
		if err := x.getJSON(ctx, doc, &md); err != nil {
			errs = append(errs, err)
			continue
		}
		if md.Issuer != issuer {
			errs = append(errs, fmt.Errorf("%s names issuer %q, not %q", doc, md.Issuer, issuer))
			continue
		}
		if err := checkHTTPURL(md.TokenEndpoint); err != nil {
			errs = append(errs, fmt.Errorf("%s: token_endpoint %w", doc, err))
			continue
		}
		return md.TokenEndpoint, nil
	}
	return "", errors.Join(errs...)
}

// discoverResource reads the RFC 9728 metadata of the resource at
// resourceURL (well-known path inserted before the resource's path, then at
// the root) and checks that it describes that resource (RFC 9728 §3.3).
func (x *Exchanger) discoverResource(ctx context.Context, resourceURL string) (resourceMetadata, error) {
	u, err := url.Parse(resourceURL)
	if err != nil || u.Host == "" {
		return resourceMetadata{}, errors.New("backend url is not an absolute URL")
	}
	base := u.Scheme + "://" + u.Host + "/.well-known/oauth-protected-resource"
	candidates := []string{base}
	if p := strings.TrimSuffix(u.EscapedPath(), "/"); p != "" {
		candidates = []string{base + p, base}
	}
	var errs []error
	for _, doc := range candidates {
		var md resourceMetadata
		if err := x.getJSON(ctx, doc, &md); err != nil {
			errs = append(errs, err)
			continue
		}
		if strings.TrimSuffix(md.Resource, "/") != strings.TrimSuffix(resourceURL, "/") {
			errs = append(errs, fmt.Errorf("%s describes resource %q, not %q", doc, md.Resource, resourceURL))
			continue
		}
		if len(md.AuthorizationServers) == 0 {
			errs = append(errs, fmt.Errorf("%s lists no authorization_servers", doc))
			continue
		}
		if err := checkHTTPURL(md.AuthorizationServers[0]); err != nil {
			errs = append(errs, fmt.Errorf("%s: authorization_servers[0] %w", doc, err))
			continue
		}
		return md, nil
	}
	return resourceMetadata{}, errors.Join(errs...)
}

func (x *Exchanger) getJSON(ctx context.Context, target string, dst any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", target, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := x.httpc.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", target, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxMetadataBytes))
		return fmt.Errorf("GET %s: HTTP %d", target, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBytes+1))
	if err != nil {
		return fmt.Errorf("GET %s: read: %w", target, err)
	}
	if len(body) > maxMetadataBytes {
		return fmt.Errorf("GET %s: document exceeds %d bytes", target, maxMetadataBytes)
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return fmt.Errorf("GET %s: not a JSON document: %w", target, err)
	}
	return nil
}
