package exchange

import (
	"context"

	"github.com/mcpgw/mcpgw/internal/oauthmeta"
)

// discoverTokenEndpoint reads issuer's token_endpoint from its RFC 8414 /
// OIDC metadata (see oauthmeta.Fetch for the order and the exact-issuer
// rule that keeps a mistaken metadata host from redirecting the exchange).
func (x *Exchanger) discoverTokenEndpoint(ctx context.Context, issuer string) (string, error) {
	md, err := oauthmeta.Fetch(ctx, x.httpc, issuer, oauthmeta.TokenEndpoint)
	if err != nil {
		return "", err
	}
	return md.TokenEndpoint, nil
}
