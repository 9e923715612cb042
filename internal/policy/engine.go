package policy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/google/uuid"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/keys"
	"github.com/open-policy-agent/opa/v1/logging"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/plugins"
	bundleplugin "github.com/open-policy-agent/opa/v1/plugins/bundle"
	"github.com/open-policy-agent/opa/v1/plugins/discovery"
	"github.com/open-policy-agent/opa/v1/plugins/logs"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown/cache"
)

// The rules the gateway evaluates.
const (
	decisionRule = "data.mcp.gateway.decision"
	adminRule    = "data.mcp.admin.allow"
	// adminQuery also collects reasons, but only allow decides: a policy
	// without a reasons rule still works.
	adminQuery = "allow := data.mcp.admin.allow; reasons := [r | some r in data.mcp.admin.reasons]"
)

// visibleRule names the rule that filters a kind of catalog.
func visibleRule(kind ListKind) (string, bool) {
	switch kind {
	case ListTools:
		return "data.mcp.gateway.visible_tools", true
	case ListResources:
		return "data.mcp.gateway.visible_resources", true
	case ListPrompts:
		return "data.mcp.gateway.visible_prompts", true
	}
	return "", false
}

// listKinds are the kinds of catalog the gateway filters.
func listKinds() []ListKind { return []ListKind{ListTools, ListResources, ListPrompts} }

// optionalList reports the kinds of catalog whose visibility rule a policy
// may leave out: every item of such a kind is then hidden. A policy without
// visible_tools is not ready, as one without decision.
func optionalList(kind ListKind) bool { return kind == ListResources || kind == ListPrompts }

// kindNouns names the items of a kind of catalog, for log messages.
var kindNouns = map[ListKind]string{ListTools: "tool", ListResources: "resource", ListPrompts: "prompt"}

// Defaults for Options.
const (
	DefaultTimeout          = 50 * time.Millisecond
	DefaultListTimeout      = 500 * time.Millisecond
	DefaultVisibleCacheTTL  = 30 * time.Second
	DefaultVisibleCacheSize = 64 << 20
)

// Options configures an Engine.
type Options struct {
	// Source is a directory of Rego and data files or a bundle file built
	// by `opa build`. Default DefaultSource ("policies").
	Source string
	// AllowUnsigned accepts a source without a verified signature. Without
	// it a verification key is required.
	AllowUnsigned bool
	// VerificationKey is the PEM public key (or a path to it) that a bundle's
	// .signatures.json must verify against. When set, the source must verify,
	// whatever AllowUnsigned says.
	VerificationKey string
	// VerificationAlg is the key's signing algorithm (default RS256, as
	// `opa build --signing-alg`).
	VerificationAlg string
	// KeyID names the verification key (default "default", the kid `opa
	// build` writes); without VerificationKey it selects a key from
	// OPAConfig's keys section.
	KeyID string
	// Timeout bounds one decision's evaluation; past it the call is denied.
	// It counts the CPU time the evaluation uses, not time spent waiting
	// for a CPU, a lock or a policy swap (see evalclock.go). Default 50 ms.
	Timeout time.Duration
	// ListTimeout bounds one visibility query over up to listTimeoutItems
	// items; a longer list gets proportionally more (listTimeoutFor). Past
	// it everything is hidden. Default 500 ms.
	ListTimeout time.Duration
	// OPAConfig is OPA's own configuration (services, keys, caching, labels).
	OPAConfig map[string]any
	// Logger receives engine events; default slog.Default().
	Logger *slog.Logger
	// DecisionLog receives one Record per evaluation; default: a "policy
	// decision" line on Logger.
	DecisionLog func(context.Context, Record)
	// VisibleCacheTTL bounds how long a visibility answer is reused.
	// Default 30 s; a policy change invalidates earlier answers at once.
	VisibleCacheTTL time.Duration
	// VisibleCacheSize bounds the visibility cache, in approximate bytes.
	VisibleCacheSize int64
	// OnVisibleCache is told each lookup in the visibility cache, hit or
	// miss (mcpgw_filter_cache_requests_total); nil: not told.
	OnVisibleCache func(hit bool)
	// DecisionCacheSize is how many decisions each policy activation
	// remembers (default DefaultDecisionCacheSize; negative: none). Only a
	// policy whose decision calls no time, network, random or runtime
	// builtin is cached.
	DecisionCacheSize int

	// PollInterval is how often a bundle file or directory is checked for
	// changes and, for a policy.bundle URL, the shortest delay between two
	// downloads (the longest is twice that). Default DefaultPollInterval.
	PollInterval time.Duration
	// PersistDir keeps the last good downloaded bundle for the next start
	// (OPA's persistence_directory, unless policy.opa sets one). Default
	// DefaultPersistDir.
	PersistDir string
	// StartupWait bounds how long New waits for the first download of a
	// remote bundle. Default DefaultStartupWait.
	StartupWait time.Duration
	// OnActivate is told each policy revision that becomes active (a burst
	// of activations may be told as its last one only). It runs on a
	// goroutine of the engine's.
	OnActivate func(revision string, at time.Time)
	// OnReject is told each policy that was not activated (a download,
	// signature, limit or compile failure; a rejected bundle found unchanged
	// again is not told twice), so a rejection can be alerted on even when
	// no replica ever activates the bundle. It runs on the engine's goroutine.
	OnReject func()

	// Shadow is a second policy source (of any kind Source accepts), verified
	// like Source, whose decisions are compared with the enforced ones and
	// never enforced. Callers must not modify an Input after Decide returns:
	// the shadow reads it later.
	Shadow string
	// OnShadowDisagreement is told each call the shadow decided otherwise.
	OnShadowDisagreement func(context.Context, ShadowDisagreement)
	// ShadowQueue and ShadowWorkers size the shadow's queue (full: the call
	// is dropped and counted) and its workers.
	ShadowQueue   int
	ShadowWorkers int

	// BundleLimits bound every bundle the engine reads (local files and
	// directories, downloads); zero fields take the defaults.
	BundleLimits BundleLimits
}

