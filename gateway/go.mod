module github.com/ocvr/realtime/gateway

go 1.26.8

replace github.com/ocvr/realtime/pkg => ../pkg
