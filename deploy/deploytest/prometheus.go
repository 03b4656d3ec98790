package deploytest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"
)

// ScrapeConfigPath is the example scrape configuration.
const ScrapeConfigPath = "deploy/prometheus/prometheus.yml"

// Target is one process to scrape.
type Target struct {
	Pod  string // the pod label
	Addr string // host:port of its admin listener
}

// GenerateConfig derives a Prometheus configuration from the example at
// ScrapeConfigPath: the static targets of each job are replaced by targets
// (keyed by job name), each keeping the example's other target labels
// (namespace) with pod set to the target's pod; the intervals become
// interval; rule files become absolute paths. Every job of the example must
// get targets, and every static config of the example must label namespace
// and pod, which the rules, dashboards and adapter rule rely on.
func GenerateConfig(root string, targets map[string][]Target, interval time.Duration) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(root, ScrapeConfigPath))
	if err != nil {
		return nil, err
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", ScrapeConfigPath, err)
	}
	global, _ := cfg["global"].(map[string]any)
	if global == nil {
		global = map[string]any{}
		cfg["global"] = global
	}
	global["scrape_interval"] = interval.String()
	global["scrape_timeout"] = interval.String()
	global["evaluation_interval"] = interval.String()

	dir := filepath.Join(root, filepath.Dir(ScrapeConfigPath))
	files, _ := cfg["rule_files"].([]any)
	if len(files) == 0 {
		return nil, fmt.Errorf("%s loads no rule files", ScrapeConfigPath)
	}
	for i, f := range files {
		p := fmt.Sprint(f)
		if !filepath.IsAbs(p) {
			files[i] = filepath.Join(dir, p)
		}
	}

	jobs, _ := cfg["scrape_configs"].([]any)
	seen := map[string]bool{}
	for _, j := range jobs {
		job, _ := j.(map[string]any)
		name := fmt.Sprint(job["job_name"])
		ts, ok := targets[name]
		if !ok {
			return nil, fmt.Errorf("%s: no targets given for job %q", ScrapeConfigPath, name)
		}
		seen[name] = true
		statics, _ := job["static_configs"].([]any)
		if len(statics) == 0 {
			return nil, fmt.Errorf("%s: job %q has no static_configs", ScrapeConfigPath, name)
		}
		var base map[string]any
		for _, s := range statics {
			sm, _ := s.(map[string]any)
			labels, _ := sm["labels"].(map[string]any)
			if labels["namespace"] == nil || labels["pod"] == nil {
				return nil, fmt.Errorf("%s: a static config of job %q does not label namespace and pod", ScrapeConfigPath, name)
			}
			if base == nil {
				base = labels
			}
		}
		var out []any
		for _, t := range ts {
			labels := map[string]any{}
			for k, v := range base {
				labels[k] = v
			}
			labels["pod"] = t.Pod
			out = append(out, map[string]any{"targets": []any{t.Addr}, "labels": labels})
		}
		job["static_configs"] = out
	}
	for name := range targets {
		if !seen[name] {
			return nil, fmt.Errorf("%s has no job %q", ScrapeConfigPath, name)
		}
	}
	return yaml.Marshal(cfg)
}