// DefaultStartupWait bounds the wait for the first remote bundle.
const DefaultStartupWait = 10 * time.Second

// Engine decides with OPA. OPA's plugin manager owns the store and the
// compiler; the engine prepares its queries whenever the compiler changes
// and evaluates them over inputs built directly as AST values.
//
// A nil or stopped Engine denies everything.
type Engine struct {
	opts        Options
	keys        map[string]*keys.Config
	timeout     time.Duration
	listTimeout time.Duration
	cacheTTL    time.Duration
	logger      *slog.Logger
	record      func(context.Context, Record)

	manager  *plugins.Manager
	store    *revisionGuard
	snap     atomic.Pointer[snapshot]
	gen      atomic.Uint64
	stopped  atomic.Bool
	stopBg   context.CancelFunc
	iqCache  cache.InterQueryCache
	iqvCache cache.InterQueryValueCache

	seed    maphash.Seed
	visible *ristretto.Cache[uint64, map[string]bool]

	// life tracks the policy source: activations, rejections, readiness.
	life *lifecycle
	// reloadMu serializes reloads of a local source.
	reloadMu sync.Mutex
	// opaLogs is OPA's decision-log plugin, when configured.
	opaLogs *logs.Plugin
	// guard checks and paces remote bundle downloads.
	guard *bundleGuard
	// shadow evaluates every decision again with the shadow policy.
	shadow *shadowRunner
	// background runs the watcher and the announcer until Stop.
	background sync.WaitGroup
}

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
}

// preparedQuery is one of the gateway's queries, prepared for an activation.
type preparedQuery struct {
	rego.PreparedEvalQuery
	// wall: the query may wait on the network, and its time is measured on
	// the wall clock (see evalclock.go).
	wall bool
}

var (
	errNotStarted = errors.New("policy engine not started")
	errStopped    = errors.New("policy engine stopped")
	errNoPolicy   = errors.New("no policy activated")
)

