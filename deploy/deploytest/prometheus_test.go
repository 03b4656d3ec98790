package deploytest

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/clustertest"
	"github.com/ocvr/realtime/pkg/protocol"
)

// TestWithRealPrometheus runs a cluster (2 gateways, 1 ticketsvc) with some
// traffic, and a real Prometheus (Debian's /usr/bin/prometheus) scraping it
// every second with a configuration generated from the example
// deploy/prometheus/prometheus.yml and the rules of deploy/prometheus. Then:
//   - ocvr_gateway_connections, as Prometheus sees it, equals the number of
//     open test connections, per pod and in total, and follows a close;
//   - every expression of the dashboards (their variables resolved through
//     Prometheus as Grafana would), the rules and the prometheus-adapter rule
//     evaluates without error, and every dashboard query returns series;
//   - the adapter's metrics query gives each gateway pod its connections;
//   - every rule is loaded and evaluates healthy; no alert fires on this
//     healthy cluster;
//   - every metric name used by a dashboard, rule or the adapter rule is one
//     the services export (read from their /metrics), every histogram bucket
//     they select by its bound (le="0.25" of the delivery SLO) is exported,
//     and every ocvr_* metric they export is documented in deploy/README.md.
func TestWithRealPrometheus(t *testing.T) {
	promBin := tool(t, "prometheus")
	promtool := tool(t, "promtool")
	root := repoRoot(t)

	c := clustertest.Start(t, clustertest.Options{
		Gateways:    2,
		GatewayArgs: []string{"--soft-max-connections", "100", "--hard-max-connections", "200"},
	})
	ctx := context.Background()
	c.Channel("ch_prom", 1, 2, 3, 4, 5)

	// Five connections: three on gateway-1, two on gateway-2, all subscribed.
	var conns []*client.Conn
	perPod := map[string]int{}
	for i := 0; i < 5; i++ {
		u := c.NewUser(int64(i+1), fmt.Sprint("user", i+1))
		pod := i % 2
		if i == 4 {
			pod = 0
		}
		conn, err := c.Dial(u, pod)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(conn.CloseNow)
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := conn.Subscribe(sctx, "ch_prom"); err != nil {
			t.Fatal(err)
		}
		if f, err := conn.Next(sctx); err != nil || f.Type != protocol.TypeSubscribed {
			t.Fatalf("subscribe: %v %s", err, f.Raw)
		}
		cancel()
		conns = append(conns, conn)
		perPod[c.Gateways[pod].Name]++
	}
	// Traffic: events, an error frame, a 401 at ticketsvc, and one
	// connection that comes and goes (a disconnect by code).
	for i := 0; i < 5; i++ {
		if err := c.Publisher.MessageCreated(ctx, protocol.MessageCreate{ID: fmt.Sprint("m", i), ChannelID: "ch_prom",
			Author: protocol.Author{ID: 9, DisplayName: "Backend"}, Content: "hi", CreatedAt: 1764417600}); err != nil {
			t.Fatal(err)
		}
	}
	if err := conns[0].SendRaw(ctx, []byte(`{"type":"nope"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := client.GetTicket(ctx, nil, c.TicketURLs()[0], "sess_unknown"); err == nil {
		t.Fatal("an unknown session got a ticket")
	}
	extra, err := c.Dial(c.NewUser(6, "user6"), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := extra.Close(); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 10*time.Second, "the gateways to count the connections", func() bool {
		for _, g := range c.Gateways {
			if n, _ := g.Metric("ocvr_gateway_connections"); n != float64(perPod[g.Name]) {
				return false
			}
		}
		return true
	})

	// Prometheus, configured from the example.
	targets := map[string][]Target{}
	for _, g := range c.Gateways {
		targets["gateway"] = append(targets["gateway"], Target{Pod: g.Name, Addr: g.Admin})
	}
	for _, p := range c.Ticketsvcs {
		targets["ticketsvc"] = append(targets["ticketsvc"], Target{Pod: p.Name, Addr: p.Admin})
	}
	cfg, err := GenerateConfig(root, targets, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if out, err := exec.Command(promtool, "check", "config", writeFile(t, dir, "check.yml", cfg)).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config (generated): %v\n%s\n%s", err, out, cfg)
	}
	prom, err := StartPrometheus(promBin, dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		prom.Stop()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", prom.Log())
		}
	})

	// Wait for every target to be up with a few samples each (rate() needs
	// two), and for every rule to have been evaluated.
	waitFor(t, 30*time.Second, "3 targets up with 3 samples each", func() (bool, string) {
		ts, err := prom.Targets(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, tg := range ts {
			if tg.Health != "up" {
				return false, fmt.Sprintf("%s: %s %s", tg.ScrapeURL, tg.Health, tg.LastError)
			}
		}
		s, err := prom.Query(ctx, `count(count_over_time(up[1m]) >= 3)`)
		if err != nil || len(s) != 1 {
			return false, fmt.Sprint(s, err)
		}
		return len(ts) == 3 && s[0].Value == 3, fmt.Sprintf("%d targets, %v with 3 samples", len(ts), s[0].Value)
	})
	waitFor(t, 30*time.Second, "every rule evaluated", func() (bool, string) {
		rules, err := prom.Rules(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, r := range rules {
			if strings.HasPrefix(r.LastEvaluation, "0001-") || r.LastEvaluation == "" {
				return false, r.Name + " not evaluated yet"
			}
		}
		return len(rules) > 0, fmt.Sprintf("%d rules", len(rules))
	})

	t.Run("connections", func(t *testing.T) {
		checkConnections(t, prom, perPod)
		// A close is seen: gateway-2 loses one connection.
		conns[1].CloseNow()
		perPod[c.Gateways[1].Name]--
		waitFor(t, 15*time.Second, "Prometheus to see the close", func() (bool, string) {
			s, err := prom.Query(ctx, `sum(ocvr_gateway_connections)`)
			if err != nil || len(s) != 1 {
				return false, fmt.Sprint(s, err)
			}
			return s[0].Value == 4, fmt.Sprint("total ", s[0].Value)
		})
		checkConnections(t, prom, perPod)
	})

	t.Run("rules healthy", func(t *testing.T) {
		rf, err := Rules(root)
		if err != nil {
			t.Fatal(err)
		}
		rules, err := prom.Rules(ctx)
		if err != nil {
			t.Fatal(err)
		}
		loaded := map[string]bool{}
		for _, r := range rules {
			loaded[r.Name] = true
			if r.Health != "ok" || r.LastError != "" {
				t.Errorf("rule %s (%s): health %q, error %q", r.Name, r.Group, r.Health, r.LastError)
			}
			// Pending is possible on a loaded test machine (a slow redeem
			// under -race); every `for` is far longer than this test.
			if r.Type == "alerting" && r.State == "firing" {
				t.Errorf("alert %s fires on a healthy cluster", r.Name)
			} else if r.Type == "alerting" && r.State != "inactive" {
				t.Logf("alert %s is %s", r.Name, r.State)
			}
		}
		for _, e := range rf.RuleExprs() {
			name := e.Source[strings.LastIndex(e.Source, " ")+1:]
			if !loaded[name] {
				t.Errorf("rule %s not loaded by Prometheus", name)
			}
		}
		s, err := prom.Query(ctx, `ALERTS{alertstate="firing"}`)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range s {
			t.Errorf("alert %v fires on a healthy cluster", a.Metric)
		}
	})

	// Grafana resolves the dashboards' variables through the data source;
	// so does this test, as "All" of a multi-value variable.
	exprs := evaluationExprs(t, root, prom, c)

	t.Run("expressions evaluate", func(t *testing.T) {
		if len(exprs) < 60 {
			t.Fatalf("only %d expressions", len(exprs))
		}
		for _, e := range exprs {
			s, err := prom.Query(ctx, e.PromQL)
			if err != nil {
				t.Errorf("%s: %v\n  %s", e.Source, err, e.PromQL)
				continue
			}
			if e.WantData && len(s) == 0 {
				t.Errorf("%s returns no series\n  %s", e.Source, e.PromQL)
			}
		}
	})

	t.Run("adapter metric per pod", func(t *testing.T) {
		ac, _, err := Adapter(root)
		if err != nil {
			t.Fatal(err)
		}
		pods := make([]string, 0, len(c.Gateways))
		for _, g := range c.Gateways {
			pods = append(pods, g.Name)
		}
		// What the adapter asks for an HPA over the gateway pods of a namespace.
		matchers := fmt.Sprintf(`namespace=%q,pod=~%q`, exampleNamespace(t, root), strings.Join(pods, "|"))
		q, err := AdapterQuery(ac.Rules[0].MetricsQuery, "ocvr_gateway_connections", matchers, "pod")
		if err != nil {
			t.Fatal(err)
		}
		s, err := prom.Query(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		got := map[string]int{}
		for _, x := range s {
			got[x.Metric["pod"]] = int(x.Value)
		}
		if fmt.Sprint(got) != fmt.Sprint(perPod) {
			t.Errorf("adapter query %s = %v, want %v", q, got, perPod)
		}
		series, err := prom.Query(ctx, ac.Rules[0].SeriesQuery)
		if err != nil || len(series) != len(c.Gateways) {
			t.Errorf("seriesQuery %s: %d series, %v; want %d", ac.Rules[0].SeriesQuery, len(series), err, len(c.Gateways))
		}
	})

	t.Run("metric names exported", func(t *testing.T) {
		exported := map[string]string{} // sample names
		families := map[string]bool{}   // ocvr_* metric families
		buckets := map[bucketRef]bool{} // histogram bucket bounds
		for _, p := range append(append([]*clustertest.Process{}, c.Gateways...), c.Ticketsvcs...) {
			page := scrape(t, p.Admin)
			for name, typ := range Exported(page) {
				exported[name] = typ
			}
			for b := range exportedBuckets(page) {
				buckets[b] = true
			}
			for name := range Families(page) {
				if strings.HasPrefix(name, "ocvr_") {
					families[name] = true
				}
			}
		}
		rf, err := Rules(root)
		if err != nil {
			t.Fatal(err)
		}
		recorded := rf.Recorded()
		used := map[string]bool{}
		for _, e := range exprs {
			names, err := MetricNames(e.PromQL)
			if err != nil {
				t.Errorf("%s: %v", e.Source, err)
				continue
			}
			for _, n := range names {
				used[n] = true
				if exported[n] == "" && !recorded[n] {
					t.Errorf("%s uses %s, which no service exports and no recording rule defines\n  %s", e.Source, n, e.Raw)
				}
			}
			// A bucket bound the histogram lacks selects nothing (the
			// delivery SLO counts le="0.25" as its good events).
			for _, b := range bucketRefs(t, e.PromQL) {
				if !recorded[b.Series] && !buckets[b] {
					t.Errorf("%s selects %s{le=%q}, a bucket no service exports", e.Source, b.Series, b.LE)
				}
			}
		}
		for n := range recorded {
			if !used[n] {
				t.Logf("recorded series %s is not used by a dashboard or alert", n)
			}
		}
		readme, err := os.ReadFile(filepath.Join(root, "deploy", "README.md"))
		if err != nil {
			t.Fatal(err)
		}
		var ocvr []string
		for n := range families {
			ocvr = append(ocvr, n)
		}
		sort.Strings(ocvr)
		if len(ocvr) < 20 {
			t.Errorf("only %d ocvr_* metric families exported: %v", len(ocvr), ocvr)
		}
		for _, n := range ocvr {
			if !strings.Contains(string(readme), "`"+n+"`") {
				t.Errorf("exported metric %s is not documented in deploy/README.md", n)
			}
		}
	})
}

// evaluationExprs gathers every expression with the dashboards' variables
// resolved through Prometheus: namespace first, then pod (whose query
// depends on it), each set to all its values.
func evaluationExprs(t *testing.T, root string, prom *Prometheus, c *clustertest.Cluster) []Expr {
	t.Helper()
	ctx := context.Background()
	boards, err := Dashboards(root)
	if err != nil {
		t.Fatal(err)
	}
	var out []Expr
	for _, d := range boards {
		vars := map[string]string{"datasource": "prometheus"}
		for _, v := range d.Variables() {
			if v["type"] != "query" {
				continue
			}
			name := fmt.Sprint(v["name"])
			raw := fmt.Sprint(v["definition"])
			m := labelValues.FindStringSubmatch(raw)
			if m == nil {
				t.Fatalf("%s: variable %s: %q is not label_values(<selector>, <label>)", d.File, name, raw)
			}
			sel, err := Substitute(m[1], vars)
			if err != nil {
				t.Fatal(err)
			}
			s, err := prom.Query(ctx, fmt.Sprintf("count by (%s) (%s)", m[2], sel))
			if err != nil {
				t.Fatalf("%s: variable %s: %v", d.File, name, err)
			}
			var values []string
			for _, x := range s {
				values = append(values, x.Metric[m[2]])
			}
			sort.Strings(values)
			if len(values) == 0 {
				t.Fatalf("%s: variable %s has no values", d.File, name)
			}
			vars[name] = GrafanaRegex(values)
			t.Logf("%s: $%s = %s", d.File, name, vars[name])
		}
		es, err := d.DashboardExprs(vars)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, es...)
	}
	rf, err := Rules(root)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, rf.RuleExprs()...)
	ac, _, err := Adapter(root)
	if err != nil {
		t.Fatal(err)
	}
	pods := make([]string, 0, len(c.Gateways))
	for _, g := range c.Gateways {
		pods = append(pods, g.Name)
	}
	es, err := ac.AdapterExprs(fmt.Sprintf(`namespace=%q,pod=~%q`, exampleNamespace(t, root), strings.Join(pods, "|")), "pod")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, es...)
}

// checkConnections: Prometheus' ocvr_gateway_connections equals the open
// test connections per pod and in total.
func checkConnections(t *testing.T, prom *Prometheus, perPod map[string]int) {
	t.Helper()
	total := 0
	for _, n := range perPod {
		total += n
	}
	s, err := prom.Query(context.Background(), `ocvr_gateway_connections`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	sum := 0
	for _, x := range s {
		if x.Value != math.Trunc(x.Value) {
			t.Errorf("non-integer connections %v", x)
		}
		got[x.Metric["pod"]] = int(x.Value)
		sum += int(x.Value)
	}
	if fmt.Sprint(got) != fmt.Sprint(perPod) || sum != total {
		t.Errorf("Prometheus sees connections %v (total %d), want %v (total %d)", got, sum, perPod, total)
	}
}

// exampleNamespace is the namespace label of the example scrape config.
func exampleNamespace(t *testing.T, root string) string {
	t.Helper()
	cfg, err := GenerateConfig(root, map[string][]Target{"gateway": {{Pod: "x", Addr: "x:1"}}, "ticketsvc": {{Pod: "y", Addr: "y:1"}}}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(cfg), "namespace: ")
	if i < 0 {
		t.Fatal("no namespace label in the example scrape config")
	}
	return strings.Fields(string(cfg)[i+len("namespace: "):])[0]
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitFor polls cond until it holds; cond also says what it saw.
func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last: %s", d, what, saw)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
