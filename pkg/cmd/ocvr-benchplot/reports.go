package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// report is the JSON ocvr-loadgen writes with --json (its report type):
// a table of rows under named columns, and the workload's parameters.
type report struct {
	Workload string         `json:"workload"`
	Params   map[string]any `json:"params"`
	Columns  []string       `json:"columns"`
	Rows     [][]any        `json:"rows"`

	path string // where it was read from, for errors
}

// loadReports reads every *.json under dir that is a loadgen report; other
// JSON (a cluster publisher's summary, a shard's) has no workload and
// columns and is skipped.
func loadReports(dir string) ([]report, error) {
	var reps []report
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".json") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var r report
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if r.Workload == "" || len(r.Columns) == 0 {
			return nil
		}
		r.path = path
		reps = append(reps, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(reps) == 0 {
		return nil, fmt.Errorf("no ocvr-loadgen JSON reports under %s", dir)
	}
	return reps, nil
}

// column returns the index of the named column, or an error naming the
// report: a renamed loadgen column must fail loudly, not draw nothing.
func (r report) column(name string) (int, error) {
	if i := slices.Index(r.Columns, name); i >= 0 {
		return i, nil
	}
	return 0, fmt.Errorf("%s: %s report has no column %q (has %q)", r.path, r.Workload, name, r.Columns)
}

// number is row[i] as a float (JSON numbers decode as float64).
func (r report) number(row []any, i int, name string) (float64, error) {
	if i >= len(row) {
		return 0, fmt.Errorf("%s: a row has no %q cell", r.path, name)
	}
	v, ok := row[i].(float64)
	if !ok {
		return 0, fmt.Errorf("%s: column %q holds %v, not a number", r.path, name, row[i])
	}
	return v, nil
}

// param is a parameter as text ("" when absent).
func (r report) param(name string) string {
	v, ok := r.Params[name]
	if !ok {
		return ""
	}
	if f, ok := v.(float64); ok {
		return fmt.Sprintf("%g", f)
	}
	return fmt.Sprint(v)
}

// cell is row[i] as text ("" when absent).
func cell(row []any, i int) string {
	if i < 0 || i >= len(row) || row[i] == nil {
		return ""
	}
	return fmt.Sprint(row[i])
}

var errNoData = errors.New("no reports of this workload")
