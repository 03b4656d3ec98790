// Package deploytest checks the operations artifacts in deploy/ — the
// Grafana dashboards, the Prometheus rules and scrape configuration, and the
// prometheus-adapter rule — statically (Grafana's schema, the PromQL parser,
// promtool) and against a running cluster scraped by a real Prometheus. It is
// a module of its own so that the Grafana SDK and the Prometheus parser stay
// out of the services' dependencies.
//
// This file loads the artifacts and extracts every PromQL expression they
// hold, with Grafana's template variables substituted.
package deploytest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// Expr is one PromQL expression found in an artifact.
type Expr struct {
	Source string // where it was found, for messages
	Kind   string // panel, variable, recording, alert, adapter
	Raw    string // as written in the artifact
	PromQL string // ready to evaluate: template variables substituted
	// WantData: a panel query that must return series against a cluster
	// that has seen the scripted traffic.
	WantData bool
}

// Dashboard is one Grafana dashboard file.
type Dashboard struct {
	File string // path relative to the repository root
	Raw  []byte
	JSON map[string]any
}

// Dashboards loads deploy/grafana/*.json.
func Dashboards(root string) ([]Dashboard, error) {
	files, err := filepath.Glob(filepath.Join(root, "deploy", "grafana", "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []Dashboard
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		rel, _ := filepath.Rel(root, f)
		out = append(out, Dashboard{File: rel, Raw: raw, JSON: m})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no dashboards in %s", filepath.Join(root, "deploy", "grafana"))
	}
	return out, nil
}

// Panels returns every panel of d, those nested in collapsed rows included.
func (d Dashboard) Panels() []map[string]any {
	var out []map[string]any
	var walk func(v any)
	walk = func(v any) {
		list, _ := v.([]any)
		for _, p := range list {
			pm, ok := p.(map[string]any)
			if !ok {
				continue
			}
			out = append(out, pm)
			walk(pm["panels"])
		}
	}
	walk(d.JSON["panels"])
	return out
}

// Variables returns the templating variables of d.
func (d Dashboard) Variables() []map[string]any {
	t, _ := d.JSON["templating"].(map[string]any)
	list, _ := t["list"].([]any)
	var out []map[string]any
	for _, v := range list {
		if vm, ok := v.(map[string]any); ok {
			out = append(out, vm)
		}
	}
	return out
}

// Grafana's built-in interval variables, and what a test substitutes for
// them: whole minutes, so that a 1 s scrape interval has plenty of samples.
var builtinVars = map[string]string{
	"__rate_interval": "1m",
	"__interval":      "30s",
	"__interval_ms":   "30000",
	"__range":         "5m",
	"__range_s":       "300",
	"__range_ms":      "300000",
}

var varRef = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)(?::\w+)?\]\]`)

// Substitute replaces Grafana template variables in expr: the built-in
// interval variables and those of vars (a multi-value variable is given as
// the regular expression Grafana would format it to). An unknown variable is
// an error, so a dashboard cannot grow a variable this test does not know.
func Substitute(expr string, vars map[string]string) (string, error) {
	var missing []string
	out := varRef.ReplaceAllStringFunc(expr, func(m string) string {
		sub := varRef.FindStringSubmatch(m)
		name := sub[1] + sub[2] + sub[3]
		if v, ok := builtinVars[name]; ok {
			return v
		}
		if v, ok := vars[name]; ok {
			return v
		}
		missing = append(missing, name)
		return m
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("unknown template variable(s) %v in %q", missing, expr)
	}
	return out, nil
}

var labelValues = regexp.MustCompile(`^\s*label_values\(\s*(.+)\s*,\s*(\w+)\s*\)\s*$`)

// DashboardExprs returns the PromQL of every panel target and every query
// variable of d, with vars substituted.
func (d Dashboard) DashboardExprs(vars map[string]string) ([]Expr, error) {
	var out []Expr
	for _, p := range d.Panels() {
		targets, _ := p["targets"].([]any)
		for _, t := range targets {
			tm, _ := t.(map[string]any)
			raw, _ := tm["expr"].(string)
			if raw == "" {
				continue
			}
			q, err := Substitute(raw, vars)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", d.File, err)
			}
			out = append(out, Expr{
				Source:   fmt.Sprintf("%s panel %v %q target %v", d.File, p["id"], p["title"], tm["refId"]),
				Kind:     "panel",
				Raw:      raw,
				PromQL:   q,
				WantData: true,
			})
		}
	}
	for _, v := range d.Variables() {
		if v["type"] != "query" {
			continue
		}
		var raw string
		switch q := v["query"].(type) {
		case string:
			raw = q
		case map[string]any:
			raw, _ = q["query"].(string)
		}
		m := labelValues.FindStringSubmatch(raw)
		if m == nil {
			return nil, fmt.Errorf("%s: variable %v: query %q is not label_values(<selector>, <label>)", d.File, v["name"], raw)
		}
		// label_values(sel, label) lists the label's values over the series
		// of sel: evaluating sel checks it, and the label must be on them.
		q, err := Substitute(m[1], vars)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.File, err)
		}
		out = append(out, Expr{
			Source:   fmt.Sprintf("%s variable %v", d.File, v["name"]),
			Kind:     "variable",
			Raw:      raw,
			PromQL:   fmt.Sprintf("count by (%s) (%s)", m[2], q),
			WantData: true,
		})
	}
	return out, nil
}

// RuleFile is a Prometheus rules file.
type RuleFile struct {
	Path   string      `yaml:"-"` // relative to the repository root
	Groups []RuleGroup `yaml:"groups"`
}

// RuleGroup is one group of a rules file.
type RuleGroup struct {
	Name     string `yaml:"name"`
	Interval string `yaml:"interval"`
	Rules    []Rule `yaml:"rules"`
}

// Rule is a recording or alerting rule.
type Rule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	KeepFiring  string            `yaml:"keep_firing_for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// RulesPath is the rules file, relative to the repository root.
const RulesPath = "deploy/prometheus/ocvr-realtime.rules.yml"

