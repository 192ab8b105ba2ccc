-- FerretDB 1.24 on PostgreSQL filters with (_jsonb -> 'field') @> '<value>', which its own btree
-- expression indexes cannot serve: every find by _id, and every update, scans the whole table
-- (7.8 ms for 6k balances; linear in the collection). A GIN (jsonb_path_ops) index on the same
-- expression serves @> (0.02 ms). This adds one beside each FerretDB index, on its first field.
-- It works together with plan_cache_mode=force_custom_plan (infra.sh starts PostgreSQL so).
-- Idempotent; run after collections exist (platform.sh does, after services start and seeding).
SET client_min_messages = warning;
DO $$
DECLARE
  idx record;
  field text;
  gin_name text;
BEGIN
  FOR idx IN
    SELECT schemaname, tablename, indexname, indexdef
    FROM pg_indexes
    WHERE indexdef LIKE '%USING btree (((_jsonb -> %'
      AND schemaname NOT IN ('pg_catalog', 'information_schema')
  LOOP
    field := substring(idx.indexdef FROM $r$USING btree \(\(\(_jsonb -> '([^']+)'::text\)\)$r$);
    IF field IS NULL THEN
      CONTINUE;
    END IF;
    gin_name := left(idx.indexname, 55) || '_gin';
    IF NOT EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = idx.schemaname AND indexname = gin_name) THEN
      EXECUTE format(
        'CREATE INDEX %I ON %I.%I USING gin ((_jsonb -> %L) jsonb_path_ops)',
        gin_name, idx.schemaname, idx.tablename, field
      );
      -- Fresh statistics, or the planner may still pick a scan for a young table.
      EXECUTE format('ANALYZE %I.%I', idx.schemaname, idx.tablename);
    END IF;
  END LOOP;
END
$$;
