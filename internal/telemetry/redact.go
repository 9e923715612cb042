package telemetry

import (
	"context"
	"io"
	"log/slog"
	"reflect"

	"github.com/mcpgw/mcpgw/internal/secrets"
)

// Redacted replaces every value the redactor hides (secrets.Placeholder).
const Redacted = secrets.Placeholder

// maxRedactDepth bounds how deep maps and groups are walked.
const maxRedactDepth = 6

// NewRedactingHandler wraps next so that no record it handles shows a
// secret, as a last line of defence behind code that should not log them:
//   - an attribute (or group) whose key names a secret (secrets.IsSecretKey:
//     the configuration's own list) has its value replaced;
//   - in the message and every string value, JWT-shaped text and the
//     credential after "Bearer " are replaced, and every URL loses its
//     userinfo, query values and fragment (secrets.Scrub);
//   - errors, string slices and maps with string keys (http.Header,
//     url.Values, map[string]any) are walked the same way.
//
// Structs are not walked: NewLogger also scrubs JWTs from the output bytes.
func NewRedactingHandler(next slog.Handler) slog.Handler {
	return &redactingHandler{next: next}
}

type redactingHandler struct {
	next slog.Handler
	// sensitive is set under a group whose name is a sensitive key: every
	// attribute in it is hidden.
	sensitive bool
}

func (h *redactingHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *redactingHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, secrets.Scrub(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.redactAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *redactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = h.redactAttr(a)
	}
	return &redactingHandler{next: h.next.WithAttrs(clean), sensitive: h.sensitive}
}

func (h *redactingHandler) WithGroup(name string) slog.Handler {
	return &redactingHandler{next: h.next.WithGroup(name), sensitive: h.sensitive || secrets.IsSecretKey(name)}
}

func (h *redactingHandler) redactAttr(a slog.Attr) slog.Attr {
	if h.sensitive {
		return slog.String(a.Key, Redacted)
	}
	return redactAttr(a, 0)
}

func redactAttr(a slog.Attr, depth int) slog.Attr {
	if secrets.IsSecretKey(a.Key) {
		return slog.String(a.Key, Redacted)
	}
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, secrets.Scrub(v.String()))
	case slog.KindGroup:
		if depth >= maxRedactDepth {
			return slog.String(a.Key, Redacted)
		}
		group := v.Group()
		clean := make([]slog.Attr, len(group))
		for i, g := range group {
			clean[i] = redactAttr(g, depth+1)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(clean...)}
	case slog.KindAny:
		return slog.Attr{Key: a.Key, Value: slog.AnyValue(redactAny(v.Any(), depth))}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// redactAny returns v, or a copy of it with secrets hidden.
func redactAny(v any, depth int) any {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return secrets.Scrub(x)
	case error:
		s := x.Error()
		if r := secrets.Scrub(s); r != s {
			return r
		}
		return x
	case []string:
		return redactStrings(x)
	}
	if depth >= maxRedactDepth {
		return v
	}
	rv := reflect.ValueOf(v)
	switch {
	case rv.Kind() == reflect.Map && rv.Type().Key().Kind() == reflect.String:
		out := make(map[string]any, rv.Len())
		iter := rv.MapRange()
		for iter.Next() {
			k := iter.Key().String()
			if secrets.IsSecretKey(k) {
				out[k] = Redacted
				continue
			}
			if val := iter.Value(); val.CanInterface() {
				out[k] = redactAny(val.Interface(), depth+1)
			}
		}
		return out
	case rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.String:
		out := make([]string, rv.Len())
		for i := range out {
			out[i] = secrets.Scrub(rv.Index(i).String())
		}
		return out
	case rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.Interface:
		out := make([]any, rv.Len())
		for i := range out {
			if e := rv.Index(i); e.CanInterface() {
				out[i] = redactAny(e.Interface(), depth+1)
			}
		}
		return out
	}
	return v
}

func redactStrings(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = secrets.Scrub(s)
	}
	return out
}

// scrubWriter hides JWT-shaped text, bearer credentials and URL secrets in
// every write: a handler writes one whole record per Write, so this catches
// what the attribute walk cannot see (struct fields, Stringers,
// TextMarshalers). A URL in encoded output ends at the escaping backslash
// or quote, so the record stays valid JSON.
type scrubWriter struct{ w io.Writer }

func (s scrubWriter) Write(p []byte) (int, error) {
	if !secrets.MayNeedScrub(p) {
		return s.w.Write(p)
	}
	if _, err := io.WriteString(s.w, secrets.Scrub(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
