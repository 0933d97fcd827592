package policies

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/eventvault/eventvault"
)

// FileDocument is a document read from a policy folder.
type FileDocument struct {
	Tenant eventvault.TenantID
	Name   string
	Body   string
	Path   string
}

// ReadDir reads the documents of dir, laid out as <dir>/<tenant>/<name>.cedar,
// and parses each: all are read before any is used, so that one bad file
// stops the start with its path, line and reason instead of leaving half a
// folder applied. What a repository holds besides is skipped: entries
// whose name starts with '.' (.git, .gitkeep), files at the top (README.md)
// and editor backups ending in '~'. A document is never silently left out:
// a .cedar file at the top (outside a tenant's folder) is an error, and so
// is any other file or folder in a tenant's folder, a misnamed document
// ("app.cedr") or one a folder too deep ("acme/old/app.cedar"). A tenant's
// folder may be a symbolic link (a Kubernetes volume mounts them so); a
// link at the top that leads nowhere is an error if it is named as a
// tenant or a document, and skipped otherwise. A folder that holds no
// document is no error here: callers that need one say so (see Layout). A
// document whose file is removed stays stored: delete it with DELETE
// /v1/policies/{name}.
func ReadDir(dir string) ([]FileDocument, error) {
	tenants, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read policy folder: %w", err)
	}
	var out []FileDocument
	for _, te := range tenants {
		if strings.HasPrefix(te.Name(), ".") {
			continue
		}
		isDir, err := isFolder(dir, te)
		if err != nil && !isCedar(te.Name()) && eventvault.ValidateTenant(eventvault.TenantID(te.Name())) != nil {
			// A broken or looping link beside the tenants' folders, named
			// as neither a tenant nor a document (README.md -> nowhere),
			// is skipped, as a file there is.
			continue
		}
		if err != nil {
			return nil, err
		}
		if !isDir {
			if isCedar(te.Name()) {
				return nil, fmt.Errorf("%s: a policy document goes in its tenant's folder, as %s: move it to %s",
					filepath.Join(dir, te.Name()), Layout(dir), filepath.Join(dir, "<tenant>", te.Name()))
			}
			continue
		}
		tenant := eventvault.TenantID(te.Name())
		if err := eventvault.ValidateTenant(tenant); err != nil {
			return nil, fmt.Errorf("policy folder %s: folder %s: %w", dir, te.Name(), err)
		}
		files, err := os.ReadDir(filepath.Join(dir, te.Name()))
		if err != nil {
			return nil, fmt.Errorf("read policy folder: %w", err)
		}
		for _, f := range files {
			if strings.HasPrefix(f.Name(), ".") || strings.HasSuffix(f.Name(), "~") {
				continue
			}
			path := filepath.Join(dir, te.Name(), f.Name())
			name, ok := strings.CutSuffix(f.Name(), ".cedar")
			if f.IsDir() || !ok {
				return nil, fmt.Errorf("%s: a policy folder holds only <name>.cedar files, as %s", path, Layout(dir))
			}
			body, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("read policy: %w", err)
			}
			if _, err := Parse(name, string(body)); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			out = append(out, FileDocument{Tenant: tenant, Name: name, Body: string(body), Path: path})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Layout names where ReadDir looks for documents in dir, for messages:
// "<dir>/<tenant>/<name>.cedar".
func Layout(dir string) string {
	return filepath.Join(dir, "<tenant>", "<name>.cedar")
}

// isFolder reports whether the entry e of dir is a folder, following a
// symbolic link.
func isFolder(dir string, e os.DirEntry) (bool, error) {
	if e.Type()&os.ModeSymlink == 0 {
		return e.IsDir(), nil
	}
	info, err := os.Stat(filepath.Join(dir, e.Name()))
	if err != nil {
		return false, fmt.Errorf("read policy folder: %w", err)
	}
	return info.IsDir(), nil
}

// isCedar reports whether a file name reads as a policy document's, in any
// letter case ("app.cedar", "App.CEDAR").
func isCedar(name string) bool {
	return strings.EqualFold(filepath.Ext(name), ".cedar")
}

// Apply writes each document as the next version of its name, unless the
// stored document has the same text (so that every node of a deployment
// can start with the same folder), and returns how many versions it wrote.
func (r *Resolver) Apply(ctx context.Context, operator eventvault.Principal, docs []FileDocument) (int, error) {
	written := 0
	for _, d := range docs {
		_, w, err := r.Put(ctx, operator, d.Tenant, d.Name, d.Body)
		if eventvault.ErrorCode(err) == eventvault.ECONFLICT {
			// Another node starting with the same folder wrote it first.
			_, w, err = r.Put(ctx, operator, d.Tenant, d.Name, d.Body)
		}
		if err != nil {
			return written, fmt.Errorf("%s: %w", d.Path, err)
		}
		if w {
			written++
		}
	}
	return written, nil
}
