-- +goose Up
-- 0016_subject_keys_rotation: a KEK rotation's page of subject keys reads
-- that page, not every subject key of the tenant. SubjectKeysBefore pages
-- in byte order (subject COLLATE "C", as the embedded store does), which
-- the primary key (tenant_id, subject), in the column's own collation,
-- cannot serve: each page walked all of the tenant's subject keys and
-- sorted them, so a rotation read the tenant's keys once per page
-- (TestStatementsOfTenantsAlikeReadWhatTheyNeed). This index holds the
-- keys a rotation re-wraps, in the order it walks them.
CREATE INDEX IF NOT EXISTS subject_keys_rotation ON subject_keys (tenant_id, subject COLLATE "C") WHERE wrapped_key IS NOT NULL;
