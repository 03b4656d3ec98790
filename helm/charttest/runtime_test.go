package charttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/client"
	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/session"
)

// The services' binaries, as the pods run them. scripts/test-chart.sh
// builds the images (make images) and unpacks their root filesystems into
// $OCVR_ROOTFS_GATEWAY and $OCVR_ROOTFS_TICKETSVC: the tests then run the
// image's entrypoint inside that filesystem (chroot) as the image's non-root
// user, with the environment the chart renders. Without them (plain
// `go test`), the binaries are built from source and run directly.
type binary struct {
	path   string // absolute, or inside rootfs
	rootfs string // chroot directory, or ""
}

var (
	binOnce sync.Once
	bins    map[string]binary
	binErr  error
)

const imageUID = 65532

func binaries(t testing.TB) map[string]binary {
	t.Helper()
	binOnce.Do(func() {
		bins = map[string]binary{}
		gw, ts := os.Getenv("OCVR_ROOTFS_GATEWAY"), os.Getenv("OCVR_ROOTFS_TICKETSVC")
		if gw != "" && ts != "" {
			for comp, dir := range map[string]string{"gateway": gw, "ticketsvc": ts} {
				b := binary{path: "/usr/local/bin/" + comp, rootfs: dir}
				if os.Geteuid() != 0 {
					// No chroot without root: run the image's binary in place.
					b = binary{path: filepath.Join(dir, "usr", "local", "bin", comp)}
				}
				bins[comp] = b
			}
			return
		}
		dir, err := os.MkdirTemp("", "charttest-bin-")
		if err != nil {
			binErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./gateway/cmd/gateway", "./ticketsvc/cmd/ticketsvc")
		cmd.Dir = root(t)
		// The repository's workspace, whatever GOWORK this test runs with.
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK="+filepath.Join(root(t), "go.work"))
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		for _, comp := range []string{"gateway", "ticketsvc"} {
			bins[comp] = binary{path: filepath.Join(dir, comp)}
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return bins
}

func (b binary) command(args ...string) *exec.Cmd {
	cmd := exec.Command(b.path, args...)
	if b.rootfs != "" {
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Chroot:     b.rootfs,
			Credential: &syscall.Credential{Uid: imageUID, Gid: imageUID},
		}
		cmd.Dir = "/"
	}
	// Only what the pod has: the image's environment plus the container's.
	cmd.Env = []string{"PATH=/usr/local/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	return cmd
}

// flagInfo is what a binary's --help says about its settings: the
// environment variable of each flag and its default.
func flagInfo(t testing.TB, comp string) map[string]string {
	t.Helper()
	out, err := binaries(t)[comp].command("--help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v\n%s", comp, err, out)
	}
	info := map[string]string{}
	text := string(out)
	switch comp {
	case "gateway":
		// "  -flag-name type\n    \tdescription (default X)"
		re := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)[^\n]*\n((?:    [^\n]*\n?)*)`)
		for _, m := range re.FindAllStringSubmatch(text, -1) {
			def := ""
			if d := regexp.MustCompile(`\(default (.*)\)\s*$`).FindStringSubmatch(strings.TrimSpace(m[2])); d != nil {
				def = strings.Trim(d[1], `"`)
			}
			info["OCVR_"+strings.ToUpper(strings.ReplaceAll(m[1], "-", "_"))] = def
		}
	case "ticketsvc":
		// "        env OCVR_X, default Y"
		re := regexp.MustCompile(`(?m)^\s+env (OCVR_[A-Z0-9_]+), default (.*)$`)
		for _, m := range re.FindAllStringSubmatch(text, -1) {
			info[m[1]] = strings.Trim(strings.TrimSpace(m[2]), `"`)
		}
	}
	if len(info) < 10 {
		t.Fatalf("%s --help: found only %d flags in:\n%s", comp, len(info), text)
	}
	return info
}

// TestImagesRunHelp: the binaries the pods run start and document their
// flags (from the image's filesystem, as the image's user, when given).
func TestImagesRunHelp(t *testing.T) {
	for _, comp := range []string{"gateway", "ticketsvc"} {
		info := flagInfo(t, comp)
		for _, e := range []string{"OCVR_NATS_URL", "OCVR_ADMIN_LISTEN", "OCVR_LISTEN", "OCVR_NATS_CREDS", "OCVR_NATS_TLS_CA"} {
			if _, ok := info[e]; !ok {
				t.Errorf("%s --help does not document %s", comp, e)
			}
		}
	}
}

