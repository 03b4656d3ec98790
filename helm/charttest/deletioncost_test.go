package charttest

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
)

// TestPodDeletionCostRBAC: with gateway.podDeletionCost (the default) the
// gateway pods mount their service account token, know their namespace
// from the downward API, and the chart grants that account exactly patch
// on pods in the release namespace; turned off, no token, no Role, and the
// gateway is told so. ticketsvc never gets a token.
func TestPodDeletionCostRBAC(t *testing.T) {
	cases := []struct {
		name    string
		set     []string
		enabled bool
	}{
		{"default", nil, true},
		{"off", []string{"--set", "gateway.podDeletionCost.enabled=false"}, false},
		{"existing service account", []string{"--set", "serviceAccount.create=false", "--set", "serviceAccount.name=platform-sa"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := typed(t, render(t, Profile{Name: "default"}, tc.set...))
			gw := r.component(t, "gateway").Spec.Template.Spec
			ts := r.component(t, "ticketsvc").Spec.Template.Spec
			mounted := func(ps corev1.PodSpec) bool {
				return ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken
			}
			if mounted(ts) {
				t.Error("ticketsvc mounts the service account token")
			}
			if mounted(gw) != tc.enabled {
				t.Errorf("gateway token mounted: %v, want %v", mounted(gw), tc.enabled)
			}
			c := gw.Containers[0]
			if v, _ := env(c, "OCVR_NO_POD_DELETION_COST"); v != map[bool]string{true: "false", false: "true"}[tc.enabled] {
				t.Errorf("OCVR_NO_POD_DELETION_COST=%q with enabled=%v", v, tc.enabled)
			}
			var ns *corev1.EnvVar
			for i := range c.Env {
				if c.Env[i].Name == "OCVR_POD_NAMESPACE" {
					ns = &c.Env[i]
				}
			}
			if ns == nil || ns.ValueFrom == nil || ns.ValueFrom.FieldRef == nil || ns.ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
				t.Errorf("OCVR_POD_NAMESPACE is not the downward API's metadata.namespace: %+v", ns)
			}
			if !tc.enabled {
				if len(r.Roles)+len(r.RoleBindings) != 0 {
					t.Errorf("deletion cost off, yet %d Roles and %d RoleBindings", len(r.Roles), len(r.RoleBindings))
				}
				return
			}
			if len(r.Roles) != 1 || len(r.RoleBindings) != 1 {
				t.Fatalf("%d Roles and %d RoleBindings, want one each", len(r.Roles), len(r.RoleBindings))
			}
			for _, role := range r.Roles {
				if role.Namespace != Namespace || len(role.Rules) != 1 {
					t.Fatalf("Role %s in %q: %+v", role.Name, role.Namespace, role.Rules)
				}
				rule := role.Rules[0]
				if len(rule.APIGroups) != 1 || rule.APIGroups[0] != "" || len(rule.Resources) != 1 || rule.Resources[0] != "pods" ||
					len(rule.Verbs) != 1 || rule.Verbs[0] != "patch" || len(rule.ResourceNames) != 0 {
					t.Errorf("Role %s grants %+v, want exactly patch on pods", role.Name, rule)
				}
				for _, rb := range r.RoleBindings {
					if rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != role.Name || len(rb.Subjects) != 1 {
						t.Fatalf("RoleBinding %s: %+v → %+v", rb.Name, rb.Subjects, rb.RoleRef)
					}
					if s := rb.Subjects[0]; s.Kind != "ServiceAccount" || s.Name != gw.ServiceAccountName || s.Namespace != Namespace {
						t.Errorf("RoleBinding %s binds %+v, want the gateway's service account %s/%s", rb.Name, s, Namespace, gw.ServiceAccountName)
					}
				}
			}
		})
	}
}

// TestPodDeletionCostRefusesDefaultAccount: without a service account of
// its own the release would grant patch on pods to the namespace's default
// account, which every pod without one uses: helm refuses, saying why.
func TestPodDeletionCostRefusesDefaultAccount(t *testing.T) {
	_, stderr, err := renderRaw(t, Profile{Name: "default"}, "--set", "serviceAccount.create=false")
	if err == nil || !strings.Contains(stderr, "podDeletionCost") || !strings.Contains(stderr, "default account") {
		t.Errorf("rendered with the default account bound to patch pods: err %v\n%s", err, stderr)
	}
	if _, stderr, err := renderRaw(t, Profile{Name: "default"}, "--set", "serviceAccount.create=false", "--set", "gateway.podDeletionCost.enabled=false"); err != nil {
		t.Errorf("deletion cost off, default account: %v\n%s", err, stderr)
	}
}

// TestGatewayPDBAllowsUnhealthyEviction: by default an unready gateway (at
// its soft cap) can be evicted; IfHealthyBudget would let one full pod
// refuse every node drain.
func TestGatewayPDBAllowsUnhealthyEviction(t *testing.T) {
	r := typed(t, render(t, Profile{Name: "default"}))
	for _, pdb := range r.PDBs {
		if pdb.Spec.Selector.MatchLabels["app.kubernetes.io/component"] != "gateway" {
			continue
		}
		if p := pdb.Spec.UnhealthyPodEvictionPolicy; p == nil || *p != policyv1.AlwaysAllow {
			t.Errorf("gateway PDB %s: unhealthyPodEvictionPolicy %v, want AlwaysAllow", pdb.Name, p)
		}
		return
	}
	t.Fatal("no gateway PodDisruptionBudget rendered")
}