// New loads the policy source into OPA's plugin manager and prepares the
// gateway's queries.
//
// A local source (a directory or a bundle file) must load, verify and
// compile, or New fails; it is then watched and re-read when it changes. A
// remote source (a policy.bundle URL or policy.opa.bundles) is downloaded by
// OPA's bundle plugin: New waits up to StartupWait for the first attempt and
// succeeds even if it fails, serving the last good bundle persisted on disk
// if there is one; with none, every decision denies and Ready says why. A
// policy that compiles but lacks decision or visible_tools is accepted:
// those decisions deny and Ready reports why. One that lacks
// visible_resources or visible_prompts is ready: it hides every item of that
// kind, and a warning says so at each activation.
func New(ctx context.Context, o Options) (*Engine, error) {
	o.Source = cmp.Or(o.Source, DefaultSource)
	e := &Engine{
		timeout:     cmp.Or(o.Timeout, DefaultTimeout),
		listTimeout: cmp.Or(o.ListTimeout, DefaultListTimeout),
		cacheTTL:    cmp.Or(o.VisibleCacheTTL, DefaultVisibleCacheTTL),
		logger:      cmp.Or(o.Logger, slog.Default()),
		seed:        maphash.MakeSeed(),
	}
	e.record = o.DecisionLog
	if e.record == nil {
		e.record = slogRecorder(e.logger)
	}
	if e.timeout < 0 || e.listTimeout < 0 || e.cacheTTL < 0 || o.PollInterval < 0 || o.StartupWait < 0 {
		return nil, errors.New("policy timeouts, poll interval and visible cache TTL must not be negative")
	}
	if err := o.BundleLimits.validate(); err != nil {
		return nil, err
	}
	o.BundleLimits = o.BundleLimits.withDefaults()

	kind, err := classifySource(o.Source, o.OPAConfig)
	if err != nil {
		return nil, err
	}
	setup, err := buildOPAConfig(&o, kind)
	if err != nil {
		return nil, err
	}
	e.opts, e.keys = o, setup.keys
	e.life = newLifecycle(kind, describeSource(o.Source, kind))
	var initial map[string]*bundle.Bundle
	var seen string
	if !kind.remote() {
		// Fingerprint before loading: a change while loading is then seen
		// by the watcher.
		if seen, err = fingerprint(o.Source); err != nil {
			return nil, fmt.Errorf("policy source %s: %w", o.Source, err)
		}
		b, err := loadSource(&o, setup.keys)
		if err != nil {
			return nil, err
		}
		initial = map[string]*bundle.Bundle{bundleName: b}
		vc, _ := verificationConfig(&o, setup.keys)
		e.life.verified = vc != nil
	}

	e.store = newRevisionGuard(inmem.NewWithOpts(inmem.OptRoundTripOnWrite(false), inmem.OptReturnASTValuesOnRead(true)), e)
	opaLog := logging.NewLoggerFromSlogHandler(e.logger.With("component", "opa").Handler(), logging.Info)
	e.manager, err = plugins.New(setup.raw, uuid.NewString(), e.store,
		plugins.Logger(opaLog),
		plugins.ConsoleLogger(opaLog),
		plugins.InitBundles(initial),
	)
	if err != nil {
		return nil, fmt.Errorf("policy.opa: %w", err)
	}
	if kind.remote() {
		if e.life.remote, e.life.verified, err = requireSignatures(e.manager, o.AllowUnsigned); err != nil {
			return nil, err
		}
		if e.guard, err = newBundleGuard(e.manager, o.BundleLimits); err != nil {
			return nil, err
		}
		// OPA reads a file:// bundle once, at start: check it first.
		for _, path := range e.guard.files {
			if err := checkSource(path, o.BundleLimits); err != nil {
				return nil, fmt.Errorf("policy bundle %s: %w", path, err)
			}
		}
		if err := e.guard.register(e.manager, setup.originals); err != nil {
			return nil, err
		}
	}

	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	e.stopBg = stop
	cacheConfig := e.manager.InterQueryBuiltinCacheConfig()
	e.iqCache = cache.NewInterQueryCacheWithContext(bg, cacheConfig)
	e.iqvCache = cache.NewInterQueryValueCache(bg, cacheConfig)
	e.manager.RegisterCacheTrigger(func(c *cache.Config) {
		e.iqCache.UpdateConfig(c)
		e.iqvCache.UpdateConfig(c)
	})

	e.visible, err = ristretto.NewCache(&ristretto.Config[uint64, map[string]bool]{
		NumCounters: 100_000,
		MaxCost:     cmp.Or(o.VisibleCacheSize, DefaultVisibleCacheSize),
		BufferItems: 64,
	})
	if err != nil {
		stop()
		return nil, fmt.Errorf("policy visible cache: %w", err)
	}

	e.background.Go(func() { e.announce(bg) })
	e.manager.RegisterCompilerTrigger(e.activate)
	if err := e.manager.Init(ctx); err != nil {
		e.Stop(ctx)
		return nil, fmt.Errorf("activate policy %s: %w", o.Source, err)
	}
	// Without a discovery section, OPA's discovery plugin builds the bundle,
	// decision-log and status plugins from the configuration, as `opa run`
	// does.
	disco, err := discovery.New(e.manager)
	if err != nil {
		e.Stop(ctx)
		return nil, fmt.Errorf("policy.opa: %w", err)
	}
	e.manager.Register(discovery.Name, disco)
	if bp := bundleplugin.Lookup(e.manager); bp != nil {
		bp.Register(bundleListener, e.onBundleStatus)
	}
	if err := e.manager.Start(ctx); err != nil {
		e.Stop(ctx)
		return nil, fmt.Errorf("start policy plugins: %w", err)
	}
	e.opaLogs = logs.Lookup(e.manager)

	if kind.remote() {
		e.awaitFirstBundles(ctx, cmp.Or(o.StartupWait, DefaultStartupWait))
		if err := e.Ready(); err != nil {
			e.logger.Error("policy not ready: every call is denied until a verified bundle is activated", "source", e.life.source, "error", err)
		}
	} else {
		snap := e.snap.Load()
		if snap == nil {
			e.Stop(ctx)
			return nil, fmt.Errorf("policy %s loaded but never activated", o.Source)
		}
		if snap.broken != nil {
			e.Stop(ctx)
			return nil, snap.broken
		}
		every := cmp.Or(o.PollInterval, DefaultPollInterval)
		e.background.Go(func() { e.watch(bg, every, seen) })
	}

	if o.Shadow != "" {
		if e.shadow, err = newShadow(ctx, o, e.logger); err != nil {
			e.Stop(ctx)
			return nil, err
		}
	}
	return e, nil
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
// and inside the commit every decision would wait for it. Nothing here may write to the store.
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
	prepare := func(query string) preparedQuery {
		pq, err := rego.New(
			rego.Query(query),
			rego.Compiler(compiler),
			rego.Store(e.store),
			rego.Transaction(txn),
		).PrepareForEval(ctx)
		if err != nil && snap.broken == nil {
			snap.broken = fmt.Errorf("prepare %s: %w", query, err)
		}
		return preparedQuery{PreparedEvalQuery: pq, wall: waitingQuery(compiler, query)}
	}
	snap.decision = prepare(decisionRule)
	snap.admin = prepare(adminQuery)
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

// Revision is the revision of the active policy, "" when there is none.
func (e *Engine) Revision() string {
	if e == nil {
		return ""
	}
	if s := e.snap.Load(); s != nil {
		return s.revision
	}
	return ""
}

// Ready says whether the engine can decide: a policy is active, its queries
// prepared, and it defines decision and visible_tools (visible_resources and
// visible_prompts may be left out: they then hide everything).
func (e *Engine) Ready() error {
	switch {
	case e == nil:
		return errNotStarted
	case e.stopped.Load():
		return errStopped
	}
	s := e.snap.Load()
	switch {
	case s == nil || s.revision == "":
		return e.noPolicy()
	case s.broken != nil:
		return s.broken
	case len(s.missing) > 0:
		return fmt.Errorf("policy %s defines no %s", s.revision, strings.Join(s.missing, ", "))
	}
	return nil
}

// Stop stops OPA's plugins and the engine's caches. Later calls deny.
func (e *Engine) Stop(ctx context.Context) {
	if e == nil || e.stopped.Swap(true) {
		return
	}
	if e.shadow != nil {
		e.shadow.close(ctx)
	}
	// The watcher and the announcer first: neither may outlive the store.
	if e.stopBg != nil {
		e.stopBg()
	}
	e.background.Wait()
	if e.manager != nil {
		e.manager.Stop(ctx)
	}
	if e.visible != nil {
		e.visible.Close()
	}
}

// Decide evaluates data.mcp.gateway.decision for one request to a backend
// (in.MCP.Kind says which: a JSON-RPC message, a GET stream, a DELETE).
// Every failure is a deny whose reason starts with "policy engine error".
func (e *Engine) Decide(ctx context.Context, in *Input) Decision {
	start := time.Now()
	d := Decision{ID: uuid.NewString()}
	if in == nil {
		d.Reasons = []string{"policy engine error: no input"}
		d.Elapsed = time.Since(start)
		e.emit(ctx, "decision", &Input{}, d, 0, 0)
		return d
	}
	v, snap, err := e.evalCall(ctx, in)
	if snap != nil {
		d.Revision = snap.revision
	}
	if err == nil {
		var verdict verdict
		verdict, err = parseVerdict(v)
		if err == nil {
			d.Allow, d.Reasons, d.Status, d.Scope = verdict.allow, verdict.reasons, verdict.status, verdict.scope
			if !d.Allow && len(d.Reasons) == 0 {
				d.Reasons = []string{"denied by policy (no reason given)"}
			}
		} else {
			err = fmt.Errorf("malformed decision: %w", err)
		}
	}
	if err != nil {
		d.Allow, d.Status, d.Scope = false, 0, ""
		d.Reasons = []string{"policy engine error: " + err.Error()}
	}
	if d.Reasons == nil {
		d.Reasons = []string{}
	}
	d.Elapsed = time.Since(start)
	e.emit(ctx, "decision", in, d, 0, 0)
	e.afterDecide(ctx, in, v, d)
	return d
}

func (e *Engine) evalCall(ctx context.Context, in *Input) (ast.Value, *snapshot, error) {
	cached, keyedBy, key, ok := e.cachedDecision(in)
	if ok {
		return cached, keyedBy, nil
	}
	input, err := callInput(in)
	if err != nil {
		return nil, nil, err
	}
	rs, snap, err := e.evaluate(ctx, func(s *snapshot) preparedQuery { return s.decision }, input)
	if err != nil {
		return nil, snap, err
	}
	v, err := resultValue(rs)
	if errors.Is(err, errUndefined) {
		return nil, snap, errors.New(decisionRule + " is undefined")
	}
	if err == nil {
		snap.rememberDecision(keyedBy, key, v)
	}
	return v, snap, err
}

// Visible returns the names (URIs for resources) among in.Tools,
// in.Resources or in.Prompts that the caller may see. in.MCP.Tool and
// in.MCP.Arguments are ignored: visibility never depends on one call.
//
// Answers are cached per caller input, listed items and policy generation;
// the returned map may be shared with other callers and must not be
// modified. An error hides everything; so does a policy that leaves out
// visible_resources or visible_prompts, for that kind, without an error. A
// gateway that lists the same catalog for many callers should prepare it
// once and use VisibleCatalog.
func (e *Engine) Visible(ctx context.Context, in *Input, kind ListKind) (map[string]bool, error) {
	if _, ok := visibleRule(kind); !ok {
		return nil, fmt.Errorf("unknown list kind %q", kind)
	}
	if in == nil {
		return nil, errors.New("policy visibility: no input")
	}
	return e.visibleNames(ctx, in, kind, listedCount(in, kind),
		func(s *snapshot) uint64 { return listKey(e.seed, in, kind, s.revision, s.generation) },
		func() (ast.Value, error) { return listInput(in, kind) })
}

// VisibleCatalog is Visible over a prepared catalog: the caller comes from
// in (its own Tools, Resources and Prompts are ignored) and the items from
// c. A cache hit costs a hash of the caller; a miss skips converting the
// catalog.
func (e *Engine) VisibleCatalog(ctx context.Context, in *Input, c *Catalog) (map[string]bool, error) {
	if in == nil || c == nil {
		return nil, errors.New("policy visibility: no input or no catalog")
	}
	return e.visibleNames(ctx, in, c.kind, c.size,
		func(s *snapshot) uint64 { return catalogKey(e.seed, in, c, s.revision, s.generation) },
		func() (ast.Value, error) { return catalogInput(in, c) })
}

func (e *Engine) visibleNames(ctx context.Context, in *Input, kind ListKind, listed int, key func(*snapshot) uint64, input func() (ast.Value, error)) (map[string]bool, error) {
	if err := e.usable(); err != nil {
		return nil, err
	}
	if snap := e.snap.Load(); snap != nil && e.cacheTTL > 0 {
		names, ok := e.visible.Get(key(snap))
		if e.opts.OnVisibleCache != nil {
			e.opts.OnVisibleCache(ok)
		}
		if ok {
			return names, nil
		}
	}

	start := time.Now()
	d := Decision{ID: uuid.NewString(), Reasons: []string{}}
	rule, _ := visibleRule(kind)
	query := strings.TrimPrefix(rule, "data.mcp.gateway.")
	v, err := input()
	var snap *snapshot
	var names map[string]bool
	if err == nil {
		names, snap, err = e.evalVisible(ctx, kind, v, e.listTimeoutFor(listed))
	}
	if snap != nil {
		d.Revision = snap.revision
	}
	d.Elapsed = time.Since(start)
	if err != nil {
		d.Reasons = []string{"policy engine error: " + err.Error()}
		e.emit(ctx, query, in, d, listed, 0)
		return nil, fmt.Errorf("policy %s: %w", query, err)
	}
	d.Allow = true
	e.emit(ctx, query, in, d, listed, len(names))
	if e.cacheTTL > 0 {
		// Keyed by the snapshot that answered, which may be newer than the
		// one the lookup used.
		e.visible.SetWithTTL(key(snap), names, cacheCost(names), e.cacheTTL)
	}
	return names, nil
}

// listTimeoutItems is the list length ListTimeout is for.
const listTimeoutItems = 1000

// listTimeoutFor is the budget of a visibility query over listed items:
// ListTimeout up to listTimeoutItems, the same budget per item beyond. A
// fixed budget hid every item of a 100,000-tool list (the shipped policy
// needs ~7 µs of CPU per tool), while a policy that runs away (quadratic
// in the items) is still stopped, at the same cost per item as before.
func (e *Engine) listTimeoutFor(listed int) time.Duration {
	if listed <= listTimeoutItems {
		return e.listTimeout
	}
	return time.Duration(float64(e.listTimeout) * float64(listed) / listTimeoutItems)
}

func (e *Engine) evalVisible(ctx context.Context, kind ListKind, input ast.Value, timeout time.Duration) (map[string]bool, *snapshot, error) {
	rule, _ := visibleRule(kind)
	rs, snap, err := e.evaluateWithin(ctx, timeout, func(s *snapshot) preparedQuery { return s.visible[kind] }, input)
	if err != nil {
		return nil, snap, err
	}
	v, err := resultValue(rs)
	if errors.Is(err, errUndefined) {
		if snap.absent[kind] {
			// An optional rule the policy leaves out hides everything of
			// its kind; activate warned once.
			return map[string]bool{}, snap, nil
		}
		// A partial set with no members is defined and empty; undefined
		// means the policy has no such rule, or its rule has no value for
		// this input.
		return nil, snap, errors.New(rule + " is undefined")
	}
	if err != nil {
		return nil, snap, err
	}
	names, err := nameSet(v)
	if err != nil {
		return nil, snap, fmt.Errorf("malformed %s: %w", rule, err)
	}
	return names, snap, nil
}

// DecideAdmin evaluates data.mcp.admin.allow for one admin API call. A
// denial carries status 403.
func (e *Engine) DecideAdmin(ctx context.Context, in *AdminInput) Decision {
	start := time.Now()
	d := Decision{ID: uuid.NewString(), Status: 403, Reasons: []string{}}
	err := errors.New("no input")
	var snap *snapshot
	if in != nil {
		var input ast.Value
		if input, err = adminInput(in); err == nil {
			var rs rego.ResultSet
			rs, snap, err = e.evaluate(ctx, func(s *snapshot) preparedQuery { return s.admin }, input)
			if err == nil {
				err = parseAdmin(rs, &d)
			}
		}
	}
	if snap != nil {
		d.Revision = snap.revision
	}
	if err != nil {
		d.Allow, d.Status = false, 403
		d.Reasons = []string{"policy engine error: " + err.Error()}
	}
	if d.Allow {
		d.Status = 0
	}
	d.Elapsed = time.Since(start)
	rec := &Input{}
	if in != nil {
		rec = &Input{Token: TokenInput{Sub: in.Token.Sub, Iss: in.Token.Iss}, HTTP: in.HTTP, MCP: MCPInput{Method: in.Admin.Action, Tool: adminTarget(in.Admin)}}
	}
	e.emit(ctx, "admin", rec, d, 0, 0)
	return d
}

func parseAdmin(rs rego.ResultSet, d *Decision) error {
	if len(rs) != 1 {
		return errors.New(adminRule + " is undefined")
	}
	allow, ok := rs[0].Bindings["allow"].(ast.Value)
	if !ok {
		return errors.New(adminRule + " is undefined")
	}
	b, ok := allow.(ast.Boolean)
	if !ok {
		return fmt.Errorf("malformed %s: %s, not a boolean", adminRule, ast.ValueName(allow))
	}
	d.Allow = bool(b)
	if r, ok := rs[0].Bindings["reasons"].(ast.Value); ok {
		reasons, err := stringList(r)
		if err != nil {
			return fmt.Errorf("malformed data.mcp.admin.reasons: %w", err)
		}
		slices.Sort(reasons)
		d.Reasons = reasons
	}
	return nil
}

func adminTarget(a AdminRequest) string {
	if a.Name == "" {
		return a.Kind
	}
	return a.Kind + "/" + a.Name
}

// usable reports why the engine cannot evaluate at all.
func (e *Engine) usable() error {
	switch {
	case e == nil:
		return errNotStarted
	case e.stopped.Load():
		return errStopped
	}
	return nil
}

// evaluate runs one prepared query under the engine's timeout. It opens the
// read transaction before it loads the snapshot, so the query and the data
// it reads belong to the same activation (activate runs inside the commit).
func (e *Engine) evaluate(ctx context.Context, pick func(*snapshot) preparedQuery, input ast.Value) (rego.ResultSet, *snapshot, error) {
	if err := e.usable(); err != nil {
		return nil, nil, err
	}
	return e.evaluateWithin(ctx, e.timeout, pick, input)
}

// evaluateWithin runs one prepared query. The timeout starts when the
// evaluation does, after the transaction is open (which may wait for a
// commit) and the snapshot loaded, and it counts the evaluation's own CPU
// time, not its waits (see evalclock.go).
func (e *Engine) evaluateWithin(ctx context.Context, timeout time.Duration, pick func(*snapshot) preparedQuery, input ast.Value) (rs rego.ResultSet, snap *snapshot, err error) {
	// OPA does not promise never to panic; a gateway must not crash, and a
	// panic is one more failure that denies.
	defer func() {
		if r := recover(); r != nil {
			rs, err = nil, fmt.Errorf("evaluation panicked: %v", r)
		}
	}()
	if err := e.usable(); err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("evaluation cancelled: %w", err)
	}
	txn, err := e.store.NewTransaction(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("open policy store: %w", err)
	}
	defer e.store.Abort(ctx, txn)
	snap = e.snap.Load()
	if snap == nil || snap.revision == "" {
		return nil, nil, errNoBundle
	}
	if snap.broken != nil {
		return nil, snap, snap.broken
	}

	// One cancel for both the deadline and the caller's context, without
	// the goroutine rego would otherwise start per evaluation.
	query := pick(snap)
	var timedOut string
	func() {
		clock := startClock(timeout, query.wall)
		// Stopped even if OPA panics: the clock holds the thread.
		defer func() { timedOut = clock.stop() }()
		defer context.AfterFunc(ctx, clock.Cancel)()
		rs, err = query.Eval(ctx,
			rego.EvalParsedInput(input),
			rego.EvalTransaction(txn),
			rego.EvalExternalCancel(clock),
			rego.EvalMetrics(metrics.NoOp()),
			rego.EvalInterQueryBuiltinCache(e.iqCache),
			rego.EvalInterQueryBuiltinValueCache(e.iqvCache),
			rego.EvalGenerateJSON(astValues),
		)
	}()
	if err != nil {
		switch {
		case ctx.Err() != nil:
			err = fmt.Errorf("evaluation cancelled: %w", ctx.Err())
		case timedOut != "":
			err = errors.New(timedOut)
		default:
			err = fmt.Errorf("evaluation failed: %w", err)
		}
	}
	return rs, snap, err
}

// emit sends the record of one evaluation to the decision log.
func (e *Engine) emit(ctx context.Context, query string, in *Input, d Decision, listed, visible int) {
	if e == nil || e.record == nil {
		return
	}
	e.record(ctx, Record{
		DecisionID: d.ID,
		Time:       time.Now().UTC(),
		Query:      query,
		Subject:    in.Token.Sub,
		Issuer:     in.Token.Iss,
		Agent:      in.Agent.ID,
		Backend:    in.Backend.Name,
		Kind:       in.MCP.Kind,
		Method:     in.MCP.Method,
		Tool:       in.MCP.Tool,
		Allow:      d.Allow,
		Reasons:    d.Reasons,
		Status:     d.Status,
		Listed:     listed,
		Visible:    visible,
		Revision:   d.Revision,
		Elapsed:    d.Elapsed,
	})
}

func listedCount(in *Input, kind ListKind) int {
	switch kind {
	case ListTools:
		return len(in.Tools)
	case ListResources:
		return len(in.Resources)
	case ListPrompts:
		return len(in.Prompts)
	}
	return 0
}

// Engine is the gateway's Authorizer.
var _ Authorizer = (*Engine)(nil)