// TestRenderedEnvIsKnownToBinaries: every OCVR_* variable the chart sets, in
// every profile, is a flag of the binary it is set for: a renamed or
// misspelt setting cannot be silently ignored.
func TestRenderedEnvIsKnownToBinaries(t *testing.T) {
	known := map[string]map[string]string{"gateway": flagInfo(t, "gateway"), "ticketsvc": flagInfo(t, "ticketsvc")}
	for _, p := range profiles(t) {
		r := typed(t, render(t, p))
		for _, comp := range []string{"gateway", "ticketsvc"} {
			c := r.component(t, comp).Spec.Template.Spec.Containers[0]
			for _, e := range c.Env {
				if !strings.HasPrefix(e.Name, "OCVR_") {
					continue
				}
				if _, ok := known[comp][e.Name]; !ok {
					t.Errorf("%s: the %s container sets %s, which `%s --help` does not know", p.Name, comp, e.Name, comp)
				}
			}
		}
	}
}

// TestChartDefaultsMatchBinaries: the chart's default settings are the
// binaries' own defaults, except where a pod needs something else (listen
// addresses, NATS URL, pod name, the drain-sized shutdown timeout). A
// changed default in either place shows up here.
func TestChartDefaultsMatchBinaries(t *testing.T) {
	r := typed(t, render(t, Profile{Name: "default"}))
	podSpecific := map[string]bool{
		"OCVR_LISTEN": true, "OCVR_ADMIN_LISTEN": true, "OCVR_NATS_URL": true, "OCVR_POD_NAME": true,
		"OCVR_ALLOWED_ORIGINS": true,
	}
	for _, comp := range []string{"gateway", "ticketsvc"} {
		defaults := flagInfo(t, comp)
		c := r.component(t, comp).Spec.Template.Spec.Containers[0]
		for _, e := range c.Env {
			if !strings.HasPrefix(e.Name, "OCVR_") || podSpecific[e.Name] || e.ValueFrom != nil {
				continue
			}
			if comp == "gateway" && e.Name == "OCVR_SHUTDOWN_TIMEOUT" {
				continue // readiness delay + drain window + close handshakes
			}
			def, ok := defaults[e.Name]
			if !ok {
				continue // TestRenderedEnvIsKnownToBinaries reports it
			}
			if !sameSetting(e.Value, def) {
				t.Errorf("%s: the chart sets %s=%q, the binary's default is %q (values.yaml says the defaults are the binary's)", comp, e.Name, e.Value, def)
			}
		}
	}
}

func sameSetting(a, b string) bool {
	// No "(default …)" in --help: the zero value (0, false, empty).
	if b == "" && (a == "0" || a == "false" || a == "") {
		return true
	}
	if a == b {
		return true
	}
	da, ea := time.ParseDuration(a)
	db, eb := time.ParseDuration(b)
	if ea == nil && eb == nil {
		return da == db
	}
	fa, ea := strconv.ParseFloat(a, 64)
	fb, eb := strconv.ParseFloat(b, 64)
	return ea == nil && eb == nil && fa == fb
}

// proc is a service started with a rendered container's environment.
type proc struct {
	name     string
	cmd      *exec.Cmd
	public   string
	admin    string
	log      string
	exited   chan struct{}
	exitedAt time.Time
	err      error
}

func freeAddr(t testing.TB) string {
	t.Helper()
	p, err := natsembed.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(p)
}

// startContainer runs a component's binary with the environment of its
// rendered container; only the listen addresses and the NATS URL are
// replaced (free loopback ports, the test's NATS server).
func startContainer(t *testing.T, comp string, c corev1.Container, natsURL string) *proc {
	t.Helper()
	return startMounted(t, comp, c, nil, nil, natsURL)
}

