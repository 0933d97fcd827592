package postgres

import (
	"testing"
	"testing/fstest"
)

func mapFS(files []string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for _, f := range files {
		fsys["m/"+f] = &fstest.MapFile{Data: []byte("SELECT 1;")}
	}
	return fsys
}

func TestParseMigrationsRejectsGapsAndBadNames(t *testing.T) {
	cases := []struct {
		name  string
		files []string
		ok    bool
	}{
		{"in order", []string{"0001_init.sql", "0002_more.sql"}, true},
		{"gap", []string{"0001_init.sql", "0003_more.sql"}, false},
		{"not from 1", []string{"0002_init.sql"}, false},
		{"bad name", []string{"0001_init.sql", "2_more.sql"}, false},
		{"duplicate version", []string{"0001_init.sql", "0001_again.sql"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fsys := mapFS(tc.files)
			_, err := parseMigrations(fsys, "m")
			if (err == nil) != tc.ok {
				t.Errorf("parseMigrations(%v) error = %v, want ok %v", tc.files, err, tc.ok)
			}
		})
	}
	if _, err := loadMigrations(); err != nil {
		t.Errorf("the embedded migrations: %v", err)
	}
}
