package gateway

import (
	"fmt"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func promhttpHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// reasonSoftCap is Ready's reason at the soft connection limit: the pod
// still serves its sockets (fleet.go counts it as serving).
const reasonSoftCap = "at soft connection limit"

// Ready reports whether the pod should receive new connections, and why not.
func (g *Gateway) Ready() (bool, string) {
	switch {
	case g.draining.Load():
		return false, "draining"
	case !g.nc.IsConnected():
		return false, "nats not connected"
	case g.stores.Load() == nil:
		return false, "kv stores not open"
	case g.kvDown.Load():
		return false, "kv not reachable"
	case g.watchers.Load() < watchCount:
		// Until the watches are live, a membership removed or a session
		// revoked now would not end what it authorized.
		return false, "directory or session watch not started"
	case g.softCap.full(g.Connections()):
		return false, reasonSoftCap
	}
	return true, ""
}

// AdminHandler serves /healthz, /readyz and /metrics.
func (g *Gateway) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if ok, why := g.Ready(); !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, `{"status":"unready","reason":%q}`, why)
			return
		}
		_, _ = w.Write([]byte(`{"status":"ready"}`))
	})
	mux.Handle("GET /metrics", promhttpHandler(g.metrics.reg))
	if g.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}
