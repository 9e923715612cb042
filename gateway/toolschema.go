package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"golang.org/x/sync/singleflight"

	"github.com/mcpgw/mcpgw/internal/ijson"
	"github.com/mcpgw/mcpgw/internal/mcp"
	"github.com/mcpgw/mcpgw/internal/upstream"
)

// A tools/call is decided on the called tool's catalog entry (readOnlyHint)
// and its arguments are checked against the tool's input schema. A replica
// that has not relayed the backend's tools/list yet fetches it, with the
// caller's credential (the backend may list per user), so the same call
// gets the same decision on every replica and after a restart.

// catalogRefetch is how long a fetch that did not find a tool is trusted
// before the next call to an unknown tool may fetch again: it bounds how
// often callers can make the gateway list a backend.
const catalogRefetch = 5 * time.Second

// maxCatalogPages bounds a fetched tools/list, so a backend whose cursor
// never ends cannot keep the gateway paging.
const maxCatalogPages = 50

// fetchProtocolVersion is the revision the gateway speaks to list tools
// itself: the oldest one with sessions that every current server accepts.
const fetchProtocolVersion = "2025-06-18"

type catalogFetcher struct {
	group singleflight.Group
	mu    sync.Mutex
	last  map[string]time.Time
	// stale is when each backend last said its tools changed
	// (notifications/tools/list_changed): fetches before it are not recent.
	stale map[string]time.Time
}

func newCatalogFetcher() *catalogFetcher {
	return &catalogFetcher{last: map[string]time.Time{}, stale: map[string]time.Time{}}
}

// recent reports a fetch for key (backend and caller) within
// catalogRefetch that the backend has not declared outdated since.
func (f *catalogFetcher) recent(backend, key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	last, ok := f.last[key]
	return ok && time.Since(last) < catalogRefetch && last.After(f.stale[backend])
}

func (f *catalogFetcher) fetched(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.last) > 10000 {
		f.last = map[string]time.Time{}
	}
	f.last[key] = time.Now()
}

// invalidate makes every earlier fetch of backend's tools outdated.
func (f *catalogFetcher) invalidate(backend string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.stale) > 10000 {
		f.stale = map[string]time.Time{}
	}
	f.stale[backend] = time.Now()
}

// errToolNotListed refuses a call to a tool the backend does not list.
var errToolNotListed = errors.New("tool not listed")

// toolFor returns the catalog entry of the tool a call names, fetching the
// backend's list when this replica has not seen the tool. For a backend
// whose tool_integrity enforces, the list is fetched again before the call
// unless this caller's last fetch is recent (at most once per
// catalogRefetch per backend and caller, and at once after the backend
// announced a change): the backend may have changed the tool since it was
// listed, and the call must be decided on the definition it has now.
func (g *Gateway) toolFor(ctx context.Context, cl *call, name string) (toolEntry, error) {
	backend := cl.route.backend.Name
	key := backend + "\x00" + subjectKey(cl.principal)
	f := g.fetcher
	recent := f.recent(backend, key)
	if e, ok := g.catalog.tool(backend, name); ok && (recent || !cl.route.backend.Enforcing()) {
		return e, nil
	}
	if !recent {
		_, err, _ := f.group.Do(key, func() (any, error) {
			items, err := g.fetchTools(ctx, cl)
			f.fetched(key)
			if err != nil {
				return nil, err
			}
			g.catalog.remember(backend, items)
			// Recorded like a relayed list: a definition first seen here
			// is announced and classified.
			g.classify(ctx, cl, mcp.ListTools, items)
			return nil, nil
		})
		if err != nil {
			return toolEntry{}, err
		}
	}
	if e, ok := g.catalog.tool(backend, name); ok {
		return e, nil
	}
	return toolEntry{}, fmt.Errorf("%w: backend %s does not list a tool named %q", errToolNotListed, backend, name)
}

// fetchTools lists the backend's tools in a session of the gateway's own:
// initialize, notifications/initialized, tools/list page by page, DELETE.
func (g *Gateway) fetchTools(ctx context.Context, cl *call) ([]mcp.ListItem, error) {
	ctx, cancel := context.WithTimeout(ctx, cl.route.backend.Timeout())
	defer cancel()
	s := &fetchSession{g: g, cl: cl}
	if _, err := s.call(ctx, "initialize", fmt.Sprintf(`{"protocolVersion":%q,"capabilities":{},"clientInfo":{"name":"mcpgw","version":"catalog"}}`, fetchProtocolVersion)); err != nil {
		return nil, fmt.Errorf("list tools of backend %s: initialize: %w", cl.route.backend.Name, err)
	}
	defer s.close()
	if err := s.notify(ctx, "notifications/initialized"); err != nil {
		return nil, fmt.Errorf("list tools of backend %s: %w", cl.route.backend.Name, err)
	}
	var items []mcp.ListItem
	cursor := ""
	for page := 0; page < maxCatalogPages; page++ {
		params := "{}"
		if cursor != "" {
			params = fmt.Sprintf(`{"cursor":%s}`, strconv.Quote(cursor))
		}
		result, err := s.call(ctx, "tools/list", params)
		if err != nil {
			return nil, fmt.Errorf("list tools of backend %s: %w", cl.route.backend.Name, err)
		}
		lists, err := mcp.FindLists(result, "tools/list")
		if err != nil {
			return nil, fmt.Errorf("list tools of backend %s: %w", cl.route.backend.Name, err)
		}
		for _, l := range lists {
			if l.Key == mcp.ListTools {
				items = append(items, l.Items...)
			}
		}
		next, _ := result.Get("nextCursor")
		if next.Kind != ijson.String || next.Str == "" {
			return items, nil
		}
		cursor = next.Str
	}
	return items, fmt.Errorf("list tools of backend %s: more than %d pages", cl.route.backend.Name, maxCatalogPages)
}

