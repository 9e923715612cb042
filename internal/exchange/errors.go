package exchange

import (
	"errors"
	"slices"

	"github.com/mcpgw/mcpgw/internal/upstream"
)

// Kinds of transport failure, for errors.Is and metrics.
var (
	errUnreachable = errors.New("unreachable")
	errTimeout     = errors.New("did not answer in time")
)

// oauthError is an OAuth error response (RFC 6749 §5.2). Its text is the
// step and the server's description, never a token.
type oauthError struct {
	Code string
	Err  error
}

func (e *oauthError) Error() string { return e.Err.Error() }
func (e *oauthError) Unwrap() error { return e.Err }

// credentialError wraps err for the gateway, lifting an OAuth code.
func (in *injector) credentialError(err error) *upstream.CredentialError {
	var ce *upstream.CredentialError
	if errors.As(err, &ce) {
		return ce
	}
	out := &upstream.CredentialError{Backend: in.backend, Err: err}
	var oe *oauthError
	if errors.As(err, &oe) {
		out.Code = oe.Code
	}
	return out
}

// knownCodes are the OAuth error codes reported as metric outcomes; any
// other code a server invents is "other", so label values stay bounded.
var knownCodes = []string{
	"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
	"unsupported_grant_type", "invalid_scope", "invalid_target",
	"server_error", "temporarily_unavailable",
}

func outcome(ce *upstream.CredentialError) string {
	switch {
	case ce.Code != "" && slices.Contains(knownCodes, ce.Code):
		return ce.Code
	case ce.Code != "":
		return "other"
	case errors.Is(ce, errTimeout):
		return "timeout"
	case errors.Is(ce, errUnreachable):
		return "unreachable"
	}
	return "error"
}

// maxDescription bounds a server's error_description in our messages.
const maxDescription = 200
