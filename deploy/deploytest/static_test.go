package deploytest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
	"go.yaml.in/yaml/v3"

	"github.com/ocvr/realtime/pkg/clustertest"
)

func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := clustertest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// tool finds a Prometheus binary (prometheus, promtool). Outside CI a
// missing binary skips the test; in CI (CI=true) it fails it, since
// scripts/ci/install-prometheus.sh must have installed it.
func tool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := "/usr/bin/" + name; fileExists(p) {
		return p
	}
	msg := fmt.Sprintf("%s not found: install Debian's prometheus package with `make prometheus` (scripts/ci/install-prometheus.sh)", name)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " — required in CI")
	}
	t.Skip(msg)
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// staticVars are the values the static checks give the dashboards' own
// variables.
var staticVars = map[string]string{"namespace": "ocvr", "pod": "(gateway-1|gateway-2)", "datasource": "prometheus"}

// TestDashboardsAreValidGrafana: every dashboard decodes strictly with the
// Grafana foundation SDK (unknown fields, wrong types and missing required
// fields are errors) and validates; it has a schema version, unique panel
// ids, a uid, a Prometheus datasource variable that every panel and query
// variable uses, and gridPos on every panel.
func TestDashboardsAreValidGrafana(t *testing.T) {
	registerGrafanaVariants()
	root := repoRoot(t)
	boards, err := Dashboards(root)
	if err != nil {
		t.Fatal(err)
	}
	uids := map[string]string{}
	for _, d := range boards {
		t.Run(filepath.Base(d.File), func(t *testing.T) {
			var sdk dashboard.Dashboard
			if err := sdkErr(sdk.UnmarshalJSONStrict(d.Raw)); err != nil {
				t.Fatalf("strict decoding: %v", err)
			}
			if err := sdkErr(sdk.Validate()); err != nil {
				t.Fatalf("validation: %v", err)
			}
			if sdk.SchemaVersion < 36 {
				t.Errorf("schemaVersion %d: want a current one (>= 36, datasource refs as objects)", sdk.SchemaVersion)
			}
			if sdk.Uid == nil || *sdk.Uid == "" || len(*sdk.Uid) > 40 {
				t.Errorf("uid %v: want 1-40 characters", sdk.Uid)
			} else if other, dup := uids[*sdk.Uid]; dup {
				t.Errorf("uid %s also used by %s", *sdk.Uid, other)
			} else {
				uids[*sdk.Uid] = d.File
			}
			if sdk.Title == nil || *sdk.Title == "" {
				t.Error("no title")
			}

			var dsVar bool
			for _, v := range d.Variables() {
				if v["type"] == "datasource" && v["name"] == "datasource" && v["query"] == "prometheus" {
					dsVar = true
				}
				if v["type"] == "query" && !usesDatasourceVar(v["datasource"]) {
					t.Errorf("variable %v does not use ${datasource}: %v", v["name"], v["datasource"])
				}
			}
			if !dsVar {
				t.Error(`no datasource variable {"type":"datasource","name":"datasource","query":"prometheus"}`)
			}

			ids := map[float64]string{}
			panels := d.Panels()
			if len(panels) == 0 {
				t.Fatal("no panels")
			}
			for _, p := range panels {
				id, ok := p["id"].(float64)
				if !ok {
					t.Errorf("panel %q has no numeric id", p["title"])
					continue
				}
				if other, dup := ids[id]; dup {
					t.Errorf("panel id %v used by %q and %q", id, other, p["title"])
				}
				ids[id] = fmt.Sprint(p["title"])
				if _, ok := p["gridPos"].(map[string]any); !ok {
					t.Errorf("panel %v %q has no gridPos", id, p["title"])
				}
				if p["type"] == "row" {
					continue
				}
				if !panelTypes[fmt.Sprint(p["type"])] {
					t.Errorf("panel %v %q: type %v is not among the strictly checked ones %v: register its variant in registerGrafanaVariants", id, p["title"], p["type"], panelTypes)
				}
				if !usesDatasourceVar(p["datasource"]) {
					t.Errorf("panel %v %q does not use ${datasource}: %v", id, p["title"], p["datasource"])
				}
				targets, _ := p["targets"].([]any)
				if len(targets) == 0 {
					t.Errorf("panel %v %q has no query", id, p["title"])
				}
				refs := map[string]bool{}
				for _, tg := range targets {
					tm, _ := tg.(map[string]any)
					ref, _ := tm["refId"].(string)
					if ref == "" || refs[ref] {
						t.Errorf("panel %v %q: missing or repeated refId %q", id, p["title"], ref)
					}
					refs[ref] = true
					if ds, ok := tm["datasource"]; ok && !usesDatasourceVar(ds) {
						t.Errorf("panel %v %q target %s does not use ${datasource}", id, p["title"], ref)
					}
				}
			}
		})
	}
}

