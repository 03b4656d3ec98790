package protocol_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ocvr/realtime/pkg/protocol"
)

// policyVectors is testdata/policy.json.
type policyVectors struct {
	MaxInvalidTickets int                      `json:"max_invalid_tickets"`
	CloseCodes        []protocol.CloseCodeInfo `json:"close_codes"`
	UnlistedClose     struct {
		Action   protocol.CloseAction `json:"action"`
		Examples []int                `json:"examples"`
	} `json:"unlisted_close_codes"`
	ErrorCodes    []protocol.ErrorCodeInfo `json:"error_codes"`
	UnlistedError struct {
		Retryable bool     `json:"retryable"`
		Examples  []string `json:"examples"`
	} `json:"unlisted_error_codes"`
}

func loadPolicy(t *testing.T) policyVectors {
	t.Helper()
	raw, err := os.ReadFile("testdata/policy.json")
	if err != nil {
		t.Fatal(err)
	}
	var v policyVectors
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("testdata/policy.json: %v", err)
	}
	return v
}

// TestPolicyVectors: testdata/policy.json, the SDKs' test vectors, is the
// Go policy as data, row for row, and CloseActionOf, ShouldReconnect and
// RetryableError answer every vector (unlisted codes included).
func TestPolicyVectors(t *testing.T) {
	v := loadPolicy(t)
	if v.MaxInvalidTickets != protocol.MaxInvalidTickets {
		t.Errorf("max_invalid_tickets = %d, want %d", v.MaxInvalidTickets, protocol.MaxInvalidTickets)
	}
	if !slices.Equal(v.CloseCodes, protocol.CloseCodes) {
		t.Errorf("close_codes = %+v\nwant (CloseCodes) %+v", v.CloseCodes, protocol.CloseCodes)
	}
	if !slices.Equal(v.ErrorCodes, protocol.ErrorCodeTable) {
		t.Errorf("error_codes = %+v\nwant (ErrorCodeTable) %+v", v.ErrorCodes, protocol.ErrorCodeTable)
	}
	for _, c := range v.CloseCodes {
		if got := protocol.CloseActionOf(c.Code); got != c.Action {
			t.Errorf("CloseActionOf(%d) = %s, want %s", c.Code, got, c.Action)
		}
		if got, want := protocol.ShouldReconnect(c.Code), c.Action == protocol.CloseActionReconnect; got != want {
			t.Errorf("ShouldReconnect(%d) = %v, want %v", c.Code, got, want)
		}
	}
	if v.UnlistedClose.Action != protocol.CloseActionReconnect || len(v.UnlistedClose.Examples) == 0 {
		t.Errorf("unlisted_close_codes = %+v, want action reconnect with examples", v.UnlistedClose)
	}
	for _, code := range v.UnlistedClose.Examples {
		if slices.ContainsFunc(protocol.CloseCodes, func(c protocol.CloseCodeInfo) bool { return c.Code == code }) {
			t.Errorf("unlisted example %d is listed", code)
		}
		if got := protocol.CloseActionOf(code); got != v.UnlistedClose.Action {
			t.Errorf("CloseActionOf(%d) = %s, want %s", code, got, v.UnlistedClose.Action)
		}
	}
	for _, e := range v.ErrorCodes {
		if got := protocol.RetryableError(e.Code); got != e.Retryable {
			t.Errorf("RetryableError(%s) = %v, want %v", e.Code, got, e.Retryable)
		}
	}
	for _, code := range v.UnlistedError.Examples {
		if got := protocol.RetryableError(code); got != v.UnlistedError.Retryable {
			t.Errorf("RetryableError(%q) = %v, want %v", code, got, v.UnlistedError.Retryable)
		}
	}
	var codes []string
	for _, e := range protocol.ErrorCodeTable {
		codes = append(codes, e.Code)
	}
	if !sameSet(codes, protocol.ErrorCodes) {
		t.Errorf("ErrorCodeTable covers %v, ErrorCodes %v", codes, protocol.ErrorCodes)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	return slices.Equal(a, b)
}

// readmeRows returns the first cell (backticks and ** stripped) and the
// last cell of every row of the table that follows heading in
// gateway/README.md; ok is false outside the repository.
func readmeRows(t *testing.T, heading string) (rows map[string]string, ok bool) {
	t.Helper()
	raw, err := os.ReadFile("../../gateway/README.md")
	if errors.Is(err, os.ErrNotExist) {
		t.Log("gateway/README.md not found (module used outside its repository): skipped")
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	i := strings.Index(s, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("gateway/README.md has no %q section", heading)
	}
	s = s[i+len(heading)+2:]
	if j := strings.Index(s, "\n## "); j >= 0 {
		s = s[:j]
	}
	rows = map[string]string{}
	cell := regexp.MustCompile(`^\|\s*([^|]+?)\s*\|.*\|\s*([^|]*?)\s*\|$`)
	for _, line := range strings.Split(s, "\n") {
		m := cell.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil || strings.HasPrefix(m[1], "---") || m[1] == "code" {
			continue
		}
		key := strings.Fields(strings.NewReplacer("`", "", "*", "").Replace(m[1]))[0]
		rows[key] = m[2]
	}
	return rows, true
}

// TestPolicyMatchesReadme: gateway/README.md's close-code table lists every
// code of CloseCodes and says "no" exactly for the stop codes, "only with
// a new ticket" for 4001; its error-code table has every code with a
// "what to do".
func TestPolicyMatchesReadme(t *testing.T) {
	closeRows, ok := readmeRows(t, "## Close codes")
	if !ok {
		return
	}
	for _, c := range protocol.CloseCodes {
		what, found := closeRows[strconv.Itoa(c.Code)]
		if !found {
			t.Errorf("gateway/README.md close codes: no row for %d", c.Code)
			continue
		}
		what = strings.ToLower(strings.ReplaceAll(what, "*", ""))
		var good bool
		switch c.Action {
		case protocol.CloseActionStop:
			good = strings.HasPrefix(what, "no")
		case protocol.CloseActionNewTicket:
			good = strings.HasPrefix(what, "only with a new ticket")
		case protocol.CloseActionReconnect:
			good = strings.HasPrefix(what, "yes")
		}
		if !good {
			t.Errorf("gateway/README.md says %q for %d, whose action is %s", what, c.Code, c.Action)
		}
	}
	if len(closeRows) != len(protocol.CloseCodes) {
		t.Errorf("gateway/README.md lists %d close codes, CloseCodes %d", len(closeRows), len(protocol.CloseCodes))
	}
	errRows, ok := readmeRows(t, "## Error codes")
	if !ok {
		return
	}
	var listed []string
	for code, what := range errRows {
		listed = append(listed, code)
		if len(what) < 10 {
			t.Errorf("gateway/README.md error codes: %s has no \"what to do\" (%q)", code, what)
		}
	}
	if !sameSet(listed, protocol.ErrorCodes) {
		t.Errorf("gateway/README.md lists error codes %v, ErrorCodes %v", listed, protocol.ErrorCodes)
	}
}

// A client's reaction to the server's close code.
func ExampleCloseActionOf() {
	for _, code := range []int{1012, 1013, 4001, 4003, 4010, 1000, 4242} {
		switch protocol.CloseActionOf(code) {
		case protocol.CloseActionReconnect:
			fmt.Println(code, "reconnect with a new ticket after a jittered delay")
		case protocol.CloseActionNewTicket:
			fmt.Println(code, "reconnect with a fresh ticket; give up after", protocol.MaxInvalidTickets, "in a row")
		case protocol.CloseActionStop:
			fmt.Println(code, "stop")
		}
	}
	// Output:
	// 1012 reconnect with a new ticket after a jittered delay
	// 1013 reconnect with a new ticket after a jittered delay
	// 4001 reconnect with a fresh ticket; give up after 3 in a row
	// 4003 stop
	// 4010 stop
	// 1000 stop
	// 4242 reconnect with a new ticket after a jittered delay
}
