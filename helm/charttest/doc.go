// Package charttest tests the Helm chart in helm/ocvr-realtime: helm lint,
// helm template of the default values and of every profile, strict decoding
// of every rendered object into the k8s.io/api types (unknown fields fail)
// and of the custom resources against their CRDs' schemas, the consistency
// of the objects with each other, the values schema, the monitoring objects
// taken from deploy/, and the rendered configuration run by the real
// binaries (from the images when scripts/test-chart.sh provides them).
//
// Run it with scripts/test-chart.sh, which builds (once) and caches helm
// and passes the images; `go test ./helm/charttest/...` works too.
package charttest
