package pgstore_test

import (
	"os"
	"testing"

	"github.com/flowfabric/workerregistry/registry/registrytest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	registrytest.ClosePostgresPool()
	os.Exit(code)
}
