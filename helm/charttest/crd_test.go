package charttest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

// The projects that own the custom resources the chart renders; their CRDs
// come from these Go modules (the same versions scripts/tools.sh installs
// into the API server).
var crdSources = []struct{ module, dir string }{
	{"github.com/prometheus-operator/prometheus-operator@v0.85.0", "example/prometheus-operator-crd"},
	{"github.com/kedacore/keda/v2@v2.21.0", "config/crd/bases"},
	// HTTPRoute (httpRoute.enabled); scripts/ci/crds-gateway-api.sh installs
	// the same into the API server.
	{"sigs.k8s.io/gateway-api@v1.6.3", "config/crd/standard"},
}

var (
	crdOnce    sync.Once
	crdSchemas map[schema.GroupVersionKind]*jsonschema.Schema
	crdErr     error
)

// crdDirs lists the CRD directories: $OCVR_CRDS if set (one directory),
// else the modules' directories in the module cache (downloaded if needed).
func crdDirs() ([]string, error) {
	if d := os.Getenv("OCVR_CRDS"); d != "" {
		return []string{d}, nil
	}
	tmp, err := os.MkdirTemp("", "crd-mod-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	var dirs []string
	for _, s := range crdSources {
		cmd := exec.Command("go", "mod", "download", "-json", s.module)
		cmd.Dir = tmp
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("go mod download %s: %v\n%s", s.module, err, out)
		}
		var info struct{ Dir, Error string }
		if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
			return nil, fmt.Errorf("go mod download %s: %s %v", s.module, info.Error, err)
		}
		dirs = append(dirs, filepath.Join(info.Dir, s.dir))
	}
	return dirs, nil
}

// crdValidator returns the JSON schema of a custom resource kind, built from
// its CRD's openAPIV3Schema, made strict like the API server's field
// validation: an object with declared properties accepts no other field
// unless it preserves unknown fields.
func crdValidator(t testing.TB, gvk schema.GroupVersionKind) *jsonschema.Schema {
	t.Helper()
	crdOnce.Do(func() { crdSchemas, crdErr = loadCRDs() })
	if crdErr != nil {
		t.Fatal(crdErr)
	}
	s := crdSchemas[gvk]
	if s == nil {
		t.Fatalf("no CRD serves %s (known: %d kinds)", gvk, len(crdSchemas))
	}
	return s
}

func loadCRDs() (map[schema.GroupVersionKind]*jsonschema.Schema, error) {
	dirs, err := crdDirs()
	if err != nil {
		return nil, err
	}
	out := map[schema.GroupVersionKind]*jsonschema.Schema{}
	for _, dir := range dirs {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			for _, doc := range docSep.Split(string(b), -1) {
				var crd struct {
					Kind string `json:"kind"`
					Spec struct {
						Group string `json:"group"`
						Names struct {
							Kind string `json:"kind"`
						} `json:"names"`
						Versions []struct {
							Name   string `json:"name"`
							Served bool   `json:"served"`
							Schema struct {
								OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
							} `json:"schema"`
						} `json:"versions"`
					} `json:"spec"`
				}
				if err := yaml.Unmarshal([]byte(doc), &crd); err != nil || crd.Kind != "CustomResourceDefinition" {
					continue
				}
				for _, v := range crd.Spec.Versions {
					if !v.Served || v.Schema.OpenAPIV3Schema == nil {
						continue
					}
					gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: v.Name, Kind: crd.Spec.Names.Kind}
					js := toJSONSchema(v.Schema.OpenAPIV3Schema)
					c := jsonschema.NewCompiler()
					url := "crd://" + gvk.String()
					if err := c.AddResource(url, js); err != nil {
						return nil, fmt.Errorf("%s: %w", gvk, err)
					}
					sch, err := c.Compile(url)
					if err != nil {
						return nil, fmt.Errorf("%s: %w", gvk, err)
					}
					out[gvk] = sch
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no CRDs found in %v", dirs)
	}
	return out, nil
}

// toJSONSchema turns a structural OpenAPI v3 schema into a strict JSON
// schema: nullable and int-or-string become type unions, objects with
// properties reject unknown fields unless x-kubernetes-preserve-unknown-fields.
func toJSONSchema(v any) any {
	switch s := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, val := range s {
			switch k {
			case "format", "nullable", "x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields",
				"x-kubernetes-validations", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
				"x-kubernetes-map-type", "x-kubernetes-embedded-resource":
				continue
			case "properties", "patternProperties", "definitions":
				props := map[string]any{}
				for pk, pv := range val.(map[string]any) {
					props[pk] = toJSONSchema(pv)
				}
				out[k] = props
			default:
				out[k] = toJSONSchema(val)
			}
		}
		if s["x-kubernetes-int-or-string"] == true {
			delete(out, "type")
			if _, ok := out["anyOf"]; !ok {
				out["anyOf"] = []any{map[string]any{"type": "integer"}, map[string]any{"type": "string"}}
			}
		}
		if s["nullable"] == true {
			if ty, ok := out["type"].(string); ok {
				out["type"] = []any{ty, "null"}
			}
		}
		if _, hasProps := s["properties"]; hasProps && s["x-kubernetes-preserve-unknown-fields"] != true {
			if _, ok := s["additionalProperties"]; !ok {
				out["additionalProperties"] = false
			}
		}
		return out
	case []any:
		out := make([]any, len(s))
		for i, e := range s {
			out[i] = toJSONSchema(e)
		}
		return out
	default:
		return v
	}
}

// validateCustom checks a custom resource against its CRD.
func validateCustom(t testing.TB, o Object) error {
	t.Helper()
	sch := crdValidator(t, o.U.GroupVersionKind())
	// JSON round trip: the validator wants JSON types (float64, []any…).
	b, err := json.Marshal(o.U.Object)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(string(b)))
	if err != nil {
		return err
	}
	return sch.Validate(inst)
}

// TestValidationIsStrict: the checks of TestRender do catch misspelt fields,
// in built-in kinds (strict decoding) and in custom resources (CRD schemas).
func TestValidationIsStrict(t *testing.T) {
	cases := []struct{ name, doc string }{
		{"Deployment", `apiVersion: apps/v1
kind: Deployment
metadata: {name: x, namespace: ocvr}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      terminationGracePeriod: 30
      containers: [{name: c, image: i}]
`},
		{"Service", `apiVersion: v1
kind: Service
metadata: {name: x, namespace: ocvr}
spec: {ports: [{name: a, port: 80, targetport: a}]}
`},
		{"HorizontalPodAutoscaler", `apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: x, namespace: ocvr}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: x}
  maxReplicas: 3
  behaviour: {}
`},
		{"ServiceMonitor", `apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: x, namespace: ocvr}
spec:
  selector: {matchLabels: {a: b}}
  endpoints: [{port: admin, scrapeInterval: 15s}]
`},
		{"ScaledObject", `apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: x, namespace: ocvr}
spec:
  scaleTargetRef: {name: x}
  minReplicaCount: "three"
  triggers: [{type: prometheus, metadata: {query: q}}]
`},
		{"PrometheusRule", `apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: x, namespace: ocvr}
spec:
  groups: [{name: g, rules: [{alert: A, expression: up == 0}]}]
`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			objs := splitObjects(t, c.doc)
			if len(objs) != 1 {
				t.Fatal("bad test document")
			}
			_, builtin, err := decodeStrict(objs[0])
			if !builtin {
				err = validateCustom(t, objs[0])
			}
			if err == nil {
				t.Errorf("%s with a misspelt or mistyped field was accepted", c.name)
			} else {
				t.Logf("rejected: %v", err)
			}
		})
	}
}