// panelTypes are the panel types whose options and field config the SDK
// decodes strictly once registered (the SDK's plugins.RegisterDefaultPlugins
// registers every one, at the price of compiling some forty packages).
var panelTypes = map[string]bool{"stat": true, "timeseries": true}

func registerGrafanaVariants() {
	rt := cog.NewRuntime()
	rt.RegisterPanelcfgVariant(stat.VariantConfig())
	rt.RegisterPanelcfgVariant(timeseries.VariantConfig())
	rt.RegisterDataqueryVariant(prometheus.VariantConfig())
}

// sdkErr maps the SDK's "no error" (an empty cog.BuildErrors in a non-nil
// error) to nil.
func sdkErr(err error) error {
	var be cog.BuildErrors
	if errors.As(err, &be) && len(be) == 0 {
		return nil
	}
	return err
}

func usesDatasourceVar(ds any) bool {
	m, ok := ds.(map[string]any)
	if !ok {
		return false
	}
	uid, _ := m["uid"].(string)
	return m["type"] == "prometheus" && (uid == "${datasource}" || uid == "$datasource")
}

// allExprs collects every PromQL expression of the dashboards, rules and
// adapter rule, with the dashboards' variables set to vars.
func allExprs(t testing.TB, root string, vars map[string]string, adapterMatchers string) []Expr {
	t.Helper()
	boards, err := Dashboards(root)
	if err != nil {
		t.Fatal(err)
	}
	var out []Expr
	for _, d := range boards {
		es, err := d.DashboardExprs(vars)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, es...)
	}
	for _, rt := range RulesAndTests {
		rf, err := LoadRules(root, rt[0])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rf.RuleExprs()...)
	}
	ac, _, err := Adapter(root)
	if err != nil {
		t.Fatal(err)
	}
	es, err := ac.AdapterExprs(adapterMatchers, "pod")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, es...)
}

// TestExpressionsParse: every expression parses with Prometheus' own PromQL
// parser and names its metrics (no selector without a metric name).
func TestExpressionsParse(t *testing.T) {
	exprs := allExprs(t, repoRoot(t), staticVars, `namespace="ocvr",pod=~"gateway-1|gateway-2"`)
	if len(exprs) < 50 {
		t.Fatalf("only %d expressions found", len(exprs))
	}
	for _, e := range exprs {
		names, err := MetricNames(e.PromQL)
		if err != nil {
			t.Errorf("%s: %v\n  %s", e.Source, err, e.PromQL)
			continue
		}
		if len(names) == 0 && !strings.HasPrefix(e.PromQL, "absent(") {
			t.Errorf("%s selects no metric: %s", e.Source, e.PromQL)
		}
	}
}