// RulesTestPath is its promtool unit tests.
const RulesTestPath = "deploy/prometheus/ocvr-realtime.rules.test.yml"

// RunbookBase is what every alert's runbook_url starts with in the rules
// files; the alert's name in lower case follows (its section of
// deploy/README.md). The chart's monitoring.prometheusRule.runbookBaseURL
// replaces it.
const RunbookBase = "https://ocvr.example/realtime/deploy/README.md#"

// ScopeMatcher is the label matcher every selector of the rules carries; the
// chart replaces it with namespace="<release namespace>".
const ScopeMatcher = `namespace!=""`

// KubernetesRulesPath holds the alerts on Kubernetes objects
// (kube-state-metrics, cAdvisor), which the services do not export: a
// Prometheus scraping only the services cannot check their metric names.
const KubernetesRulesPath = "deploy/prometheus/ocvr-realtime-kubernetes.rules.yml"

// KubernetesRulesTestPath is its promtool unit tests.
const KubernetesRulesTestPath = "deploy/prometheus/ocvr-realtime-kubernetes.rules.test.yml"

// RulesAndTests pairs each rules file with its promtool unit tests.
var RulesAndTests = [][2]string{{RulesPath, RulesTestPath}, {KubernetesRulesPath, KubernetesRulesTestPath}}

// Rules loads the rules file of the services' metrics (RulesPath).
func Rules(root string) (RuleFile, error) { return LoadRules(root, RulesPath) }

// LoadRules loads a rules file, strictly.
func LoadRules(root, path string) (RuleFile, error) {
	rf := RuleFile{Path: path}
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		return rf, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		return rf, fmt.Errorf("%s: %w", path, err)
	}
	return rf, nil
}

// RuleExprs returns the expression of every rule.
func (rf RuleFile) RuleExprs() []Expr {
	var out []Expr
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			e := Expr{Raw: r.Expr, PromQL: r.Expr}
			if r.Alert != "" {
				e.Kind, e.Source = "alert", fmt.Sprintf("%s alert %s", rf.Path, r.Alert)
			} else {
				e.Kind, e.Source = "recording", fmt.Sprintf("%s record %s", rf.Path, r.Record)
			}
			out = append(out, e)
		}
	}
	return out
}

// Recorded lists the series names the recording rules define.
func (rf RuleFile) Recorded() map[string]bool {
	out := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				out[r.Record] = true
			}
		}
	}
	return out
}

// AdapterRule is one prometheus-adapter discovery rule.
type AdapterRule struct {
	SeriesQuery string `yaml:"seriesQuery" json:"seriesQuery"`
	Resources   struct {
		Overrides map[string]struct {
			Group    string `yaml:"group" json:"group,omitempty"`
			Resource string `yaml:"resource" json:"resource"`
		} `yaml:"overrides" json:"overrides"`
		Template string `yaml:"template" json:"template,omitempty"`
	} `yaml:"resources" json:"resources"`
	Name struct {
		Matches string `yaml:"matches" json:"matches"`
		As      string `yaml:"as" json:"as"`
	} `yaml:"name" json:"name"`
	MetricsQuery string `yaml:"metricsQuery" json:"metricsQuery"`
}

