package policy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
)

// Activation: a policy source (a directory, a bundle file, OPA's bundle
// plugin) becomes the snapshot every decision is made with, swapped whole.

// snapshot is one policy activation: the compiler, the queries prepared
// against it and its revision. Decisions use exactly one snapshot.
type snapshot struct {
	revision   string
	generation uint64
	compiler   *ast.Compiler
	decision   preparedQuery
	admin      preparedQuery
	visible    map[ListKind]preparedQuery
	// broken is why this activation cannot decide at all.
	broken error
	// missing lists mandatory entry points the policy does not define
	// (Ready reports them).
	missing []string
	// absent marks the optional visibility rules the policy does not
	// define: those queries answer an empty set (everything hidden).
	absent map[ListKind]bool
	// decisions remembers this activation's decisions; nil when the policy
	// may decide differently on the same input.
	decisions *decisionCache
	// memo remembers the caller rules of decisions per caller; nil when
	// there are none or decisions are not remembered.
	memo *callerMemo
	// mask is data.system.log.mask, prepared only when Options.RecordInputs
	// asks for recorded inputs (recordinput.go).
	mask *preparedQuery
}

// preparedQuery is one of the gateway's queries, prepared for an activation.
type preparedQuery struct {
	rego.PreparedEvalQuery
	// wall: the query may wait on the network, and its time is measured on
	// the wall clock (see evalclock.go).
	wall bool
}

// bundleListener is the engine's name among OPA's bundle status listeners.
const bundleListener = "mcpgw-engine"

// Reload reads a local Source again and activates it when it loads,
// verifies and compiles (the watcher calls it when the source changes). On
// any failure the active policy keeps serving and the error says why.
// Activation is one store transaction, so every decision is made by either
// the old or the new policy, never a mix. Remote sources are polled by OPA's
// bundle plugin and have nothing to reload.
func (e *Engine) Reload(ctx context.Context) error {
	if err := e.usable(); err != nil {
		return err
	}
	if e.life == nil || e.store == nil {
		return errNotStarted
	}
	if e.life.kind.remote() {
		return fmt.Errorf("policy source %s is polled by OPA's bundle plugin: there is nothing to reload", e.life.source)
	}
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	b, err := loadSource(&e.opts, e.keys)
	if err != nil {
		return err
	}
	if e.life.kind == sourceDir && b.Manifest.Revision == e.Revision() {
		// A directory's revision is its content: nothing changed.
		return nil
	}
	params := storage.WriteParams
	params.Context = storage.NewContext()
	err = storage.Txn(ctx, e.store, params, func(txn storage.Transaction) error {
		// As OPA's bundle plugin activates a downloaded bundle.
		compiler := ast.NewCompiler().WithPathConflictsCheck(storage.NonEmpty(ctx, e.store, txn))
		if b.Manifest.Roots != nil {
			compiler = compiler.WithPathConflictsCheckRoots(*b.Manifest.Roots)
		}
		err := bundle.Activate(&bundle.ActivateOpts{
			Ctx:           ctx,
			Store:         e.store,
			Txn:           txn,
			TxnCtx:        params.Context,
			Compiler:      compiler,
			Metrics:       metrics.New(),
			Bundles:       map[string]*bundle.Bundle{bundleName: b},
			ParserOptions: e.manager.ParserOptions(),
		})
		if err != nil {
			return err
		}
		plugins.SetCompilerOnContext(params.Context, compiler)
		return nil
	})
	if err != nil {
		return fmt.Errorf("activate policy %s: %w", e.opts.Source, err)
	}
	return nil
}

