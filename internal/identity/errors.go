package identity

import "errors"

// CodeInvalidToken is the RFC 6750 error code of every verification failure.
const CodeInvalidToken = "invalid_token"

// ErrKeysUnavailable is wrapped by the Error returned when the issuer's JWKS
// has never been loaded (IdP down or unreachable). The token may be fine: a
// caller can answer 503 instead of 401.
var ErrKeysUnavailable = errors.New("issuer signing keys unavailable")

// Reasons label verification failures in metrics and logs; a bounded set.
const (
	ReasonMissing         = "missing"
	ReasonMalformed       = "malformed"
	ReasonTooLarge        = "too_large"
	ReasonHeader          = "header"
	ReasonTokenType       = "token_type"
	ReasonAlgorithm       = "algorithm"
	ReasonIssuer          = "issuer"
	ReasonKeysUnavailable = "keys_unavailable"
	ReasonUnknownKey      = "unknown_key"
	ReasonSignature       = "signature"
	ReasonExpired         = "expired"
	ReasonNotYetValid     = "not_yet_valid"
	ReasonIssuedInFuture  = "issued_in_future"
	ReasonAudience        = "audience"
	ReasonMissingClaim    = "missing_claim"
	ReasonClaimType       = "claim_type"
)

// Error is returned (possibly wrapped) for every verification failure.
// Description is safe to send in a WWW-Authenticate error_description: it
// never contains the token or anything copied from it.
type Error struct {
	Code        string
	Description string
	reason      string
	cause       error
}

// Error includes the cause, which may name URLs and library details: log it,
// do not send it to the client (send Description).
func (e *Error) Error() string {
	if e.cause != nil {
		return e.Code + ": " + e.Description + ": " + e.cause.Error()
	}
	return e.Code + ": " + e.Description
}

// Unwrap exposes the cause (e.g. ErrKeysUnavailable, a jwx validation error).
func (e *Error) Unwrap() error { return e.cause }

// Reason is a short, bounded label of the failure, for metrics.
func (e *Error) Reason() string { return e.reason }

func invalidToken(reason, description string, cause error) *Error {
	return &Error{Code: CodeInvalidToken, Description: description, reason: reason, cause: cause}
}
