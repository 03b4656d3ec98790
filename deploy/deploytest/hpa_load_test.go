package deploytest

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/clustertest"
)

// scrapedGateways starts n gateways (and a ticketsvc, over NATS) and a
// Prometheus scraping them every second with the example configuration,
// each gateway labelled as pod <deployName>-7c9d5b8f4-<suffix> (names of a
// ReplicaSet's pods, which the chart's KEDA query also expects).
func scrapedGateways(t *testing.T, root, deployName string, n int) (*gatewayLoad, []string, *Prometheus) {
	t.Helper()
	c := clustertest.Start(t, clustertest.Options{Gateways: n})
	var podNames []string
	for i := range c.Gateways {
		podNames = append(podNames, fmt.Sprintf("%s-7c9d5b8f4-%c%c%c%c%c", deployName, 'a'+i, 'k'+i, 'p'+i, 'q'+i, 'x'-i))
	}
	targets := map[string][]Target{}
	for i, gw := range c.Gateways {
		targets["gateway"] = append(targets["gateway"], Target{Pod: podNames[i], Addr: gw.Admin})
	}
	for _, p := range c.Ticketsvcs {
		targets["ticketsvc"] = append(targets["ticketsvc"], Target{Pod: p.Name, Addr: p.Admin})
	}
	cfg, err := GenerateConfig(root, targets, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	prom, err := StartPrometheus(tool(t, "prometheus"), t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prom.Stop)
	return &gatewayLoad{t: t, c: c}, podNames, prom
}

// gatewayLoad holds real sockets on the gateways of a cluster.
type gatewayLoad struct {
	t      *testing.T
	c      *clustertest.Cluster
	conns  [][]*client.Conn
	perPod []int
	users  int64
}

// connect opens n[i] more sockets on gateway i and waits until each gateway
// counts its sockets.
func (g *gatewayLoad) connect(n ...int) {
	g.t.Helper()
	if g.conns == nil {
		g.conns = make([][]*client.Conn, len(g.c.Gateways))
		g.perPod = make([]int, len(g.c.Gateways))
	}
	for i, k := range n {
		for j := 0; j < k; j++ {
			g.users++
			conn, err := g.c.Dial(g.c.NewUser(g.users, fmt.Sprint("hpa-user", g.users)), i)
			if err != nil {
				g.t.Fatal(err)
			}
			g.t.Cleanup(conn.CloseNow)
			g.conns[i] = append(g.conns[i], conn)
		}
		g.perPod[i] += k
	}
	g.waitCounted()
}

// close closes n[i] sockets of gateway i.
func (g *gatewayLoad) close(n ...int) {
	g.t.Helper()
	for i, k := range n {
		for j := 0; j < k; j++ {
			last := len(g.conns[i]) - 1
			_ = g.conns[i][last].Close()
			g.conns[i] = g.conns[i][:last]
		}
		g.perPod[i] -= k
	}
	g.waitCounted()
}

func (g *gatewayLoad) total() int {
	n := 0
	for _, k := range g.perPod {
		n += k
	}
	return n
}

func (g *gatewayLoad) waitCounted() {
	g.t.Helper()
	clustertest.Eventually(g.t, 10*time.Second, "each gateway to count its sockets", func() bool {
		for i, gw := range g.c.Gateways {
			if n, _ := gw.Metric("ocvr_gateway_connections"); n != float64(g.perPod[i]) {
				return false
			}
		}
		return true
	})
}

// checkServed waits until Prometheus and then the custom metrics API (the
// adapter, through the API server) report each pod's sockets.
func (g *gatewayLoad) checkServed(prom *Prometheus, k kubectl, adapter *daemon, ns string, podNames []string) {
	g.t.Helper()
	want := map[string]int{}
	for i, p := range podNames {
		want[p] = g.perPod[i]
	}
	waitFor(g.t, 20*time.Second, "Prometheus to see each pod's sockets", func() (bool, string) {
		s, err := prom.Query(context.Background(), `ocvr_gateway_connections`)
		if err != nil {
			return false, err.Error()
		}
		got := map[string]int{}
		for _, x := range s {
			got[x.Metric["pod"]] = int(x.Value)
		}
		return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprint(got)
	})
	path := "/apis/custom.metrics.k8s.io/v1beta1/namespaces/" + ns + "/pods/*/ocvr_gateway_connections"
	waitFor(g.t, 60*time.Second, "the custom metrics API to serve each pod's sockets ("+path+")", func() (bool, string) {
		if adapter.exited() {
			g.t.Fatalf("prometheus-adapter exited:\n%s", adapter.tail(30))
		}
		out, err := k.run("", "get", "--raw", path)
		if err != nil {
			return false, err.Error()
		}
		var list struct {
			Items []struct {
				DescribedObject struct{ Name string } `json:"describedObject"`
				Value           string                `json:"value"`
			} `json:"items"`
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			return false, err.Error()
		}
		got := map[string]int{}
		for _, it := range list.Items {
			n, err := strconv.Atoi(it.Value)
			if err != nil {
				return false, "value " + it.Value
			}
			got[it.DescribedObject.Name] = n
		}
		return fmt.Sprint(got) == fmt.Sprint(want), out
	})
}