// prepareSnapshot prepares the gateway's queries for a new activation of
// compiler, reading the data the transaction txn is about to commit. The
// store's Commit (revisionGuard) runs it before committing, while decisions
// go on with the active snapshot: compiling the queries takes milliseconds,
// and inside the commit every decision would wait for it. Nothing here may
// write to the store.
func (e *Engine) prepareSnapshot(ctx context.Context, compiler *ast.Compiler, txn storage.Transaction) *snapshot {
	snap := &snapshot{
		compiler: compiler,
		visible:  map[ListKind]preparedQuery{},
	}
	rev, err := readRevision(ctx, e.store, txn)
	if err != nil {
		snap.broken = fmt.Errorf("read policy revision: %w", err)
	}
	snap.revision = rev

	snap.decisions = e.decisionCacheFor(compiler, rev)
	tryPrepare := func(query string) (preparedQuery, error) {
		pq, err := rego.New(
			rego.Query(query),
			rego.Compiler(compiler),
			rego.Store(e.store),
			rego.Transaction(txn),
		).PrepareForEval(ctx)
		return preparedQuery{PreparedEvalQuery: pq, wall: waitingQuery(compiler, query)}, err
	}
	prepare := func(query string) preparedQuery {
		pq, err := tryPrepare(query)
		if err != nil && snap.broken == nil {
			snap.broken = fmt.Errorf("prepare %s: %w", query, err)
		}
		return pq
	}
	if snap.decisions != nil {
		// Only a policy whose decisions may be remembered may have parts
		// of them remembered (callermemo.go).
		memo, err := newCallerMemo(compiler, tryPrepare)
		if err != nil {
			e.logger.Debug("caller rules not remembered", "revision", rev, "err", err)
		}
		snap.memo = memo
	}
	snap.decision = prepare(decisionRule)
	snap.admin = prepare(adminQuery)
	if e.opts.RecordInputs {
		mask := prepare(maskRule)
		snap.mask = &mask
	}
	defined := func(rule string) bool { return len(compiler.GetRulesExact(ast.MustParseRef(rule))) > 0 }
	if !defined(decisionRule) {
		snap.missing = append(snap.missing, decisionRule)
	}
	var absentRules, absentNouns []string
	for _, kind := range listKinds() {
		rule, _ := visibleRule(kind)
		snap.visible[kind] = prepare(rule)
		switch {
		case defined(rule):
		case optionalList(kind):
			if snap.absent == nil {
				snap.absent = map[ListKind]bool{}
			}
			snap.absent[kind] = true
			absentRules = append(absentRules, rule)
			absentNouns = append(absentNouns, kindNouns[kind])
		default:
			snap.missing = append(snap.missing, rule)
		}
	}
	if rev != "" && len(absentRules) > 0 {
		verb := "is"
		if len(absentRules) > 1 {
			verb = "are"
		}
		e.logger.Warn(fmt.Sprintf("%s %s undefined: every %s will be hidden",
			strings.Join(absentRules, " and "), verb, strings.Join(absentNouns, " and ")),
			"revision", rev, "missing", absentRules)
	}
	if rev != "" && !defined(adminRule) {
		e.logger.Warn("policy defines no "+adminRule+": every admin API call will be denied", "revision", rev)
	}
	return snap
}

// activate runs inside the store commit that changed the compiler (OPA's
// compiler trigger), so no evaluation can see the new data with the old
// queries: evaluations hold a read transaction while they load the snapshot.
// It only publishes the snapshot the commit prepared (or, for a commit that
// did not, prepares it here), and logs nothing: a slow log sink would hold
// the commit, and every decision with it.
func (e *Engine) activate(txn storage.Transaction) {
	compiler := e.manager.GetCompiler()
	snap := e.store.prepared(txn, compiler)
	if snap == nil {
		snap = e.prepareSnapshot(context.Background(), compiler, txn)
	}
	snap.generation = e.gen.Add(1)
	e.snap.Store(snap)
	e.activated(snap)
	e.store.published(txn, snap)
}

// logActivation reports an activation once it is committed.
func (e *Engine) logActivation(snap *snapshot) {
	switch {
	case snap.revision == "":
		// Nothing is activated yet (a remote bundle has not arrived); Ready
		// and every denial say why.
	case snap.broken != nil:
		e.logger.Error("policy activation failed: every call will be denied", "revision", snap.revision, "error", snap.broken)
	default:
		e.logger.Info("policy activated", "revision", snap.revision, "generation", snap.generation)
	}
}

// readRevision names the active policy by its bundles' manifest revisions.
func readRevision(ctx context.Context, store storage.Store, txn storage.Transaction) (string, error) {
	names, err := bundle.ReadBundleNamesFromStore(ctx, store, txn)
	if err != nil {
		if storage.IsNotFound(err) {
			return "", nil
		}
		return "", err
	}
	slices.Sort(names)
	revs := make([]string, 0, len(names))
	for _, name := range names {
		rev, err := bundle.ReadBundleRevisionFromStore(ctx, store, txn, name)
		if err != nil && !storage.IsNotFound(err) {
			return "", fmt.Errorf("bundle %s: %w", name, err)
		}
		if len(names) == 1 {
			return rev, nil
		}
		revs = append(revs, name+"="+rev)
	}
	return strings.Join(revs, ","), nil
}
