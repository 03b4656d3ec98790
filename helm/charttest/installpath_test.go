package charttest

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocvr/realtime/pkg/natsembed"
	"github.com/ocvr/realtime/pkg/provision"
)

var (
	ocvrctlOnce sync.Once
	ocvrctlPath string
	ocvrctlErr  error
)

// ocvrctl is the ocvrctl binary README.md's steps run (make build).
func ocvrctl(t *testing.T) string {
	t.Helper()
	ocvrctlOnce.Do(func() {
		dir, err := os.MkdirTemp("", "charttest-ocvrctl-")
		if err != nil {
			ocvrctlErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./pkg/cmd/ocvrctl")
		cmd.Dir = root(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK="+filepath.Join(root(t), "go.work"))
		if out, err := cmd.CombinedOutput(); err != nil {
			ocvrctlErr = &exec.Error{Name: "go build ocvrctl: " + string(out), Err: err}
			return
		}
		ocvrctlPath = filepath.Join(dir, "ocvrctl")
	})
	if ocvrctlErr != nil {
		t.Fatal(ocvrctlErr)
	}
	return ocvrctlPath
}

// violation finds a NATS permission violation in a log.
var violation = regexp.MustCompile(`(?i)permissions? (violation|missing)[^\n]*`)

// TestInstallPath follows README.md "From an empty cluster to an
// autoscaled, scraped deployment" without a cluster, with the real parts:
// step 2's NATS (mutual TLS from one CA, operator-mode JWT accounts, a
// user per role with exactly provision.Grants) and its Secrets (the
// client certificate and one .creds per role, under the names README.md
// creates); step 2b's `ocvrctl setup` as the admin user; step 4's release
// (the production profile, as rendered) run as processes with those
// Secrets mounted where its pods mount them; step 5's `helm test` pod. The
// release must come up ready and the helm test pass with no permission
// violation in any log.
func TestInstallPath(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	// Step 4's values. One NATS server here: the stream's replicas are left
	// to the server (the profile pins 3 for the 3-node cluster of step 2).
	production := Profile{Name: "production", Files: []string{"helm/ocvr-realtime/profiles/production.yaml"}}
	r := typed(t, render(t, production, "--set", "gateway.continuity.replicas=0"))
	gwDep, tsDep := r.component(t, "gateway"), r.component(t, "ticketsvc")
	gwC, tsC := gwDep.Spec.Template.Spec.Containers[0], tsDep.Spec.Template.Spec.Containers[0]
	names := provision.Names{
		Prefix: mustEnv(t, gwC, "OCVR_SUBJECT_PREFIX"), Stream: mustEnv(t, gwC, "OCVR_STREAM_NAME"),
		Sessions: mustEnv(t, gwC, "OCVR_SESSIONS_BUCKET"), Tickets: mustEnv(t, gwC, "OCVR_TICKETS_BUCKET"),
		Channels: mustEnv(t, gwC, "OCVR_CHANNELS_BUCKET"), Members: mustEnv(t, gwC, "OCVR_MEMBERS_BUCKET"),
		Friends: mustEnv(t, gwC, "OCVR_FRIENDS_BUCKET"), Presence: mustEnv(t, gwC, "OCVR_PRESENCE_BUCKET"),
		Typing: mustEnv(t, gwC, "OCVR_TYPING_BUCKET"),
	}
	if u := mustEnv(t, gwC, "OCVR_NATS_URL"); !strings.HasPrefix(u, "tls://") {
		t.Errorf("the production profile connects to %s, want tls://", u)
	}

	// Step 2: NATS, and the Secrets in the release namespace.
	sn := newSecuredNATS(t)
	ns, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), TLS: sn.serverTLS, Configure: sn.configure})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	natsURL := "tls://" + strings.TrimPrefix(ns.ClientURL(), "nats://")
	secrets := Secrets{
		"ocvr-nats-client-tls": sn.clientTLS,
		"ocvr-nats-gateway":    {"nats.creds": sn.creds(t, provision.RoleGateway, names)},
		"ocvr-nats-ticketsvc":  {"nats.creds": sn.creds(t, provision.RoleTicketsvc, names)},
		"ocvr-nats-backend":    {"nats.creds": sn.creds(t, provision.RoleBackend, names)},
	}

	// Step 2b: ocvrctl setup with the admin user's credentials.
	dir := t.TempDir()
	files := map[string][]byte{"admin.creds": sn.creds(t, provision.RoleAdmin, names)}
	for k, v := range sn.clientTLS {
		files[k] = v
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	setup := exec.Command(ocvrctl(t), "setup")
	setup.Env = []string{"OCVR_NATS_URL=" + natsURL, "OCVR_NATS_CREDS=" + filepath.Join(dir, "admin.creds"),
		"OCVR_NATS_TLS_CA=" + filepath.Join(dir, "ca.crt"), "OCVR_NATS_TLS_CERT=" + filepath.Join(dir, "tls.crt"),
		"OCVR_NATS_TLS_KEY=" + filepath.Join(dir, "tls.key")}
	out, err := setup.CombinedOutput()
	if err != nil || violation.Match(out) {
		t.Fatalf("ocvrctl setup: %v\n%s", err, out)
	}
	t.Logf("ocvrctl setup:\n%s", strings.TrimSpace(string(out)))

	// Step 4: the release's pods, with the Secrets where they mount them.
	ts := startMounted(t, "ticketsvc", tsC, tsDep.Spec.Template.Spec.Volumes, secrets, natsURL)
	gw := startMounted(t, "gateway", gwC, gwDep.Spec.Template.Spec.Volumes, secrets, natsURL)
	ts.waitReady(t, http.StatusOK, 30*time.Second)
	gw.waitReady(t, http.StatusOK, 30*time.Second)

	// Step 5: helm test.
	code, res := runTestPod(t, r, testPod(t, r), ts, gw, natsURL, secrets)
	if code != 0 || !strings.Contains(res, "passed") {
		t.Fatalf("helm test: exit %d\n%s", code, res)
	}
	t.Logf("helm test: %s", strings.TrimSpace(res))
	if m := violation.FindString(res); m != "" {
		t.Errorf("helm test: %s", m)
	}
	for _, p := range []*proc{ts, gw} {
		b, _ := os.ReadFile(p.log)
		if m := violation.Find(b); m != nil {
			t.Errorf("%s: %s", p.name, m)
		}
	}
}
