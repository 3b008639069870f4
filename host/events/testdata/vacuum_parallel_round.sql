-- One round of vacuum_parallel.sql: :n rows numbered, then the default
-- VACUUM timed; :n more, then PARALLEL 0 timed.
:number
\timing on
:default;
\timing off
:number
\timing on
:serial;
\timing off