// startMounted is startContainer for a container that mounts Secrets: each
// secret volume's files (from secrets) appear where the pod would see them.
func startMounted(t *testing.T, comp string, c corev1.Container, volumes []corev1.Volume, secrets Secrets, natsURL string) *proc {
	t.Helper()
	p := &proc{name: comp, public: freeAddr(t), admin: freeAddr(t), exited: make(chan struct{})}
	b := binaries(t)[comp]
	cmd := b.command()
	paths := mountSecrets(t, b, c, volumes, secrets)
	for _, e := range c.Env {
		v := paths.rewrite(e.Value)
		switch {
		case e.Name == "OCVR_LISTEN":
			v = p.public
		case e.Name == "OCVR_ADMIN_LISTEN":
			v = p.admin
		case e.Name == "OCVR_NATS_URL":
			v = natsURL
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			v = "ocvr-realtime-" + comp + "-5d8f7c9b4-x7k2q"
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			v = Namespace
		case e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil:
			v = resourceField(t, c, e.ValueFrom.ResourceFieldRef)
		case e.ValueFrom != nil:
			t.Fatalf("%s: cannot resolve %s in a process test", comp, e.Name)
		}
		cmd.Env = append(cmd.Env, e.Name+"="+v)
	}
	p.log = filepath.Join(t.TempDir(), comp+".log")
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", comp, err)
	}
	p.cmd = cmd
	go func() {
		p.err = cmd.Wait()
		p.exitedAt = time.Now()
		f.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) > 40 {
				lines = lines[len(lines)-40:]
			}
			t.Logf("--- %s log ---\n%s", comp, strings.Join(lines, "\n"))
		}
	})
	return p
}

// resourceField resolves a downward API resourceFieldRef as the kubelet
// does: the container's request or limit divided by the divisor, rounded up
// (250m CPU with divisor 1 is "1"). A limit that is not set would be the
// node's allocatable: the tests never rely on that.
func resourceField(t *testing.T, c corev1.Container, ref *corev1.ResourceFieldSelector) string {
	t.Helper()
	kind, res, _ := strings.Cut(ref.Resource, ".")
	list := c.Resources.Requests
	if kind == "limits" {
		list = c.Resources.Limits
	}
	q, ok := list[corev1.ResourceName(res)]
	if !ok {
		if kind == "requests" {
			return "0" // no request: the kubelet gives 0 (GOMAXPROCS=0 is ignored by Go)
		}
		t.Fatalf("%s: %s is not set: the kubelet would give the node's allocatable", c.Name, ref.Resource)
	}
	div := ref.Divisor
	if div.IsZero() {
		div = resource.MustParse("1")
	}
	if res == "cpu" {
		return strconv.FormatInt((q.MilliValue()+div.MilliValue()-1)/div.MilliValue(), 10)
	}
	return strconv.FormatInt((q.Value()+div.Value()-1)/div.Value(), 10)
}