// TestRulesMetadata: every alert of every rules file has a severity, a
// summary, a description and a runbook_url to its section of deploy/README.md
// (RunbookBase + its name); every rule name is unique; recording rules follow
// level:metric:operations.
func TestRulesMetadata(t *testing.T) {
	root := repoRoot(t)
	var files []RuleFile
	for _, rt := range RulesAndTests {
		rf, err := LoadRules(root, rt[0])
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, rf)
	}
	readme, err := os.ReadFile(filepath.Join(root, "deploy", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := markdownAnchors(string(readme))
	seen := map[string]bool{}
	recordName := regexp.MustCompile(`^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$`)
	for _, g := range allGroups(files) {
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			if seen[name] {
				t.Errorf("rule %s defined twice", name)
			}
			seen[name] = true
			if r.Record != "" {
				if !recordName.MatchString(r.Record) {
					t.Errorf("recording rule %s: want level:metric:operations", r.Record)
				}
				continue
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, s)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[a] == "" {
					t.Errorf("alert %s: no %s annotation", r.Alert, a)
				}
			}
			want := RunbookBase + strings.ToLower(r.Alert)
			if r.Annotations["runbook_url"] != want {
				t.Errorf("alert %s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
			}
			if !anchors[strings.ToLower(r.Alert)] {
				t.Errorf("alert %s has no section (### %s) in deploy/README.md", r.Alert, r.Alert)
			}
		}
	}
}

// allGroups lists the groups of several rules files.
func allGroups(files []RuleFile) []RuleGroup {
	var out []RuleGroup
	for _, f := range files {
		out = append(out, f.Groups...)
	}
	return out
}

// markdownAnchors returns the GitHub anchors of a document's headings.
func markdownAnchors(doc string) map[string]bool {
	out := map[string]bool{}
	strip := regexp.MustCompile("[^a-z0-9 _-]")
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		h = strip.ReplaceAllString(h, "")
		out[strings.ReplaceAll(h, " ", "-")] = true
	}
	return out
}

// ruleTests is the part of a promtool test file this check reads.
type ruleTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name           string `yaml:"name"`
		AlertRuleTests []struct {
			EvalTime  string `yaml:"eval_time"`
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestEveryAlertTestedBothWays: the promtool unit tests make every alert fire
// at least once and assert it silent at least once, so an alert that can
// never fire, or always fires, fails `promtool test rules`.
func TestEveryAlertTestedBothWays(t *testing.T) {
	root := repoRoot(t)
	for _, pair := range RulesAndTests {
		t.Run(filepath.Base(pair[0]), func(t *testing.T) { checkAlertsTestedBothWays(t, root, pair[0], pair[1]) })
	}
}

func checkAlertsTestedBothWays(t *testing.T, root, rulesPath, testPath string) {
	rf, err := LoadRules(root, rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, testPath))
	if err != nil {
		t.Fatal(err)
	}
	var rt ruleTests
	if err := yaml.Unmarshal(b, &rt); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rt.RuleFiles, []string{filepath.Base(rulesPath)}) {
		t.Errorf("the unit tests load %v, want [%s]", rt.RuleFiles, filepath.Base(rulesPath))
	}
	fires, silent := map[string]int{}, map[string]int{}
	for _, tc := range rt.Tests {
		for _, a := range tc.AlertRuleTests {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname]++
			} else {
				silent[a.Alertname]++
			}
		}
	}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if fires[r.Alert] == 0 {
				t.Errorf("alert %s: no unit test makes it fire", r.Alert)
			}
			if silent[r.Alert] == 0 {
				t.Errorf("alert %s: no unit test shows it silent", r.Alert)
			}
			delete(fires, r.Alert)
			delete(silent, r.Alert)
		}
	}
	for a := range fires {
		t.Errorf("unit tests name alert %s, which the rules do not define", a)
	}
	for a := range silent {
		t.Errorf("unit tests name alert %s, which the rules do not define", a)
	}
}

// TestPromtool: promtool check rules, promtool test rules, and promtool check
// config on the example scrape configuration.
func TestPromtool(t *testing.T) {
	promtool := tool(t, "promtool")
	root := repoRoot(t)
	for _, args := range [][]string{
		{"check", "rules", RulesPath, KubernetesRulesPath},
		{"test", "rules", RulesTestPath, KubernetesRulesTestPath},
		{"check", "config", "deploy/prometheus/prometheus.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		} else {
			t.Logf("promtool %s: ok", strings.Join(args, " "))
		}
	}
}

