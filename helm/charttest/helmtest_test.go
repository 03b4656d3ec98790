package charttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ocvr/realtime/pkg/bus"
	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/session"
)

// testPod is the release's one helm test pod.
func testPod(t *testing.T, r *Rendered) *corev1.Pod {
	t.Helper()
	if len(r.TestPods) != 1 {
		t.Fatalf("want one helm test pod, got %d", len(r.TestPods))
	}
	for _, p := range r.TestPods {
		return p
	}
	return nil
}

// serviceURL checks that a helm test argument names a rendered Service by
// its cluster DNS name and port (scheme://<name>.<namespace>.svc:<port>…)
// and returns the URL with that host replaced by addr.
func serviceURL(t *testing.T, r *Rendered, arg, scheme, path, addr string) string {
	t.Helper()
	rest, ok := strings.CutPrefix(arg, scheme+"://")
	if !ok {
		t.Fatalf("helm test argument %q: want %s://…", arg, scheme)
	}
	hostport, p, _ := strings.Cut(rest, "/")
	host, port, _ := strings.Cut(hostport, ":")
	name, ok := strings.CutSuffix(host, "."+Namespace+".svc")
	svc := r.Services[name]
	if !ok || svc == nil {
		t.Fatalf("helm test argument %q does not name a Service of the release", arg)
	}
	if port != fmt.Sprint(svc.Spec.Ports[0].Port) {
		t.Errorf("helm test argument %q: Service %s listens on %d", arg, name, svc.Spec.Ports[0].Port)
	}
	if "/"+p != path && !(p == "" && path == "") {
		t.Errorf("helm test argument %q: path /%s, want %s", arg, p, path)
	}
	return scheme + "://" + addr + path
}

// TestHelmTestPod: the chart's `helm test` pod, run as its container runs
// (the gateway image's binary, the rendered arguments and environment;
// the Services' URLs pointed at processes started from the rendered
// Deployments), passes against a working release — a session created, a
// ticket from ticketsvc, a socket to the gateway, the session revoked
// afterwards — and fails, naming the step, when ticketsvc is down.
func TestHelmTestPod(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	r := typed(t, render(t, Profile{Name: "default"}))
	pod := testPod(t, r)
	if pod.Spec.RestartPolicy != corev1.RestartPolicyNever || len(pod.Spec.Containers) != 1 {
		t.Fatalf("helm test pod: restartPolicy %s, %d containers", pod.Spec.RestartPolicy, len(pod.Spec.Containers))
	}
	pc := pod.Spec.Containers[0]
	gwC := r.component(t, "gateway").Spec.Template.Spec.Containers[0]
	if pc.Image != gwC.Image {
		t.Errorf("helm test image %s, want the gateway's %s", pc.Image, gwC.Image)
	}

	ns, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	ts := startContainer(t, "ticketsvc", r.component(t, "ticketsvc").Spec.Template.Spec.Containers[0], ns.ClientURL())
	gw := startContainer(t, "gateway", gwC, ns.ClientURL())
	ts.waitReady(t, http.StatusOK, 30*time.Second)
	gw.waitReady(t, http.StatusOK, 30*time.Second)

	run := func() (int, string) { return runTestPod(t, r, pod, ts, gw, ns.ClientURL(), nil) }
	userID := testPodUser(t, pod)

	code, out := run()
	if code != 0 || !strings.Contains(out, "passed") {
		t.Fatalf("helm test against a working release: exit %d\n%s", code, out)
	}
	t.Logf("helm test: %s", strings.TrimSpace(out))
	if strings.Contains(out, "sess_") || strings.Contains(out, "wst_") {
		t.Errorf("the helm test printed a session token or ticket:\n%s", out)
	}
	// It left no live session behind.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := bus.Connect(bus.Config{URLs: []string{ns.ClientURL()}, Name: "charttest"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	bucket, _ := env(gwC, "OCVR_SESSIONS_BUCKET")
	prefix, _ := env(gwC, "OCVR_SUBJECT_PREFIX")
	subjects, err := bus.NewSubjects(prefix)
	if err != nil {
		t.Fatal(err)
	}
	store, err := session.Open(ctx, nc, bucket, bus.NewPublisher(nc, subjects))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := store.RevokeAll(ctx, userID, "charttest", ""); err != nil || n != 0 {
		t.Errorf("after the helm test, user %d still had %d live sessions (%v)", userID, n, err)
	}

	// ticketsvc down: the test fails and says where.
	_ = ts.cmd.Process.Kill()
	<-ts.exited
	code, out = run()
	if code != 1 || !strings.Contains(out, "FAILED") || !strings.Contains(out, "ticket") {
		t.Errorf("helm test with ticketsvc down: exit %d, want 1 and a failure naming the ticket step:\n%s", code, out)
	}
}

// testPodUser is the --user of the helm test pod.
func testPodUser(t *testing.T, pod *corev1.Pod) int64 {
	t.Helper()
	for _, a := range pod.Spec.Containers[0].Args {
		if v, ok := strings.CutPrefix(a, "--user="); ok {
			var id int64
			if _, err := fmt.Sscan(v, &id); err == nil && id > 0 {
				return id
			}
		}
	}
	t.Fatalf("helm test arguments %q: no --user=ID", pod.Spec.Containers[0].Args)
	return 0
}

// runTestPod runs the helm test pod's container as the kubelet would (the
// gateway image's binary, its arguments and environment, its Secrets
// mounted), with the Services' URLs pointed at the processes ts and gw,
// and returns its exit code and output.
func runTestPod(t *testing.T, r *Rendered, pod *corev1.Pod, ts, gw *proc, natsURL string, secrets Secrets) (int, string) {
	t.Helper()
	pc := pod.Spec.Containers[0]
	var args []string
	for _, a := range pc.Args {
		switch {
		case strings.HasPrefix(a, "--ticketsvc-url="):
			a = "--ticketsvc-url=" + serviceURL(t, r, strings.TrimPrefix(a, "--ticketsvc-url="), "http", "", ts.public)
		case strings.HasPrefix(a, "--ws-url="):
			a = "--ws-url=" + serviceURL(t, r, strings.TrimPrefix(a, "--ws-url="), "ws", "/v1/ws", gw.public)
		}
		args = append(args, a)
	}
	if len(args) == 0 || args[0] != "selfcheck" {
		t.Fatalf("helm test arguments %q: want selfcheck …", pc.Args)
	}
	b := binaries(t)["gateway"]
	cmd := b.command(args...)
	paths := mountSecrets(t, b, pc, pod.Spec.Volumes, secrets)
	for _, e := range pc.Env {
		v := paths.rewrite(e.Value)
		if e.Name == "OCVR_NATS_URL" {
			v = natsURL
		} else if e.ValueFrom != nil {
			t.Fatalf("helm test env %s: cannot resolve", e.Name)
		}
		cmd.Env = append(cmd.Env, e.Name+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String()
	}
	t.Fatalf("run the helm test: %v", err)
	return 0, ""
}
