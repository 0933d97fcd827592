-- +goose Up
-- +goose StatementBegin
-- 0009: reserved for the PII migration (issue 13), built on another
-- branch. This placeholder does nothing; it exists so that 0010 follows
-- without a gap on this branch. At the merge, the PII branch's 0009
-- replaces it (delete this file if its name differs: two 0009 files fail
-- the loader, "versions start at 1 and have no gaps").
SELECT 1;
-- +goose StatementEnd