// AdapterConfig is the adapter's --config file (deploy/prometheus-adapter/config.yaml).
type AdapterConfig struct {
	Rules []AdapterRule `yaml:"rules"`
}

// AdapterValues is the prometheus-adapter chart's values (values.yaml).
type AdapterValues struct {
	Rules struct {
		Default *bool         `yaml:"default"` // the chart's built-in rules (chart default: on)
		Custom  []AdapterRule `yaml:"custom"`
	} `yaml:"rules"`
}

func decodeStrict(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Adapter loads both prometheus-adapter files.
func Adapter(root string) (AdapterConfig, AdapterValues, error) {
	var c AdapterConfig
	var v AdapterValues
	dir := filepath.Join(root, "deploy", "prometheus-adapter")
	if err := decodeStrict(filepath.Join(dir, "config.yaml"), &c); err != nil {
		return c, v, err
	}
	err := decodeStrict(filepath.Join(dir, "values.yaml"), &v)
	return c, v, err
}

// AdapterQuery renders a metricsQuery as the adapter does for one request:
// <<.Series>> is the series name, <<.LabelMatchers>> the namespace and pod
// selection, <<.GroupBy>> the resource label.
func AdapterQuery(metricsQuery, series, labelMatchers, groupBy string) (string, error) {
	t, err := template.New("q").Delims("<<", ">>").Option("missingkey=error").Parse(metricsQuery)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	err = t.Execute(&b, struct{ Series, LabelMatchers, GroupBy string }{series, labelMatchers, groupBy})
	return b.String(), err
}

// AdapterExprs returns the PromQL of every adapter rule: its series query,
// and its metrics query rendered for the given series selection.
func (c AdapterConfig) AdapterExprs(labelMatchers, groupBy string) ([]Expr, error) {
	var out []Expr
	for i, r := range c.Rules {
		src := fmt.Sprintf("deploy/prometheus-adapter/config.yaml rule %d", i)
		out = append(out, Expr{Source: src + " seriesQuery", Kind: "adapter", Raw: r.SeriesQuery, PromQL: r.SeriesQuery, WantData: true})
		series := strings.TrimSuffix(strings.TrimPrefix(r.Name.Matches, "^"), "$")
		q, err := AdapterQuery(r.MetricsQuery, series, labelMatchers, groupBy)
		if err != nil {
			return nil, fmt.Errorf("%s metricsQuery: %w", src, err)
		}
		out = append(out, Expr{Source: src + " metricsQuery", Kind: "adapter", Raw: r.MetricsQuery, PromQL: q, WantData: true})
	}
	return out, nil
}

var promql = parser.NewParser(parser.Options{})

// Parse parses a PromQL expression.
func Parse(expr string) (parser.Expr, error) { return promql.ParseExpr(expr) }

// MetricNames returns the metric names an expression selects.
func MetricNames(expr string) ([]string, error) {
	e, err := Parse(expr)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var errs []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		if name == "" {
			for _, m := range vs.LabelMatchers {
				if m.Name == "__name__" {
					if m.Type.String() != "=" {
						errs = append(errs, fmt.Sprintf("selector %s matches metric names by pattern", vs))
					}
					name = m.Value
				}
			}
		}
		if name == "" {
			errs = append(errs, fmt.Sprintf("selector %s has no metric name", vs))
			return nil
		}
		seen[name] = true
		return nil
	})
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// Families parses a /metrics page (text format) into its metric families
// and their types.
func Families(page string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(page, "\n") {
		f := strings.Fields(line)
		if len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			out[f[2]] = f[3]
		}
	}
	return out
}

// Exported parses a /metrics page into the sample names it holds: every
// family, with _bucket, _sum and _count for histograms and _sum and _count
// for summaries.
func Exported(page string) map[string]string {
	out := map[string]string{}
	for name, typ := range Families(page) {
		out[name] = typ
		switch typ {
		case "histogram", "gaugehistogram":
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				out[name+s] = typ
			}
		case "summary":
			for _, s := range []string{"_sum", "_count"} {
				out[name+s] = typ
			}
		}
	}
	return out
}
