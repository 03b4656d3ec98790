package clustertest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is one gateway or ticketsvc process.
type Process struct {
	Name   string
	Public string // host:port of the public listener
	Admin  string // host:port of the admin listener

	bin     string
	args    []string
	argsFor func(*Process) []string // the arguments for p's ports
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// WSURL is the socket URL of a gateway.
func (p *Process) WSURL() string { return "ws://" + p.Public + "/v1/ws" }

// Start starts the process (again, after Stop or Kill).
func (p *Process) Start() error {
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	return nil
}

// exited reports whether the process has ended.
func (p *Process) exited() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// Pid is the process id (0 when not running).
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil {
		return errors.New("not started")
	}
	return cmd.Process.Signal(sig)
}

// Wait waits for the process to exit, up to d.
func (p *Process) Wait(d time.Duration) error {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-time.After(d):
		return fmt.Errorf("%s still running after %v", p.Name, d)
	}
}

// Stop sends SIGTERM and waits up to d for a clean exit.
func (p *Process) Stop(d time.Duration) error {
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	return p.Wait(d)
}

// Kill sends SIGKILL and waits.
func (p *Process) Kill() {
	if p.Signal(syscall.SIGKILL) == nil {
		_ = p.Wait(10 * time.Second)
	}
}

// Restart starts a stopped process again and waits until it is ready.
func (p *Process) Restart(ready time.Duration) error {
	if err := p.Start(); err != nil {
		return err
	}
	return p.WaitReady(ready)
}

// WaitReady polls /readyz until it answers 200.
func (p *Process) WaitReady(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		ok, _ := p.Ready()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v; log:\n%s", p.Name, d, p.Tail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Ready reports whether /readyz answers 200.
func (p *Process) Ready() (bool, error) {
	resp, err := http.Get("http://" + p.Admin + "/readyz")
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK, nil
}

// Metric returns the value of an unlabelled metric (or the sum over all
// label sets when labels is empty and the metric has labels) from /metrics;
// labels like `code="4009"` select one series.
func (p *Process) Metric(name string, labels ...string) (float64, error) {
	resp, err := http.Get("http://" + p.Admin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	found := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		series, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		metric, lbls, _ := strings.Cut(series, "{")
		if metric != name {
			continue
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(lbls, l) {
				match = false
			}
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		sum += v
		found = true
	}
	if !found {
		return 0, fmt.Errorf("metric %s%v not found", name, labels)
	}
	return sum, nil
}

// Tail returns the last n lines of the process log.
func (p *Process) Tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Log returns the whole process log.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}