// fetchSession is the gateway's own short MCP session with a backend.
type fetchSession struct {
	g       *Gateway
	cl      *call
	session string
	version string
}

func (s *fetchSession) header() http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json, text/event-stream")
	if s.version != "" {
		h.Set(mcpgo.HeaderProtocolVersion, s.version)
	}
	if s.session != "" {
		h.Set(mcpgo.HeaderSessionID, s.session)
	}
	return h
}

func (s *fetchSession) send(ctx context.Context, method string, body []byte) (*http.Response, error) {
	r := s.cl.route
	return s.g.client.Send(ctx, r.injector, s.cl.caller(), upstream.Request{
		Method: method, URL: r.forwardURL(""), Header: s.header(), Body: body, Timeout: r.backend.Timeout(),
	})
}

func (s *fetchSession) notify(ctx context.Context, method string) error {
	resp, err := s.send(ctx, http.MethodPost, fmt.Appendf(nil, `{"jsonrpc":"2.0","method":%q}`, method))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s: HTTP %d", method, resp.StatusCode)
	}
	return nil
}

// call sends one request and returns its result, read from a JSON reply or
// from the SSE events of the reply.
func (s *fetchSession) call(ctx context.Context, method, params string) (ijson.Value, error) {
	id := "mcpgw-" + uuid.NewString()
	resp, err := s.send(ctx, http.MethodPost, fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%q,"method":%q,"params":%s}`, id, method, params))
	if err != nil {
		return ijson.Value{}, err
	}
	defer resp.Body.Close()
	if sid := resp.Header.Get(mcpgo.HeaderSessionID); sid != "" {
		s.session = sid
	}
	if resp.StatusCode >= 300 {
		return ijson.Value{}, fmt.Errorf("%s: HTTP %d", method, resp.StatusCode)
	}
	want := strconv.Quote(id)
	pick := func(data []byte) (ijson.Value, bool, error) {
		msgs, _, err := mcp.ParseReply(data)
		if err != nil {
			return ijson.Value{}, false, err
		}
		for i := range msgs {
			if msgs[i].Kind == mcp.KindResponse && msgs[i].IDKey == want {
				result, ok := msgs[i].Result()
				if !ok {
					return ijson.Value{}, true, fmt.Errorf("%s: the backend answered with an error", method)
				}
				if method == "initialize" {
					v, _ := result.Get("protocolVersion")
					s.version = v.Str
				}
				return result, true, nil
			}
		}
		return ijson.Value{}, false, nil
	}
	if mediaType(resp.Header.Get("Content-Type")) == "text/event-stream" {
		reader := mcp.NewEventReader(resp.Body)
		for {
			ev, err := reader.Next()
			if ev.HasData && len(strings.TrimSpace(string(ev.Data))) > 0 {
				if v, found, perr := pick(ev.Data); found || perr != nil {
					return v, perr
				}
			}
			if err != nil {
				return ijson.Value{}, fmt.Errorf("%s: stream ended without the answer: %w", method, err)
			}
		}
	}
	payload, err := readAllLimit(resp.Body, maxJSONResponse)
	if err != nil {
		return ijson.Value{}, fmt.Errorf("%s: %w", method, err)
	}
	v, found, err := pick(payload)
	if err == nil && !found {
		err = fmt.Errorf("%s: the reply does not answer the request", method)
	}
	return v, err
}

func (s *fetchSession) close() {
	if s.session == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if resp, err := s.send(ctx, http.MethodDelete, nil); err == nil {
		resp.Body.Close()
	}
}

// checkArgumentNames refuses an argument whose name is not exactly a
// property of the tool's input schema but folds to one ("PATH" where the
// schema says "path"): a Go server binding arguments to a struct reads it
// as that property while the policy, reading "path", saw nothing. Nested
// objects are checked against nested schemas.
func checkArgumentNames(schema, args ijson.Value, path string) error {
	if args.Kind == ijson.Array {
		items, _ := schema.Get("items")
		for i, it := range args.Items {
			if err := checkArgumentNames(items, it, fmt.Sprintf("%s/%d", path, i)); err != nil {
				return err
			}
		}
		return nil
	}
	if args.Kind != ijson.Object || schema.Kind != ijson.Object {
		return nil
	}
	props, _ := schema.Get("properties")
	if props.Kind != ijson.Object {
		return nil
	}
	for _, m := range args.Members {
		if prop, ok := props.Get(m.Name); ok {
			if err := checkArgumentNames(prop, m.Value, path+"/"+m.Name); err != nil {
				return err
			}
			continue
		}
		folded := ijson.Fold(m.Name)
		for _, p := range props.Members {
			if ijson.Fold(p.Name) == folded {
				return fmt.Errorf("argument %s/%s is not a property of the tool's input schema but a case-insensitive server reads it as %q", path, m.Name, p.Name)
			}
		}
	}
	return nil
}
