package provision_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/ocvr/realtime/pkg/provision"
)

var roles = []provision.Role{provision.RoleGateway, provision.RoleTicketsvc, provision.RoleBackend, provision.RoleAdmin}

// TestGrantsDocumented: deploy/README.md shows each role's permissions
// block exactly as provision.Grants makes it, the sets TestNATSSecurity
// runs the services with.
func TestGrantsDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range roles {
		if block := provision.Grants(r, provision.Names{}).Config(); !strings.Contains(string(b), "```text\n"+block+"```") {
			t.Errorf("deploy/README.md lacks the %s block:\n%s", r, block)
		}
	}
}

// TestGrantConfigParses: each block is a valid nats-server user
// permissions block, with the subjects of the grant.
func TestGrantConfigParses(t *testing.T) {
	for _, r := range roles {
		t.Run(string(r), func(t *testing.T) {
			g := provision.Grants(r, provision.Names{Prefix: "staging", Stream: "STAGING_EVENTS", Tickets: "st_tickets"})
			if len(g.Publish) == 0 || len(g.Subscribe) == 0 {
				t.Fatal("empty grant")
			}
			for _, s := range append(slices.Clone(g.Publish), g.Subscribe...) {
				if strings.Contains(s, "ocvr.") || strings.Contains(s, "OCVR_EVENTS") || strings.Contains(s, "ocvr_tickets") {
					t.Errorf("%s: subject %q ignores the environment's names", r, s)
				}
			}
			conf := filepath.Join(t.TempDir(), "nats.conf")
			indented := strings.ReplaceAll(g.Config(), "\n", "\n    ")
			if err := os.WriteFile(conf, []byte("authorization {\n  users = [\n    {user: u, password: p, "+indented+"}\n  ]\n}\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			o, err := server.ProcessConfigFile(conf)
			if err != nil {
				t.Fatalf("nats-server rejects the block: %v\n%s", err, g.Config())
			}
			p := o.Users[0].Permissions
			if !slices.Equal(p.Publish.Allow, g.Publish) || !slices.Equal(p.Subscribe.Allow, g.Subscribe) || (p.Response != nil) != g.Responses {
				t.Errorf("parsed permissions %+v differ from the grant", p)
			}
		})
	}
}

// TestGrantsInDomain: across a leafnode, every JetStream API and KV write
// subject carries the hub's domain; the rest is unchanged.
func TestGrantsInDomain(t *testing.T) {
	for _, r := range roles {
		local, leaf := provision.Grants(r, provision.Names{}), provision.Grants(r, provision.Names{Domain: "hub"})
		if len(local.Publish) != len(leaf.Publish) || !slices.Equal(local.Subscribe, leaf.Subscribe) {
			t.Fatalf("%s: the domain changed more than the publish subjects", r)
		}
		for i, s := range leaf.Publish {
			want := local.Publish[i]
			switch {
			case strings.HasPrefix(want, "$JS.API."):
				want = "$JS.hub.API." + strings.TrimPrefix(want, "$JS.API.")
			case strings.HasPrefix(want, "$KV."):
				want = "$JS.hub.API." + want
			}
			if s != want {
				t.Errorf("%s: %q in domain hub is %q, want %q", r, local.Publish[i], s, want)
			}
		}
	}
}