// TestAdapterRule: config.yaml (the adapter's --config) and values.yaml (the
// adapter chart's values) hold the same rule, which exposes
// ocvr_gateway_connections per pod, namespaced, under its own name.
func TestAdapterRule(t *testing.T) {
	c, v, err := Adapter(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	cj, _ := json.Marshal(c.Rules)
	vj, _ := json.Marshal(v.Rules.Custom)
	if string(cj) != string(vj) {
		t.Errorf("config.yaml and values.yaml differ:\n%s\n%s", cj, vj)
	}
	if len(c.Rules) != 1 {
		t.Fatalf("%d rules, want 1", len(c.Rules))
	}
	r := c.Rules[0]
	if r.Name.As != "ocvr_gateway_connections" || r.Name.Matches != "^ocvr_gateway_connections$" {
		t.Errorf("name %+v: the HPA asks for ocvr_gateway_connections", r.Name)
	}
	for label, res := range map[string]string{"namespace": "namespace", "pod": "pod"} {
		if r.Resources.Overrides[label].Resource != res {
			t.Errorf("resources.overrides.%s = %+v, want resource %s", label, r.Resources.Overrides[label], res)
		}
	}
	for _, s := range []string{"<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>"} {
		if !strings.Contains(r.MetricsQuery, s) {
			t.Errorf("metricsQuery %q lacks %s", r.MetricsQuery, s)
		}
	}
}

// TestKubernetesScrapeConfig: the plain-Prometheus Kubernetes example keeps
// only the chart's admin ports and sets the namespace, pod and job labels.
// (Debian's Prometheus is built without Kubernetes discovery, so promtool
// cannot load this file; its structure is checked here.)
func TestKubernetesScrapeConfig(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "prometheus", "prometheus-kubernetes.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName             string           `yaml:"job_name"`
			KubernetesSDConfigs []map[string]any `yaml:"kubernetes_sd_configs"`
			RelabelConfigs      []struct {
				SourceLabels []string `yaml:"source_labels"`
				TargetLabel  string   `yaml:"target_label"`
				Regex        string   `yaml:"regex"`
				Action       string   `yaml:"action"`
			} `yaml:"relabel_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.ScrapeConfigs) != 1 {
		t.Fatalf("%d scrape configs, want 1", len(cfg.ScrapeConfigs))
	}
	sc := cfg.ScrapeConfigs[0]
	if len(sc.KubernetesSDConfigs) != 1 || sc.KubernetesSDConfigs[0]["role"] != "pod" {
		t.Errorf("kubernetes_sd_configs %v, want role pod", sc.KubernetesSDConfigs)
	}
	targets := map[string]string{}
	keeps := map[string]string{}
	for _, r := range sc.RelabelConfigs {
		if r.TargetLabel != "" && len(r.SourceLabels) == 1 {
			targets[r.TargetLabel] = r.SourceLabels[0]
		}
		if r.Action == "keep" && len(r.SourceLabels) == 1 {
			keeps[r.SourceLabels[0]] = r.Regex
		}
	}
	for label, src := range map[string]string{
		"namespace": "__meta_kubernetes_namespace",
		"pod":       "__meta_kubernetes_pod_name",
		"job":       "__meta_kubernetes_pod_label_app_kubernetes_io_component",
	} {
		if targets[label] != src {
			t.Errorf("label %s comes from %q, want %s", label, targets[label], src)
		}
	}
	for src, re := range map[string]string{
		"__meta_kubernetes_pod_container_port_name":             "admin",
		"__meta_kubernetes_pod_label_app_kubernetes_io_part_of": "ocvr-realtime",
	} {
		if keeps[src] != re {
			t.Errorf("keep on %s = %q, want %q", src, keeps[src], re)
		}
	}
}
