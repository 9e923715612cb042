// Package monitoring holds the Grafana dashboard and Prometheus alert rules
// shipped in this folder, and the tests that keep them honest: every metric
// they query must exist on the /metrics of a running gateway. The package
// has no code besides its tests.
package monitoring

import (
	"fmt"
	"slices"
	"testing"
)

// PromQL words that are never metric names. Aggregations may be followed by
// a grouping clause before their parenthesis, so they are listed; functions
// are recognised by the parenthesis that follows them.
var (
	aggregations = set("sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
		"bottomk", "topk", "quantile", "limitk", "limit_ratio")
	// groupings take a parenthesised list of label names.
	groupings = set("by", "without", "on", "ignoring", "group_left", "group_right")
	operators = set("and", "or", "unless", "bool", "offset", "atan2", "inf", "nan")
)

func set(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

// metricNames returns the metric names a PromQL expression selects, in
// order of appearance. It is a lexer, not a parser: strings, label matchers
// ({...}), ranges ([...]) and grouping label lists are skipped, and an
// identifier is a metric name unless it is a keyword or calls a function.
// An unbalanced bracket or quote is an error rather than a guess.
func metricNames(expr string) ([]string, error) {
	var names []string
	depth := 0 // open parentheses: they contain expressions, so are walked into
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '(':
			depth++
			i++
		case c == ')':
			if depth--; depth < 0 {
				return nil, fmt.Errorf("unbalanced ')' at %d in %q", i, expr)
			}
			i++
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(expr, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '{' || c == '[':
			end, err := skipGroup(expr, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdentChar(expr[j]) {
				j++
			}
			word := expr[i:j]
			k := j
			for k < len(expr) && (expr[k] == ' ' || expr[k] == '\t' || expr[k] == '\n') {
				k++
			}
			calls := k < len(expr) && expr[k] == '('
			switch {
			case groupings[word]:
				if calls {
					end, err := skipGroup(expr, k)
					if err != nil {
						return nil, err
					}
					j = end
				}
			case calls, aggregations[word], operators[word]:
			default:
				names = append(names, word)
			}
			i = j
		case c >= '0' && c <= '9' || c == '.':
			// Numbers and durations (0.05, 1e3, 5m): never names.
			for i < len(expr) && (isIdentChar(expr[i]) || expr[i] == '.') {
				i++
			}
		case c == '}' || c == ']':
			return nil, fmt.Errorf("unbalanced %q at %d in %q", c, i, expr)
		default:
			i++
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("%d unclosed '(' in %q", depth, expr)
	}
	return names, nil
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':'
}

func isIdentChar(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// skipString returns the index after the string literal starting at i.
func skipString(s string, i int) (int, error) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated string at %d in %q", i, s)
}

// skipGroup returns the index after the bracket group opening at i,
// skipping strings and nested groups inside it.
func skipGroup(s string, i int) (int, error) {
	closer := map[byte]byte{'{': '}', '[': ']', '(': ')'}
	stack := []byte{closer[s[i]]}
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(s, j)
			if err != nil {
				return 0, err
			}
			j = end - 1
		case closer[c] != 0:
			stack = append(stack, closer[c])
		case c == '}' || c == ']' || c == ')':
			if c != stack[len(stack)-1] {
				return 0, fmt.Errorf("unbalanced %q at %d in %q", c, j, s)
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return j + 1, nil
			}
		}
	}
	return 0, fmt.Errorf("unclosed %q at %d in %q", s[i], i, s)
}

func TestMetricNames(t *testing.T) {
	for _, c := range []struct {
		expr string
		want []string
		err  bool
	}{
		{expr: `up`, want: []string{"up"}},
		{expr: `rate(http_requests_total{job=~"$job", path!="/x{y}"}[$__rate_interval])`, want: []string{"http_requests_total"}},
		{expr: `sum by (backend, le) (rate(a_bucket[5m])) / sum without (instance) (rate(b_total[5m])) > 0.05`, want: []string{"a_bucket", "b_total"}},
		{expr: `histogram_quantile(0.95, sum by (le) (rate(x_bucket{l="by (z)"}[1m] offset 5m)))`, want: []string{"x_bucket"}},
		{expr: "a unless on (namespace, job) b\nor vector(0)", want: []string{"a", "b"}},
		{expr: `count(count by (revision) (info)) > 1 and time() - ts > 1e3`, want: []string{"info", "ts"}},
		{expr: `a * on (i) group_left (rev) b`, want: []string{"a", "b"}},
		{expr: `recorded:rule:rate5m`, want: []string{"recorded:rule:rate5m"}},
		{expr: `sum(rate(a[5m])`, err: true},
		{expr: `a{l="x}`, err: true},
	} {
		got, err := metricNames(c.expr)
		if (err != nil) != c.err {
			t.Errorf("metricNames(%q) error %v, want error %v", c.expr, err, c.err)
			continue
		}
		if !c.err && !slices.Equal(got, c.want) {
			t.Errorf("metricNames(%q) = %q, want %q", c.expr, got, c.want)
		}
	}
}
