package policy

import (
	"context"
	"fmt"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/storage"
)

// revisionGuard is OPA's store with two more duties at commit.
//
// It refuses a transaction that would leave a bundle without a manifest
// revision. OPA's bundle plugin activates a downloaded bundle inside one
// store transaction and offers no hook that can refuse it (its
// pre-activation hook errors are only logged). Refusing the commit is
// therefore the one point where an unnamed bundle is kept out: the plugin
// then reports the activation error and the last good bundle keeps serving,
// as for a bundle that fails to verify or compile.
//
// And it prepares the engine's queries for a new policy before committing
// it. The in-memory store runs commit triggers (the engine's activate among
// them) while it holds its readers' lock, so every decision, which reads
// through a transaction, waits for them; preparing there stalled decisions
// for as long as preparation took. Before the commit, the writer holds only
// the writers' lock: decisions go on with the active policy, and the trigger
// merely publishes what was prepared. The compiler to prepare for is the one
// the writer (OPA's bundle plugin, the manager's Init, Reload) put on the
// transaction's context for the manager's own trigger.
type revisionGuard struct {
	storage.Store
	engine *Engine

	mu sync.Mutex
	// writes are the contexts of the open write transactions.
	writes map[storage.Transaction]*storage.Context
	// pending holds the snapshot prepared for a committing transaction,
	// until its trigger takes it; done the one it published, until the
	// commit returns and the activation is logged.
	pending map[storage.Transaction]*snapshot
	done    map[storage.Transaction]*snapshot
}

func newRevisionGuard(store storage.Store, e *Engine) *revisionGuard {
	return &revisionGuard{
		Store: store, engine: e,
		writes:  map[storage.Transaction]*storage.Context{},
		pending: map[storage.Transaction]*snapshot{},
		done:    map[storage.Transaction]*snapshot{},
	}
}

// NewTransaction remembers a write transaction's context, where its writer
// leaves the compiler of the policy it writes.
func (g *revisionGuard) NewTransaction(ctx context.Context, params ...storage.TransactionParams) (storage.Transaction, error) {
	txn, err := g.Store.NewTransaction(ctx, params...)
	if err == nil && len(params) > 0 && params[0].Write && params[0].Context != nil {
		g.mu.Lock()
		g.writes[txn] = params[0].Context
		g.mu.Unlock()
	}
	return txn, err
}

func (g *revisionGuard) Abort(ctx context.Context, txn storage.Transaction) {
	g.forget(txn)
	g.Store.Abort(ctx, txn)
}

func (g *revisionGuard) Commit(ctx context.Context, txn storage.Transaction) error {
	g.mu.Lock()
	tctx := g.writes[txn]
	g.mu.Unlock()
	if err := requireRevisions(ctx, g.Store, txn); err != nil {
		g.Abort(ctx, txn)
		return err
	}
	if tctx != nil && g.engine != nil {
		if compiler := plugins.GetCompilerOnContext(tctx); compiler != nil {
			// Not the writer's context: a download cancelled by Stop must not
			// leave a half-prepared policy behind a commit that goes ahead.
			snap := g.engine.prepareSnapshot(context.WithoutCancel(ctx), compiler, txn)
			g.mu.Lock()
			g.pending[txn] = snap
			g.mu.Unlock()
		}
	}
	err := g.Store.Commit(ctx, txn)
	g.mu.Lock()
	published := g.done[txn]
	g.mu.Unlock()
	g.forget(txn)
	if published != nil {
		g.engine.logActivation(published)
	}
	return err
}

// prepared hands the commit trigger the snapshot prepared for txn, if it
// was prepared for the compiler the trigger activates.
func (g *revisionGuard) prepared(txn storage.Transaction, compiler *ast.Compiler) *snapshot {
	g.mu.Lock()
	defer g.mu.Unlock()
	snap := g.pending[txn]
	delete(g.pending, txn)
	if snap == nil || snap.compiler != compiler {
		return nil
	}
	return snap
}

// published records the snapshot the trigger published for txn.
func (g *revisionGuard) published(txn storage.Transaction, snap *snapshot) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.done[txn] = snap
}

func (g *revisionGuard) forget(txn storage.Transaction) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.writes, txn)
	delete(g.pending, txn)
	delete(g.done, txn)
}

// MakeDir keeps the in-memory store's own MakeDir, which storage.MakeDir
// finds by type assertion and would otherwise not see through the wrapper.
func (g *revisionGuard) MakeDir(ctx context.Context, txn storage.Transaction, path storage.Path) error {
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
