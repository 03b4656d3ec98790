module github.com/ocvr/realtime/deploy/deploytest

go 1.26.8

replace github.com/ocvr/realtime/pkg => ../../pkg

require (
	github.com/grafana/grafana-foundation-sdk/go v0.0.22
	github.com/ocvr/realtime/pkg v0.0.0-00010101000000-000000000000
	github.com/prometheus/prometheus v0.315.1
	go.yaml.in/yaml/v3 v3.0.4
)
