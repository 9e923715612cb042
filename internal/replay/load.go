package replay

import (
	"context"
	"log/slog"
	"time"

	"github.com/mcpgw/mcpgw/internal/policy"
)

// PolicyOptions names a policy to replay with.
type PolicyOptions struct {
	// Source is a policy directory or a bundle file (.tar.gz).
	Source string
	// VerificationKey must verify the bundle's signature when set; without
	// it, AllowUnsigned must be true.
	VerificationKey string
	KeyID           string
	AllowUnsigned   bool
	Limits          policy.BundleLimits
}

// evalTimeout bounds one replayed decision: generous, as for `mcpgw policy
// eval` (nobody's call is waiting), yet a runaway policy ends.
const evalTimeout = 5 * time.Second

// LoadPolicy loads a policy for replay: no decision log, no OPA plugins
// beyond the bundle. Stop the engine when done.
func LoadPolicy(ctx context.Context, o PolicyOptions) (*policy.Engine, error) {
	e, err := policy.New(ctx, policy.Options{
		Source:          o.Source,
		AllowUnsigned:   o.AllowUnsigned,
		VerificationKey: o.VerificationKey,
		KeyID:           o.KeyID,
		BundleLimits:    o.Limits,
		Logger:          slog.New(slog.DiscardHandler),
		DecisionLog:     func(context.Context, policy.Record) {},
		// Replayed decisions differ in nothing the cache would save.
		DecisionCacheSize: -1,
		Timeout:           evalTimeout,
		ListTimeout:       evalTimeout,
		// A replay takes seconds: the source is not watched for changes.
		PollInterval: time.Hour,
	})
	if err != nil {
		return nil, err
	}
	if err := e.Ready(); err != nil {
		e.Stop(context.WithoutCancel(ctx))
		return nil, err
	}
	return e, nil
}
