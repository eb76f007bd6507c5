-- Quality: one row per scan (history), every column of the PM Agent document, each component
-- of the score, and what was detected. An unmeasurable component is NULL.

CREATE TABLE quality_metrics (
    id                    INTEGER PRIMARY KEY,
    project_id            INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    quality_score         INTEGER CHECK (quality_score BETWEEN 0 AND 100),
    test_coverage         INTEGER CHECK (test_coverage BETWEEN 0 AND 100),
    has_tests             INTEGER NOT NULL DEFAULT 0 CHECK (has_tests IN (0, 1)),
    has_ci_cd             INTEGER NOT NULL DEFAULT 0 CHECK (has_ci_cd IN (0, 1)),
    has_documentation     INTEGER NOT NULL DEFAULT 0 CHECK (has_documentation IN (0, 1)),
    documentation_score   INTEGER CHECK (documentation_score BETWEEN 0 AND 100),
    linting_score         INTEGER CHECK (linting_score BETWEEN 0 AND 100),
    calculated_at         TEXT NOT NULL,
    -- the components (0..100, NULL when they cannot be measured) and the formula's version
    tests_component       REAL CHECK (tests_component BETWEEN 0 AND 100),
    ci_component          REAL CHECK (ci_component BETWEEN 0 AND 100),
    docs_component        REAL CHECK (docs_component BETWEEN 0 AND 100),
    lint_component        REAL CHECK (lint_component BETWEEN 0 AND 100),
    maintenance_component REAL CHECK (maintenance_component BETWEEN 0 AND 100),
    metrics_version       INTEGER NOT NULL,
    -- where the coverage figure came from
    coverage_source       TEXT,
    coverage_path         TEXT,
    coverage_measured_at  TEXT,
    coverage_stale        INTEGER NOT NULL DEFAULT 0 CHECK (coverage_stale IN (0, 1)),
    -- what was found (CI, linters, reports…) and what would gain points
    detected              TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(detected)),
    gains                 TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(gains)),
    fingerprint           TEXT,
    error                 TEXT
);

CREATE INDEX quality_metrics_project ON quality_metrics (project_id, id DESC);
CREATE INDEX quality_metrics_calculated ON quality_metrics (calculated_at);

-- The latest row per project.
CREATE VIEW quality_latest AS
SELECT q.*
FROM quality_metrics AS q
WHERE q.id = (SELECT max(id) FROM quality_metrics WHERE project_id = q.project_id);
