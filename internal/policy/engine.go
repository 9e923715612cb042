package policy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/google/uuid"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/keys"
	"github.com/open-policy-agent/opa/v1/logging"
	"github.com/open-policy-agent/opa/v1/plugins"
	bundleplugin "github.com/open-policy-agent/opa/v1/plugins/bundle"
	"github.com/open-policy-agent/opa/v1/plugins/discovery"
	"github.com/open-policy-agent/opa/v1/plugins/logs"
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
	// CallerRecordsDecisions: Decide returns a call decision's record in
	// Decision.Record instead of logging it, and the caller (the gateway,
	// after the relay, with the request's latency and outcome) passes it
	// to Record. Visibility, admin and failed decisions are logged here.
	CallerRecordsDecisions bool
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
	// RecordInputs adds each call decision's input to its Record, masked
	// by the active policy's data.system.log.mask (audit.record_inputs).
	RecordInputs bool

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
	opts Options
	// patterns are the compiled patterns of redact obligations.
	patterns    *patternCache
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
		patterns:    newPatternCache(),
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

// Engine is the gateway's Authorizer.
var _ Authorizer = (*Engine)(nil)
