package goruntime

import (
	"os"
	"testing"
)

// unsetenv removes an environment variable for one test (t.Setenv can only
// set), restoring it afterwards.
func unsetenv(t *testing.T, key string) {
	t.Helper()
	old, ok := os.LookupEnv(key)
	if err := os.Unsetenv(key); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ok {
			os.Setenv(key, old)
		}
	})
}
