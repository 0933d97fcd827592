package postgres_test

import (
	"testing"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) eventvault.Store {
		db, _ := openDB(t)
		return db
	})
}
