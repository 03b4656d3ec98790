package bus

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// MaxAdvisoryPayload is how much of a refused payload an advisory quotes.
const MaxAdvisoryPayload = 256

// AdvisoryRejected is the subject on which gateways report every bus
// payload they refused, so that its publisher can see why nothing arrived
// (`ocvrctl advisories` tails it).
func (s Subjects) AdvisoryRejected() string { return s.prefix + ".advisory.rejected" }

// Rejected is the body of an advisory on AdvisoryRejected: one refused bus
// message, as the gateway that refused it saw it. Each gateway pod reports
// every message it refuses (a message refused by three pods is reported
// three times), at a bounded rate; Suppressed counts the refusals this pod
// did not report since its previous advisory.
type Rejected struct {
	Subject    string `json:"subject"`    // the subject the payload came on
	Reason     string `json:"reason"`     // why it was refused
	Payload    string `json:"payload"`    // at most the first MaxAdvisoryPayload bytes
	Truncated  bool   `json:"truncated"`  // Payload is a prefix of a longer payload
	Size       int    `json:"size"`       // the payload's size in bytes
	Gateway    string `json:"gateway"`    // the pod that refused it
	Time       int64  `json:"time"`       // unix seconds
	Suppressed int64  `json:"suppressed"` // refusals not reported since the previous advisory
}

// NewRejected describes a refused payload; Gateway, Time and Suppressed are
// the reporter's to set. Payload bytes that are not valid UTF-8 are
// replaced (an advisory is JSON).
func NewRejected(subject, reason string, payload []byte) Rejected {
	quote := payload
	if len(quote) > MaxAdvisoryPayload {
		quote = quote[:MaxAdvisoryPayload]
		// Don't cut a UTF-8 sequence in two.
		for i := 0; i < utf8.UTFMax && len(quote) > 0 && !utf8.Valid(quote); i++ {
			quote = quote[:len(quote)-1]
		}
	}
	return Rejected{
		Subject:   subject,
		Reason:    reason,
		Payload:   string(quote),
		Truncated: len(quote) < len(payload),
		Size:      len(payload),
	}
}

// ParseRejected decodes an advisory's body.
func ParseRejected(b []byte) (Rejected, error) {
	var r Rejected
	if err := json.Unmarshal(b, &r); err != nil {
		return Rejected{}, fmt.Errorf("parse rejected-payload advisory: %w", err)
	}
	return r, nil
}