// Prometheus is a running Prometheus server.
type Prometheus struct {
	URL  string // http://127.0.0.1:port
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// StartPrometheus runs bin with config (written into dir) on a free
// loopback port, with its storage in dir, and waits until it is ready.
//
// A port found free may be taken by another process (parallel tests) before
// Prometheus binds it: Prometheus then exits, and another port is tried. No
// HTTP request is sent before Prometheus logs that it listens, so a server
// that won the race never sees one.
func StartPrometheus(bin, dir string, config []byte) (*Prometheus, error) {
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, config, 0o644); err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		p, err := startPrometheus(bin, dir, cfgPath, attempt)
		if err == nil {
			return p, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, lastErr
}

func startPrometheus(bin, dir, cfgPath string, attempt int) (*Prometheus, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("prometheus-%d.log", attempt)))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=info",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &Prometheus{URL: "http://" + addr, cmd: cmd, done: make(chan struct{}), log: logf}
	go func() { _ = cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(30 * time.Second)
	listening := false
	for {
		select {
		case <-p.done:
			logf.Close()
			return nil, fmt.Errorf("prometheus exited: %s", p.Log())
		default:
		}
		if !listening {
			listening = strings.Contains(p.Log(), `msg="Listening on"`)
		}
		if listening {
			resp, err := http.Get(p.URL + "/-/ready")
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK && strings.Contains(string(body), "Prometheus") {
					return p, nil
				}
			}
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("prometheus not ready after 30s: %s", p.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Log is what Prometheus logged.
func (p *Prometheus) Log() string {
	b, _ := os.ReadFile(p.log.Name())
	return string(b)
}

// Stop terminates Prometheus (SIGTERM, then SIGKILL after 10 s).
func (p *Prometheus) Stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.log.Close()
}

// Sample is one series of an instant vector.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// QueryError is an error answer of the HTTP API.
type QueryError struct{ Type, Msg string }

func (e *QueryError) Error() string { return e.Type + ": " + e.Msg }

// Query evaluates expr at the current time.
func (p *Prometheus) Query(ctx context.Context, expr string) ([]Sample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.get(ctx, "/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	switch data.ResultType {
	case "vector":
		var raw []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(data.Result, &raw); err != nil {
			return nil, err
		}
		out := make([]Sample, 0, len(raw))
		for _, r := range raw {
			v, err := parseValue(r.Value[1])
			if err != nil {
				return nil, err
			}
			out = append(out, Sample{Metric: r.Metric, Value: v})
		}
		return out, nil
	case "scalar":
		var raw [2]any
		if err := json.Unmarshal(data.Result, &raw); err != nil {
			return nil, err
		}
		v, err := parseValue(raw[1])
		return []Sample{{Value: v}}, err
	default:
		return nil, fmt.Errorf("query %q: result type %s", expr, data.ResultType)
	}
}

func parseValue(v any) (float64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", v)
	}
	return strconv.ParseFloat(s, 64)
}

// RuleState is one rule as /api/v1/rules reports it.
type RuleState struct {
	Group          string
	Name           string `json:"name"`
	Type           string `json:"type"`
	Query          string `json:"query"`
	Health         string `json:"health"`
	LastError      string `json:"lastError"`
	State          string `json:"state"`
	LastEvaluation string `json:"lastEvaluation"`
}

// Rules lists every loaded rule.
func (p *Prometheus) Rules(ctx context.Context) ([]RuleState, error) {
	var data struct {
		Groups []struct {
			Name  string      `json:"name"`
			Rules []RuleState `json:"rules"`
		} `json:"groups"`
	}
	if err := p.get(ctx, "/api/v1/rules", nil, &data); err != nil {
		return nil, err
	}
	var out []RuleState
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			r.Group = g.Name
			out = append(out, r)
		}
	}
	return out, nil
}

// TargetState is one scrape target as /api/v1/targets reports it.
type TargetState struct {
	Labels    map[string]string `json:"labels"`
	Health    string            `json:"health"`
	LastError string            `json:"lastError"`
	ScrapeURL string            `json:"scrapeUrl"`
}

// Targets lists the active targets.
func (p *Prometheus) Targets(ctx context.Context) ([]TargetState, error) {
	var data struct {
		Active []TargetState `json:"activeTargets"`
	}
	err := p.get(ctx, "/api/v1/targets", nil, &data)
	return data.Active, err
}

func (p *Prometheus) get(ctx context.Context, path string, q url.Values, data any) error {
	u := p.URL + path
	if q != nil {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("GET %s: HTTP %d: %.200s", path, resp.StatusCode, body)
	}
	if env.Status != "success" {
		return &QueryError{Type: env.ErrorType, Msg: env.Error}
	}
	if len(env.Data) == 0 {
		return errors.New("no data")
	}
	return json.Unmarshal(env.Data, data)
}

// GrafanaRegex formats the values of a multi-value variable as Grafana
// does for a Prometheus regex matcher.
func GrafanaRegex(values []string) string {
	esc := make([]string, len(values))
	for i, v := range values {
		esc[i] = regexpQuote(v)
	}
	if len(esc) == 1 {
		return esc[0]
	}
	return "(" + strings.Join(esc, "|") + ")"
}

func regexpQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$`, r) {
			b.WriteString(`\\`)
		}
		b.WriteRune(r)
	}
	return b.String()
}
