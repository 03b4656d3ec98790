package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// cluster-probe samples the server side of the cluster run (per pod RSS,
// descriptors, CPU and /metrics; nats-server's CPU, RSS and subscription
// counts from its monitoring port; the cores' busy time) at the script's
// moments; cluster-report merges the shards' JSON with those probes into
// BENCHMARKS.md's tables.

type procProbe struct {
	Pid      int   `json:"pid"`
	Alive    bool  `json:"alive"`
	RSS      int64 `json:"rss"`
	CPUTicks int64 `json:"cpu_ticks"` // utime+stime, 100 Hz
	FDs      int   `json:"fds"`
}

type podProbe struct {
	Name string `json:"name"`
	procProbe
	Connections float64            `json:"connections"`
	BusSubs     float64            `json:"bus_subscriptions"`
	Goroutines  float64            `json:"goroutines"`
	Connects    map[string]float64 `json:"connects_by_result"`
	Series      map[string]float64 `json:"series"` // probeSeries, as scraped
	Err         string             `json:"error,omitempty"`
}

type natsProbe struct {
	procProbe
	Subscriptions    float64 `json:"subscriptions"`     // /varz
	NumSubscriptions float64 `json:"num_subscriptions"` // /subsz
	Connections      float64 `json:"connections"`
	SlowConsumers    float64 `json:"slow_consumers"`
	Err              string  `json:"error,omitempty"`
}

// probeSeries are the gateway series the report lists per pod: how
// resumes ended, catch-ups, and the closes that are not the kill's.
var probeSeries = []string{
	"ocvr_gateway_resumes_total", "ocvr_gateway_catchups_total", "ocvr_gateway_catchup_abandoned_total",
	"ocvr_gateway_slow_consumer_disconnects_total", "ocvr_gateway_stream_read_errors_total",
	"ocvr_gateway_bus_slow_consumer_events_total", "ocvr_gateway_stream_replayed_events_total",
}

type cpuTicks struct {
	Busy  int64 `json:"busy"`
	Total int64 `json:"total"`
}

type clusterProbe struct {
	Label     string     `json:"label"`
	AtNs      int64      `json:"at_ns"`
	Pods      []podProbe `json:"pods"`
	NATS      natsProbe  `json:"nats"`
	Ticketsvc procProbe  `json:"ticketsvc"`
	CPUs      []cpuTicks `json:"cpus"`
}

func clusterProbeWorkload(ctx context.Context, e *env, fs *flag.FlagSet) func() (*report, error) {
	label := fs.String("label", "", "what this moment is (base, connected, before-kill, recovered, end)")
	pods := fs.String("pods", "", "gateway pods, comma-separated `name=pid@admin-url` (e.g. gw1=1234@http://127.0.0.1:29081)")
	natsF := fs.String("nats", "", "nats-server as `pid@monitor-url`")
	tsvc := fs.Int("ticketsvc", 0, "ticketsvc `pid`")
	appendTo := fs.String("append", "", "append the probe as one JSON line to `file`")
	return func() (*report, error) {
		hc := &http.Client{Timeout: 5 * time.Second}
		p := clusterProbe{Label: *label, AtNs: time.Now().UnixNano(), CPUs: readCPUTicks()}
		for _, spec := range splitList(*pods) {
			name, rest, _ := strings.Cut(spec, "=")
			pid, url := splitPidURL(rest)
			pp := podProbe{Name: name, procProbe: probeProc(pid)}
			m, err := scrapeMetrics(ctx, hc, url+"/metrics")
			if err != nil {
				pp.Err = err.Error()
			} else {
				pp.Connections = m["ocvr_gateway_connections"]
				pp.BusSubs = m["ocvr_gateway_bus_subscriptions"]
				pp.Goroutines = m["go_goroutines"]
				pp.Connects, pp.Series = map[string]float64{}, map[string]float64{}
				for k, v := range m {
					if r, ok := strings.CutPrefix(k, `ocvr_gateway_connects_total{result="`); ok {
						pp.Connects[strings.TrimSuffix(r, `"}`)] = v
					}
					for _, p := range probeSeries {
						if strings.HasPrefix(k, p) {
							pp.Series[k] = v
						}
					}
				}
			}
			p.Pods = append(p.Pods, pp)
		}
		if *natsF != "" {
			pid, url := splitPidURL(*natsF)
			p.NATS.procProbe = probeProc(pid)
			var varz struct {
				Subscriptions float64 `json:"subscriptions"`
				Connections   float64 `json:"connections"`
				SlowConsumers float64 `json:"slow_consumers"`
			}
			var subsz struct {
				NumSubscriptions float64 `json:"num_subscriptions"`
			}
			if err := getJSON(ctx, hc, url+"/varz", &varz); err != nil {
				p.NATS.Err = err.Error()
			}
			if err := getJSON(ctx, hc, url+"/subsz", &subsz); err != nil {
				p.NATS.Err = err.Error()
			}
			p.NATS.Subscriptions, p.NATS.Connections, p.NATS.SlowConsumers = varz.Subscriptions, varz.Connections, varz.SlowConsumers
			p.NATS.NumSubscriptions = subsz.NumSubscriptions
		}
		if *tsvc > 0 {
			p.Ticketsvc = probeProc(*tsvc)
		}
		if *appendTo != "" {
			b, _ := json.Marshal(p)
			f, err := os.OpenFile(*appendTo, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return nil, fmt.Errorf("probe: %w", err)
			}
			_, err = f.Write(append(b, '\n'))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return nil, fmt.Errorf("probe: %w", err)
			}
		}
		rep := &report{Params: map[string]any{"label": *label}, Columns: []string{"pod", "pid", "connections", "RSS MiB", "fds"}}
		for _, pp := range p.Pods {
			rep.Rows = append(rep.Rows, []any{pp.Name, pp.Pid, pp.Connections, float64(pp.RSS) / (1 << 20), pp.FDs})
		}
		rep.Rows = append(rep.Rows, []any{"nats-server", p.NATS.Pid, p.NATS.Connections, float64(p.NATS.RSS) / (1 << 20), p.NATS.FDs})
		return rep, nil
	}
}

func splitPidURL(s string) (int, string) {
	p, url, _ := strings.Cut(s, "@")
	pid, _ := strconv.Atoi(p)
	return pid, strings.TrimRight(url, "/")
}

func probeProc(pid int) procProbe {
	p := procProbe{Pid: pid}
	if pid <= 0 {
		return p
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		return p
	}
	p.Alive = true
	p.RSS, p.CPUTicks = readRSS(pid), readCPU(pid)
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		p.FDs = len(ents)
	}
	return p
}

// readCPUTicks reads each core's busy and total ticks from /proc/stat
// (busy: user, nice, system, irq, softirq; not idle, iowait or steal).
func readCPUTicks() []cpuTicks {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil
	}
	var out []cpuTicks
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		var v [8]int64
		for i := range v {
			v[i], _ = strconv.ParseInt(f[i+1], 10, 64)
		}
		t := cpuTicks{Busy: v[0] + v[1] + v[2] + v[5] + v[6]}
		for _, x := range v {
			t.Total += x
		}
		out = append(out, t)
	}
	return out
}

// scrapeMetrics reads a Prometheus text page into series → value.
func scrapeMetrics(ctx context.Context, hc *http.Client, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: HTTP %d", resp.StatusCode)
	}
	return parseMetrics(resp.Body), nil
}

func parseMetrics(r io.Reader) map[string]float64 {
	m := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i <= 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m
}

func getJSON(ctx context.Context, hc *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	return nil
}