func (p *proc) get(path string) (int, string, error) {
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get("http://" + p.admin + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func (p *proc) waitReady(t *testing.T, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, body, err := p.get("/readyz")
		if err == nil && code == want {
			return
		}
		select {
		case <-p.exited:
			t.Fatalf("%s exited: %v", p.name, p.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s /readyz: %d %q %v, want %d within %v", p.name, code, body, err, want, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRuntimeSemantics runs the gateway and ticketsvc as the chart
// configures them (the default values with small caps and a short drain)
// against a real NATS server, and shows what the chart's rollout settings
// rely on: readiness on the admin port, the soft cap turning a full pod
// unready while it keeps its sockets, the hard cap refusing with 1013, and
// on SIGTERM the readiness flip, 1012 closes spread over the drain window,
// and an exit well within terminationGracePeriodSeconds.
func TestRuntimeSemantics(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	r := typed(t, render(t, Profile{Name: "default"},
		"--set", "gateway.config.softMaxConnections=2",
		"--set", "gateway.config.hardMaxConnections=3",
		"--set", "gateway.drain.readinessDelaySeconds=1",
		"--set", "gateway.drain.windowSeconds=4",
	))
	gwDep, tsDep := r.component(t, "gateway"), r.component(t, "ticketsvc")
	gwC, tsC := gwDep.Spec.Template.Spec.Containers[0], tsDep.Spec.Template.Spec.Containers[0]

	ns, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)

	ts := startContainer(t, "ticketsvc", tsC, ns.ClientURL())
	gw := startContainer(t, "gateway", gwC, ns.ClientURL())
	ts.waitReady(t, http.StatusOK, 30*time.Second)
	gw.waitReady(t, http.StatusOK, 30*time.Second)

	// The scrape targets serve the metrics the HPA and the dashboards use.
	for _, c := range []struct {
		p    *proc
		want string
	}{{gw, "ocvr_gateway_connections "}, {gw, `ocvr_gateway_connection_limit{limit="soft"} 2`}, {ts, "ocvr_ticketsvc_"}} {
		code, body, err := c.p.get("/metrics")
		if err != nil || code != http.StatusOK || !strings.Contains(body, c.want) {
			t.Errorf("%s /metrics: %d %v, want a line with %q", c.p.name, code, err, c.want)
		}
	}

	// The Go runtime follows the CPU request (250m: GOMAXPROCS 1, and so
	// one socket writer), not the machine's cores; without the chart's
	// GOMAXPROCS it would be runtime.NumCPU(). The memory limit comes from
	// the cgroup (pkg/goruntime; its unit test covers the arithmetic).
	for _, c := range []struct {
		p *proc
		c corev1.Container
	}{{gw, gwC}, {ts, tsC}} {
		want := resourceField(t, c.c, &corev1.ResourceFieldSelector{Resource: "requests.cpu", Divisor: resource.MustParse("1")})
		_, body, _ := c.p.get("/metrics")
		if !regexp.MustCompile(`(?m)^go_sched_gomaxprocs_threads ` + want + `$`).MatchString(body) {
			t.Errorf("%s: go_sched_gomaxprocs_threads is not %s (the CPU request rounded up): %q", c.p.name, want,
				regexp.MustCompile(`(?m)^go_sched_gomaxprocs_threads .*$`).FindString(body))
		}
	}

	// A session, as the platform's auth would create it.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sessBucket, _ := env(gwC, "OCVR_SESSIONS_BUCKET")
	nc, err := bus.Connect(bus.Config{URLs: []string{ns.ClientURL()}, Name: "charttest"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	prefix, _ := env(gwC, "OCVR_SUBJECT_PREFIX")
	subjects, err := bus.NewSubjects(prefix)
	if err != nil {
		t.Fatal(err)
	}
	sessions, err := session.Open(ctx, nc, sessBucket, bus.NewPublisher(nc, subjects))
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := sessions.Create(ctx, 1, "Alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ticketURL, wsURL := "http://"+ts.public, "ws://"+gw.public+"/v1/ws"
	connect := func() (*client.Conn, error) {
		return client.Connect(ctx, ticketURL, wsURL, token, client.Options{Heartbeat: -1})
	}

	// Soft cap (2): the second socket makes the pod unready; the sockets stay.
	c1, err := connect()
	if err != nil {
		t.Fatal(err)
	}
	gw.waitReady(t, http.StatusOK, 2*time.Second)
	c2, err := connect()
	if err != nil {
		t.Fatal(err)
	}
	gw.waitReady(t, http.StatusServiceUnavailable, 2*time.Second)
	// Unready only steers new clients away: a client that still reaches the
	// pod is served up to the hard cap (3), then refused with 1013.
	c3, err := connect()
	if err != nil {
		t.Fatalf("third connection (under the hard cap): %v", err)
	}
	_, err = connect()
	var ce *client.CloseError
	if !errors.As(err, &ce) || ce.Code != 1013 {
		t.Fatalf("fourth connection (at the hard cap): %v, want a close with 1013", err)
	}
	// Below the soft cap again, the pod is ready again.
	_ = c3.Close()
	_ = c2.Close()
	gw.waitReady(t, http.StatusOK, 3*time.Second)
	c2, err = connect()
	if err != nil {
		t.Fatal(err)
	}

	// Drain: SIGTERM as the kubelet sends it after the preStop hook.
	readinessDelay := time.Duration(seconds(t, mustEnv(t, gwC, "OCVR_READINESS_DELAY"))) * time.Second
	window := time.Duration(seconds(t, mustEnv(t, gwC, "OCVR_DRAIN_WINDOW"))) * time.Second
	grace := time.Duration(*gwDep.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	preStop := time.Duration(0)
	if lc := gwC.Lifecycle; lc != nil && lc.PreStop != nil && lc.PreStop.Sleep != nil {
		preStop = time.Duration(lc.PreStop.Sleep.Seconds) * time.Second
	}
	type closed struct {
		at   time.Time
		code int
	}
	closes := make(chan closed, 2)
	for _, c := range []*client.Conn{c1, c2} {
		go func(c *client.Conn) {
			<-c.Done()
			code := 0
			if errors.As(c.Err(), &ce) {
				code = ce.Code
			}
			closes <- closed{time.Now(), code}
		}(c)
	}
	sigterm := time.Now()
	if err := gw.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The pod is at its soft cap (2 sockets), so /readyz already fails for
	// that reason: wait for the reason to become draining (the signal is
	// handled asynchronously).
	var body string
	for deadline := time.Now().Add(3 * time.Second); ; {
		var code int
		code, body, _ = gw.get("/readyz")
		if code == http.StatusServiceUnavailable && strings.Contains(body, "draining") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz after SIGTERM: %d %q, want 503 with the reason draining", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	unready := time.Now()
	// New sockets are refused at once (the load balancer sends them elsewhere).
	if tk, err := client.GetTicket(ctx, nil, ticketURL, token); err == nil {
		if _, err := client.Dial(ctx, wsURL, tk, client.Options{}); err == nil || !strings.Contains(err.Error(), "503") {
			t.Errorf("upgrade while draining: %v, want HTTP 503", err)
		}
	}
	for i := 0; i < 2; i++ {
		select {
		case c := <-closes:
			at := c.at.Sub(sigterm)
			if c.code != 1012 {
				t.Errorf("socket closed with %d while draining, want 1012", c.code)
			}
			if !c.at.After(unready) {
				t.Errorf("a socket was closed before /readyz failed")
			}
			if at < readinessDelay-100*time.Millisecond || at > readinessDelay+window+5*time.Second {
				t.Errorf("socket closed %v after SIGTERM, want between the readiness delay %v and delay + window %v", at, readinessDelay, readinessDelay+window)
			}
		case <-time.After(readinessDelay + window + 10*time.Second):
			t.Fatal("sockets not closed after the drain window")
		}
	}
	select {
	case <-gw.exited:
		took := gw.exitedAt.Sub(sigterm)
		if took+preStop >= grace {
			t.Errorf("gateway exited %v after SIGTERM; with the %v preStop that reaches terminationGracePeriodSeconds %v", took, preStop, grace)
		}
		if gw.err != nil {
			t.Errorf("gateway exit: %v", gw.err)
		}
		t.Logf("gateway: SIGTERM → exit in %v (grace %v, preStop %v)", took.Round(10*time.Millisecond), grace, preStop)
	case <-time.After(grace):
		t.Fatalf("gateway still running %v after SIGTERM", grace)
	}

	// ticketsvc: stops at once, in-flight requests get their timeout.
	tsGrace := time.Duration(*tsDep.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	sigterm = time.Now()
	_ = ts.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ts.exited:
		if ts.err != nil {
			t.Errorf("ticketsvc exit: %v", ts.err)
		}
		t.Logf("ticketsvc: SIGTERM → exit in %v (grace %v)", time.Since(sigterm).Round(10*time.Millisecond), tsGrace)
	case <-time.After(tsGrace):
		t.Fatalf("ticketsvc still running %v after SIGTERM", tsGrace)
	}
	// The pods ran as the image's user from a read-only-friendly image:
	// nothing was written outside the log.
	if b := binaries(t)["gateway"]; b.rootfs != "" {
		checkUnchanged(t, b.rootfs)
	}
}

func mustEnv(t *testing.T, c corev1.Container, name string) string {
	t.Helper()
	v, ok := env(c, name)
	if !ok {
		t.Fatalf("%s: %s not set", c.Name, name)
	}
	return v
}

// checkUnchanged: the image's user cannot have written into the root
// filesystem except its home and /tmp, which hold nothing afterwards.
func checkUnchanged(t *testing.T, rootfs string) {
	t.Helper()
	for _, d := range []string{"tmp", "home/nonroot"} {
		entries, err := os.ReadDir(filepath.Join(rootfs, d))
		if err != nil {
			t.Errorf("%s: %v", d, err)
			continue
		}
		for _, e := range entries {
			t.Errorf("the service wrote /%s/%s: a read-only root filesystem would have refused it", d, e.Name())
		}
	}
}

// TestChartCoversEveryFlag: every setting of the binaries (`--help`) can be
// set through the chart's values: the union of what the profiles render
// holds each OCVR_* variable. A new flag fails here until the chart exposes
// it (gateway.config / ticketsvc.config, values.schema.json, the template).
func TestChartCoversEveryFlag(t *testing.T) {
	rendered := map[string]map[string]bool{"gateway": {}, "ticketsvc": {}}
	for _, p := range profiles(t) {
		r := typed(t, render(t, p))
		for comp := range rendered {
			for _, e := range r.component(t, comp).Spec.Template.Spec.Containers[0].Env {
				rendered[comp][e.Name] = true
			}
		}
	}
	for comp, got := range rendered {
		for name := range flagInfo(t, comp) {
			if !got[name] {
				t.Errorf("%s: no profile sets %s: expose the flag in the chart's %s.config values", comp, name, comp)
			}
		}
	}
}
