package policy

import (
	"context"
	"fmt"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/storage"
)

// revisionGuard is OPA's store with one more rule: a transaction that would
// leave a bundle without a manifest revision does not commit.
//
// OPA's bundle plugin activates a downloaded bundle inside one store
// transaction and offers no hook that can refuse it (its pre-activation hook
// errors are only logged). Refusing the commit is therefore the one point
// where an unnamed bundle is kept out: the plugin then reports the
// activation error and the last good bundle keeps serving, as for a bundle
// that fails to verify or compile.
type revisionGuard struct {
	storage.Store
}

func (g revisionGuard) Commit(ctx context.Context, txn storage.Transaction) error {
	if err := requireRevisions(ctx, g.Store, txn); err != nil {
		g.Store.Abort(ctx, txn)
		return err
	}
	return g.Store.Commit(ctx, txn)
}

// MakeDir keeps the in-memory store's own MakeDir, which storage.MakeDir
// finds by type assertion and would otherwise not see through the wrapper.
func (g revisionGuard) MakeDir(ctx context.Context, txn storage.Transaction, path storage.Path) error {
	return storage.MakeDir(ctx, g.Store, txn, path)
}

// requireRevisions checks every bundle the transaction leaves in the store.
func requireRevisions(ctx context.Context, store storage.Store, txn storage.Transaction) error {
	names, err := bundle.ReadBundleNamesFromStore(ctx, store, txn)
	if err != nil {
		if storage.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("read bundle names: %w", err)
	}
	for _, name := range names {
		rev, err := bundle.ReadBundleRevisionFromStore(ctx, store, txn, name)
		if err != nil && !storage.IsNotFound(err) {
			return fmt.Errorf("bundle %s: read revision: %w", name, err)
		}
		if rev == "" {
			return fmt.Errorf("bundle %s: %w", name, errNoRevision)
		}
	}
	return nil
}
